"""The hostile-input corpus, generated (nothing binary is committed): a class-folder data set
under a path with a space and non-ASCII letters, holding good edge cases (grayscale, RGBA,
palette, 16-bit, EXIF-rotated, 1x1, 10x10, BMP/WebP/TIFF, the rarer JPEG endings and JPEG 2000)
and bad files (truncated and corrupt JPEG/PNG, a JPEG with garbled compressed data but intact
markers, zero bytes, text named .jpg, a real 20000x20000 PNG and a JPEG header claiming that
size, a named pipe, a symbolic-link loop, an unreadable file, unsupported formats, an empty
class folder, a link to a parent folder). ``GOOD``, ``BAD``, ``SCAN`` and ``SCAN_DIRECT`` say
what gapsvm must answer for each.

The unreadable file: ``chmod 000`` does not stop root, whose CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH capabilities bypass file modes. When the tests run as root they drop those
two capabilities from the calling thread's effective set (threads it starts inherit that)
around the calls that read the corpus, so the kernel really refuses the read (EACCES); the
process stays root, so everything else it reads is unaffected. As any other user ``chmod 000``
is enough. Only where neither works is the refusal simulated by patching ``open``;
:func:`reading_as_user` yields which of the three it used.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import errno
import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random but smooth RGB image, so JPEG keeps it recognisable."""
    small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def encode(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def huge_png(w: int = 20000, h: int = 20000) -> bytes:
    """A real, valid PNG of w x h black pixels (1-bit grey, ~50 kB): decoded to RGB it would
    take w*h*3 bytes (1.2 GB at 20000x20000)."""
    row = (w + 7) // 8 + 1
    z = zlib.compressobj(9)
    parts = [z.compress(bytes(row * 500)) for _ in range(h // 500)]
    parts += [z.compress(bytes(row * (h % 500))), z.flush()]
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )  # fmt: skip


def garbled_jpeg(rng: np.random.Generator, h: int = 96, w: int = 128) -> bytes:
    """A JPEG whose compressed data has 64 random bytes in the middle of its scan, with every
    marker intact (no 0xFF byte is written): libjpeg decodes it to mostly wrong pixels and
    only warns ("Corrupt JPEG data: ...") on stderr."""
    jpeg = bytearray(encode(smooth_image(rng, h, w), "JPEG", quality=90))
    start = jpeg.rfind(b"\xff\xda") + (len(jpeg) - jpeg.rfind(b"\xff\xda")) // 3
    jpeg[start : start + 64] = rng.integers(0, 255, 64, dtype=np.uint8).tobytes()
    return bytes(jpeg)


def with_jpeg_size(jpeg: bytes, w: int, h: int) -> bytes:
    """The same JPEG with its frame header (SOF0) claiming another size."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", h, w) + jpeg[i + 9 :]


GOOD = {  # relative path -> what it exercises
    "person/rgb.jpg": "plain JPEG",
    "person/space name.png": "space in the file name",
    "person/nön ascii é.png": "non-ASCII file name",
    "person/gray.png": "single-channel PNG",
    "person/gray.jpg": "single-channel JPEG",
    "person/rgba.png": "alpha channel",
    "person/palette.png": "palette PNG",
    "person/16bit.png": "16-bit PNG",
    "person/exif6.jpg": "EXIF Orientation=6",
    "person/tiny1x1.png": "1x1 image",
    "person/tiny10x10.png": "10x10 image",
    "not_person/n0.png": "PNG",
    "not_person/n1.jpg": "JPEG",
    "not_person/n2.bmp": "BMP",
    "not_person/n3.webp": "WebP",
    "not_person/n4.tiff": "TIFF",
    "not_person/n5.jfif": "JPEG named .jfif",
    "not_person/n6.jpe": "JPEG named .jpe",
    "not_person/n7.jp2": "JPEG 2000 (lossless)",
}
#: Files a folder run computes nothing for: relative path -> reason the user sees.
BAD = {
    "person/truncated.jpg": "truncated JPEG (no end-of-image marker after the last scan)",
    "person/corrupt.jpg": "not a decodable image (corrupt or truncated JPEG data)",
    "person/garbled.jpg": "not a decodable image (corrupt JPEG data; libjpeg: Corrupt JPEG data",
    "person/zero.jpg": "empty file (0 bytes)",
    "person/notes.jpg": "not an image (the file holds text)",
    "person/huge.png": "image is 20000x20000 pixels, over the 268,435,456-pixel limit "
    "(downscale it first; decoding it would need 1.1 GiB)",
    "person/huge.jpg": "image is 20000x20000 pixels, over the 268,435,456-pixel limit",
    "person/pipe.jpg": "not a regular file (a pipe, socket or device)",
    "person/locked.png": "Permission denied",
    "not_person/truncated.png": "not a decodable image (corrupt or truncated PNG data)",
    "not_person/crc.png": "not a decodable image (corrupt or truncated PNG data)",
}
#: Paths the folder scan itself reports (never handed to the decoder).
SCAN = {
    "person/loop.jpg": "broken or looping symbolic link",
    "person/up": "symbolic link to a folder, not followed (a link loop would never end)",
    "person/phone.heic": "unsupported image format .heic (gapsvm reads .bmp, .jfif, .jp2, "
    ".jpe, .jpeg, .jpg, .pbm, .pgm, .png, .ppm, .tif, .tiff, .webp); convert it to JPEG or PNG",
    "not_person/old.tga": "unsupported image format .tga",
    "not_person/hdr.exr": "unsupported image format .exr (OpenEXR holds high-dynamic-range",
    "empty": "class folder holds no images",
}
#: What read_image says when handed a SCAN file directly.
SCAN_DIRECT = {
    "person/loop.jpg": "Too many levels of symbolic links",
    "person/phone.heic": "unsupported format (HEIF/HEIC); convert it to JPEG or PNG",
    "not_person/old.tga": "not a decodable image (unknown or unsupported format)",
    "not_person/hdr.exr": "unsupported format (OpenEXR); tone-map it to a 16-bit PNG or TIFF",
}


class Corpus:
    """Where the corpus lies (``data``) and the pixels each good file was written from."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "dätä set"  # the folder itself has a space and non-ASCII letters
        self.originals: dict[str, np.ndarray] = {}

    def p(self, rel: str) -> Path:
        return self.data / rel

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the data folder, with forward slashes (the tables' keys)."""
        return Path(os.path.relpath(path, self.data)).as_posix()

    def good_paths(self) -> list[str]:
        return sorted(str(self.p(r)) for r in GOOD)

    def put(self, rel: str, data: bytes, original: np.ndarray | None = None) -> None:
        """Write one file; ``original`` is the pixels a good file must decode to."""
        self.p(rel).write_bytes(data)
        if original is not None:
            self.originals[rel] = original


def build_corpus(base: Path) -> Corpus:
    """Write the whole corpus under ``base`` (the same bytes on every run)."""
    c = Corpus(base)
    rng = np.random.default_rng(20240611)  # one stream, good files first, then the bad ones
    for d in ("person", "not_person", "empty"):
        c.p(d).mkdir(parents=True)
    _put_good(c, rng)
    _put_bad(c, rng)
    return c


def _put_good(c: Corpus, rng: np.random.Generator) -> None:
    put = c.put
    rgb = smooth_image(rng, 40, 48)
    put("person/rgb.jpg", encode(rgb, "JPEG", quality=95))
    for rel in ("person/space name.png", "person/nön ascii é.png"):
        img = smooth_image(rng, 36, 30)
        put(rel, encode(img, "PNG"), img)
    gray = smooth_image(rng, 34, 40)[..., 1]
    put("person/gray.png", encode(gray, "PNG"), gray)
    put("person/gray.jpg", encode(gray, "JPEG", quality=95), gray)
    rgba = np.dstack([smooth_image(rng, 33, 35), rng.integers(0, 256, (33, 35), dtype=np.uint8)])
    put("person/rgba.png", encode(rgba, "PNG"), rgba)
    pal = Image.fromarray(smooth_image(rng, 40, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    put("person/palette.png", buf.getvalue(), np.asarray(pal.convert("RGB")))
    deep = rng.integers(0, 65536, (32, 36, 3), dtype=np.uint16)
    ok, enc = cv2.imencode(".png", deep[..., ::-1])  # OpenCV writes BGR
    assert ok
    put("person/16bit.png", enc.tobytes(), deep)
    upright = smooth_image(rng, 40, 56)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels must be turned 90 degrees clockwise
    put("person/exif6.jpg", encode(upright, "JPEG", quality=95, exif=exif), upright)
    put("person/tiny1x1.png", encode(rgb[:1, :1], "PNG"), rgb[:1, :1])
    put("person/tiny10x10.png", encode(rgb[:10, :10], "PNG"), rgb[:10, :10])
    for i, fmt in enumerate(("PNG", "JPEG", "BMP", "WEBP", "TIFF")):
        ext = {"JPEG": "jpg", "TIFF": "tiff"}.get(fmt, fmt.lower())
        img = smooth_image(rng, 32 + 4 * i, 40)
        put(f"not_person/n{i}.{ext}", encode(img, fmt), img)
    extra = np.random.default_rng(7)  # its own stream: the files above keep their bytes
    img = smooth_image(extra, 36, 44)
    put("not_person/n5.jfif", encode(img, "JPEG", quality=95))
    put("not_person/n6.jpe", encode(img, "JPEG", quality=95))
    put("not_person/n7.jp2", encode(img, "JPEG2000", irreversible=False), img)


def _put_bad(c: Corpus, rng: np.random.Generator) -> None:
    put = c.put
    jpeg = encode(smooth_image(rng, 48, 48), "JPEG", quality=90)
    png = encode(smooth_image(rng, 48, 48), "PNG")
    put("person/truncated.jpg", jpeg[: len(jpeg) // 2])
    put("person/corrupt.jpg", jpeg[:2] + rng.integers(0, 256, 300, np.uint8).tobytes()
        + jpeg[302:])
    put("person/zero.jpg", b"")
    put("person/notes.jpg", b"shopping list: milk, eggs\nthis is not a photo\n" * 10)
    put("person/huge.png", huge_png())
    put("person/huge.jpg", with_jpeg_size(jpeg, 20000, 20000))
    os.mkfifo(c.p("person/pipe.jpg"))
    put("person/locked.png", png)
    put("not_person/truncated.png", png[: len(png) // 2])
    put("not_person/crc.png", png[:29] + bytes([png[29] ^ 0xFF]) + png[30:])  # IHDR CRC
    os.symlink("loop.jpg", c.p("person/loop.jpg"))
    os.symlink("..", c.p("person/up"))
    put("person/phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    put("not_person/old.tga", encode(smooth_image(rng, 20, 20), "TGA"))
    os.chmod(c.p("person/locked.png"), 0)
    put("person/garbled.jpg", garbled_jpeg(np.random.default_rng(8)))  # own stream, as above
    put("not_person/hdr.exr", b"v/1\x01\x02\x00\x00\x00" + bytes(120))  # EXR magic, version 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_DAC_BYPASS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _set_dac_bypass(enabled: bool) -> bool:
    """Switch root's file-mode bypass for this thread (Linux capset); False if impossible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
        if libc.capget(ctypes.byref(header), data) != 0:
            return False
        if enabled:
            data[0].effective |= data[0].permitted & _DAC_BYPASS
        else:
            data[0].effective &= ~_DAC_BYPASS
        return libc.capset(ctypes.byref(header), data) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def reading_as_user(locked: Path):
    """Run the block so that ``locked`` (mode 000) cannot be read, as for a normal user;
    yields how: "chmod" (not root), "capabilities" (root) or "patch" (simulated)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield "chmod"
    elif _set_dac_bypass(False):
        try:
            yield "capabilities"
        finally:
            assert _set_dac_bypass(True), "could not restore CAP_DAC_OVERRIDE"
    else:
        real_open = builtins.open

        def fake_open(file, *a, **kw):
            if isinstance(file, str | os.PathLike) and Path(file) == locked:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
            return real_open(file, *a, **kw)

        builtins.open = fake_open
        try:
            yield "patch"
        finally:
            builtins.open = real_open


def bad_image_files(folder: Path) -> dict[str, Path]:
    """Four files no decoder accepts, written into ``folder``: empty, text, a JPEG cut in
    half and a PNG whose data after the first 100 bytes is zeroed. Name -> path."""
    rng = np.random.default_rng(11)
    jpeg = encode(smooth_image(rng, 64, 64), "JPEG", quality=90)
    png = encode(smooth_image(rng, 64, 64), "PNG")
    files = {
        "empty.jpg": b"",
        "text.jpg": b"this is a text file, renamed to look like a photo\n" * 20,
        "truncated_jpeg.jpg": jpeg[: len(jpeg) // 2],
        "corrupt_png.png": png[:100] + bytes(len(png) - 100),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name.rsplit(".", 1)[0]] = folder / name
    return out
