"""Reading images from disk and from memory: the only module that decodes pixels.

Everything downstream sees ``uint8`` RGB arrays of shape ``(h, w, 3)``. OpenCV decodes
(``cv2.imdecode`` over the file's bytes so that non-ASCII paths work on every platform) and
returns BGR, which is flipped to RGB here, once. Grayscale becomes three equal channels, an
alpha channel is dropped (as ``PIL.Image.convert("RGB")`` and ``keras.utils.load_img`` do),
16-bit images are scaled to 8 bits, and EXIF orientation is applied, as browsers do.

Pixel values keep their meaning: PGM/PPM samples are scaled by the file's own maximum value,
and floating-point images (TIFF) are read as values in [0, 1], clipped; a NaN pixel makes the
file an :class:`ImageReadError` (there is no right colour to give it). A JPEG whose
compressed data libjpeg reports as corrupt is refused too, instead of being returned with
wrong pixels.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import cv2
import numpy as np

from gapsvm.core._fd2 import call_capturing_fd2
from gapsvm.core.pixels import float_to_8bit, pnm_to_8bit
from gapsvm.core.pixels import pnm_maxval as _pnm_maxval

__all__ = [
    "MAX_PIXELS",
    "ImageReadError",
    "decode_for_input",
    "decode_image",
    "header_size",
    "read_image",
    "resize_image",
]


#: Decoding refuses larger 8-bit RGB images (about 16k x 16k): a 20000x20000 PNG would need
#: 1.2 GB of RGB before any resizing, and an out-of-memory kill loses the whole run. The budget
#: is the bytes this many pixels take: 16-bit and 4-channel images may have proportionally
#: fewer pixels (their header says which they are).
MAX_PIXELS = 16384 * 16384


class ImageReadError(ValueError):
    """An image could not be read; ``path`` names the file and ``reason`` says why.

    Parameters
    ----------
    path : str
        The file (or ``"<array i>"`` for in-memory input) that failed.
    reason : str
        A short human-readable reason.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")

    def __reduce__(self):  # keep the two-argument constructor picklable (multiprocessing, dask)
        return (type(self), (self.path, self.reason))


# Each reader gets the whole buffer and returns (height, width), or None when the header is
# damaged; only the bytes that hold the size are touched, whatever the file size.
Dims = tuple[int, int] | None


def _png_dims(data: memoryview) -> Dims:
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def _jpeg_dims(data: memoryview) -> Dims:
    n, i = len(data), 2
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if marker == 0xDA:  # start of scan: a frame header can only come before it
            return None
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(
                data[i + 7 : i + 9], "big"
            )
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _gif_dims(data: memoryview) -> Dims:
    return int.from_bytes(data[8:10], "little"), int.from_bytes(data[6:8], "little")


def _bmp_dims(data: memoryview) -> Dims:
    if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
        return int.from_bytes(data[20:22], "little"), int.from_bytes(data[18:20], "little")
    w = int.from_bytes(data[18:22], "little", signed=True)
    h = int.from_bytes(data[22:26], "little", signed=True)  # negative: top-down rows
    return abs(h), abs(w)


def _webp_dims(data: memoryview) -> Dims:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        return int.from_bytes(data[27:30], "little") + 1, w
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w = int.from_bytes(data[26:28], "little") & 0x3FFF
        return int.from_bytes(data[28:30], "little") & 0x3FFF, w
    return None


def _tiff_dims(data: memoryview) -> Dims:
    n = len(data)
    order = "little" if bytes(data[:2]) == b"II" else "big"
    ifd = int.from_bytes(data[4:8], order)
    if ifd + 2 > n:
        return None
    dims: dict[int, int] = {}
    count = int.from_bytes(data[ifd : ifd + 2], order)
    for e in range(ifd + 2, min(ifd + 2 + 12 * count, n - 11), 12):
        tag = int.from_bytes(data[e : e + 2], order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            short = int.from_bytes(data[e + 2 : e + 4], order) == 3
            dims[tag] = int.from_bytes(data[e + 8 : e + 10 if short else e + 12], order)
    return (dims[257], dims[256]) if len(dims) == 2 else None


def _jp2_dims(data: memoryview) -> Dims:
    if bytes(data[:2]) == b"\xff\x4f":  # raw codestream: the SIZ segment follows SOC
        w, h, x0, y0 = (int.from_bytes(data[k : k + 4], "big") for k in (8, 12, 16, 20))
        return h - y0, w - x0
    at = bytes(data[:4096]).find(b"ihdr")  # the JP2 header box's image header
    if at < 0 or at + 12 > len(data):
        return None
    return (int.from_bytes(data[at + 4 : at + 8], "big"),
            int.from_bytes(data[at + 8 : at + 12], "big"))  # fmt: skip


def _pnm_dims(data: memoryview) -> Dims:
    tokens: list[bytes] = []
    for line in bytes(data[2:512]).split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            break
    if len(tokens) >= 2 and tokens[0].isdigit() and tokens[1].isdigit():
        return int(tokens[1]), int(tokens[0])
    return None


_JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"

#: (is this the format, given its first 12 bytes and the length; its size reader).
_HEADER_READERS: tuple[tuple[Callable[[bytes, int], bool], Callable[[memoryview], Dims]], ...] = (
    (lambda sig, n: sig[:8] == b"\x89PNG\r\n\x1a\n" and n >= 24, _png_dims),
    (lambda sig, n: sig[:2] == b"\xff\xd8", _jpeg_dims),
    (lambda sig, n: sig[:6] in (b"GIF87a", b"GIF89a") and n >= 10, _gif_dims),
    (lambda sig, n: sig[:2] == b"BM" and n >= 26, _bmp_dims),
    (lambda sig, n: sig[:4] == b"RIFF" and sig[8:12] == b"WEBP" and n >= 30, _webp_dims),
    (lambda sig, n: sig[:4] in (b"II*\x00", b"MM\x00*") and n >= 8, _tiff_dims),
    (lambda sig, n: sig[:1] == b"P" and sig[1:2] in b"123456" and sig[2:3].isspace(),
     _pnm_dims),
    (lambda sig, n: (sig == _JP2_MAGIC or sig[:4] == b"\xff\x4f\xff\x51") and n >= 24, _jp2_dims),
)  # fmt: skip


def _image_dims_from_header(data: bytes | memoryview) -> Dims:
    """Return (height, width) from the header of a PNG, JPEG, GIF, BMP, WebP, TIFF or PNM
    file, or None if the format or header is not recognised.

    Cheap guard against decompression bombs: read before OpenCV allocates anything.
    """
    data = memoryview(data)
    sig = bytes(data[:12])
    for is_format, read_dims in _HEADER_READERS:
        if is_format(sig, len(data)):
            return read_dims(data)
    return None


def header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(height, width) as an encoded image's header states it, without decoding.

    The feature cache uses it to find an image's entry before decoding it. EXIF orientation is
    not applied, so a rotated JPEG decodes to the transposed size: callers must treat the
    answer as a guess.

    Parameters
    ----------
    data : bytes or memoryview
        The encoded file content.

    Returns
    -------
    tuple of int or None
        None when the format or its header is not recognised.
    """
    try:
        return _image_dims_from_header(data)
    except (IndexError, ValueError):  # a header cut short: no guess, the decode will say why
        return None


def _jpeg_is_complete(data: bytes) -> bool:
    # Entropy-coded data stuffs every 0xFF with 0x00, so an end-of-image marker after the last
    # start-of-scan can only be the real one; libjpeg would otherwise pad a truncated file
    # with grey and return it as if it were whole.
    last_sos = data.rfind(b"\xff\xda")
    if last_sos < 0:
        return False
    return data.find(b"\xff\xd9", last_sos) >= 0


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"PK\x03\x04", "ZIP"),
)  # fmt: skip


def _undecodable_reason(head: bytes) -> str:
    """Why OpenCV returned nothing, as specifically as the first bytes allow."""
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        kind = "AVIF" if head[8:12] == b"avif" else "HEIF/HEIC"
        return f"unsupported format ({kind}); convert it to JPEG or PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "not a decodable image (corrupt or truncated WebP data)"
    if head[:4] == b"v/1\x01":
        return "unsupported format (OpenEXR); tone-map it to a 16-bit PNG or TIFF"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            if kind in ("PDF", "ZIP"):
                return f"not an image (a {kind} file)"
            return f"not a decodable image (corrupt or truncated {kind} data)"
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch.isspace() for ch in text):
        return "not an image (the file holds text)"
    return "not a decodable image (unknown or unsupported format)"


_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


def _is_jpeg_damage(line: str) -> bool:
    # libjpeg's warnings that mean wrong pixels; its others (an unknown JFIF revision, a bad
    # ICC profile marker) leave the pixels intact.
    return line.startswith(("Corrupt JPEG data", "Premature end of JPEG file")) and (
        "ICC" not in line
    )


#: libjpeg's DCT scaling as OpenCV exposes it: decode a JPEG at 1/2, 1/4 or 1/8 of its size.
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip


def _imdecode(buf: np.ndarray, head: bytes, name: str, reduce: int = 1) -> np.ndarray | None:
    """``cv2.imdecode`` with libjpeg's corrupt-data warning turned into an error."""
    if head[:2] == b"\xff\xd8":
        flags = _REDUCED.get(reduce, _FLAGS)
        img, damage = call_capturing_fd2(cv2.imdecode, _is_jpeg_damage, buf, flags)
        if damage:
            raise ImageReadError(
                name, f"not a decodable image (corrupt JPEG data; libjpeg: {damage[0].strip()})"
            )
        return img
    img = cv2.imdecode(buf, _FLAGS)
    if img is None and head[:4] in (b"II*\x00", b"MM\x00*"):
        # OpenCV's colour conversion refuses single-channel floating-point TIFFs.
        img = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    return img


def _tiff_layout(data: memoryview) -> tuple[int, int]:
    order = "little" if bytes(data[:2]) == b"II" else "big"
    ifd, n = int.from_bytes(data[4:8], order), len(data)
    bits, channels = 8, 1
    if ifd + 2 > n:
        return 1, 3
    count = int.from_bytes(data[ifd : ifd + 2], order)
    for e in range(ifd + 2, min(ifd + 2 + 12 * count, n - 11), 12):
        tag = int.from_bytes(data[e : e + 2], order)
        if tag == 258:  # BitsPerSample: one SHORT per sample, inline up to two
            many = int.from_bytes(data[e + 4 : e + 8], order) > 2
            at = int.from_bytes(data[e + 8 : e + 12], order) if many else e + 8
            bits = int.from_bytes(data[at : at + 2], order) if at + 2 <= n else 8
        elif tag == 277:  # SamplesPerPixel
            channels = int.from_bytes(data[e + 8 : e + 10], order)
    return max(1, -(-bits // 8)), channels


def _sample_layout(data: memoryview) -> tuple[int, int]:
    """(bytes per sample, channels) of an encoded image, from its header: what decoding it
    costs per pixel. 8-bit RGB when the header does not say otherwise."""
    sig = bytes(data[:12])
    if sig[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26:
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(data[25], 3)
        return (2 if data[24] == 16 else 1), channels
    if sig[:4] in (b"II*\x00", b"MM\x00*") and len(data) >= 8:
        return _tiff_layout(data)
    if sig[:1] == b"P" and sig[1:2] in b"2356":
        found = _pnm_maxval(bytes(data[:1024]))
        wide = found is not None and found[1] > 255
        return (2 if wide else 1), (1 if sig[1:2] in b"25" else 3)
    if sig == _JP2_MAGIC:
        at = bytes(data[:4096]).find(b"ihdr")
        if 0 <= at and at + 15 <= len(data):  # NC (2 bytes), then BPC: bits - 1
            bits = (data[at + 14] & 0x7F) + 1
            return (2 if bits > 8 else 1), int.from_bytes(data[at + 12 : at + 14], "big")
    return 1, 3


def _too_large(dims: tuple[int, int], data: memoryview) -> str | None:
    """Why an image is refused before decoding (a decompression bomb), or None.

    The budget is in bytes, that of a :data:`MAX_PIXELS` 8-bit RGB image: decoding gives at
    least three channels (grayscale is expanded), and 16-bit samples take twice the memory,
    so a 16-bit image may have half the pixels.
    """
    depth, channels = _sample_layout(data)
    per_pixel = depth * max(3, channels)
    limit = MAX_PIXELS * 3 // per_pixel
    h, w = dims
    if h * w <= limit:
        return None
    kind = "" if per_pixel == 3 else f" for {8 * depth}-bit, {max(3, channels)}-channel images"
    return (
        f"image is {w}x{h} pixels, over the {limit:,}-pixel limit{kind} (downscale it "
        f"first; decoding it would need {h * w * per_pixel / 2**30:.1f} GiB)"
    )


def decode_for_input(
    data: bytes, name: str, size_hw: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image that will be resized to ``size_hw``; return it and its full size.

    A JPEG whose shorter side is at least twice ``size_hw``'s longer one (so either EXIF
    orientation fits) is decoded by libjpeg at 1/2, 1/4 or 1/8 scale, the smallest that still
    covers ``size_hw``: a fraction of the work of a full decode, whose pixels differ slightly
    from full decoding and area resizing (``cache.PREPROCESS_VERSION`` counts that).

    Parameters
    ----------
    data : bytes
    name : str
        Used in error messages.
    size_hw : (int, int) or None
        The size the image is resized to next; None decodes in full.

    Returns
    -------
    image : ndarray of shape (h, w, 3), dtype uint8
    full_hw : (int, int)
        The image's own (height, width) after EXIF orientation, as a full decode gives.
    """
    dims = _image_dims_from_header(data) if size_hw and data[:2] == b"\xff\xd8" else None
    factor = 1
    if dims is not None:
        factor = max((f for f in _REDUCED if min(dims) >= f * max(size_hw)), default=1)
    img = decode_image(data, name, _reduce=factor)
    if factor == 1:
        return img, (img.shape[0], img.shape[1])
    h, w = (-(-side // factor) for side in dims)  # libjpeg rounds scaled sides up
    if img.shape[:2] == (h, w):
        return img, dims
    if img.shape[:2] == (w, h):  # EXIF orientation turned it
        return img, (dims[1], dims[0])
    img = decode_image(data, name)  # a header that disagrees with the decoder: decode in full
    return img, (img.shape[0], img.shape[1])


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>", *, _reduce: int = 1
                 ) -> np.ndarray:
    """Decode encoded image bytes into a ``uint8`` RGB array of shape ``(h, w, 3)``.

    Parameters
    ----------
    data : bytes or ndarray of uint8
        The encoded file content (JPEG, PNG, BMP, TIFF, WebP, PNM).
    name : str, default="<bytes>"
        Used in error messages.

    Returns
    -------
    image : ndarray of shape (h, w, 3), dtype uint8
        RGB pixels, EXIF orientation applied.

    Raises
    ------
    ImageReadError
        Empty, truncated, corrupt, unsupported or oversized input.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if buf.size == 0:
        raise ImageReadError(name, "empty file (0 bytes)")
    buf = np.ascontiguousarray(buf, dtype=np.uint8).ravel()
    head = buf[:65536].tobytes()
    # The whole buffer, not just its head: a JPEG's frame header may follow 64 KB of EXIF/ICC
    # segments, and a TIFF's first directory may sit at the end of the file.
    dims = _image_dims_from_header(memoryview(buf))
    too_large = None if dims is None else _too_large(dims, memoryview(buf))
    if too_large:
        raise ImageReadError(name, too_large)
    if head[:2] == b"\xff\xd8" and not _jpeg_is_complete(buf.tobytes()):
        raise ImageReadError(name, "truncated JPEG (no end-of-image marker after the last scan)")
    # IMREAD_COLOR applies EXIF orientation and expands grayscale; ANYDEPTH keeps 16-bit
    # samples so they are scaled here rather than clipped by OpenCV.
    try:
        img = _imdecode(buf, head, name, _reduce)
    except cv2.error as exc:  # OpenCV raises for some malformed headers instead of returning None
        raise ImageReadError(name, f"not a decodable image ({exc.err or exc})") from None
    if img is None:
        raise ImageReadError(name, _undecodable_reason(head))
    img = pnm_to_8bit(img, head)
    if img.dtype == np.uint16:
        # Straight to uint8, rounded (v / 257 is never a half): no full-size float copy.
        img = cv2.convertScaleAbs(img, alpha=1 / 257)
    elif img.dtype.kind == "f":
        try:
            img = float_to_8bit(img)
        except ValueError as exc:
            raise ImageReadError(name, str(exc)) from None
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return img
    if img.shape[2] == 4:  # a TIFF read without colour conversion
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a ``uint8`` RGB array of shape ``(h, w, 3)``.

    Parameters
    ----------
    path : str or path-like
        The file. Non-ASCII characters and spaces are fine.

    Returns
    -------
    image : ndarray of shape (h, w, 3), dtype uint8

    Raises
    ------
    ImageReadError
        The file is missing, unreadable, empty, corrupt or not an image; the message names
        the file and the reason.
    """
    return decode_image(read_bytes(path), str(path))


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file's bytes, turning OS errors into :class:`ImageReadError`."""
    try:
        # A named pipe would block the run forever and a device (a link to /dev/zero) would
        # fill memory: only regular files are read.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise ImageReadError(str(path), "not a regular file (a pipe, socket or device)")
        with open(path, "rb") as fh:
            return fh.read()
    except IsADirectoryError:
        raise ImageReadError(str(path), "is a directory") from None
    except OSError as exc:
        raise ImageReadError(str(path), exc.strerror or str(exc)) from None


def resize_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to ``size_hw``; area averaging when shrinking, bilinear when growing.

    Area averaging avoids the aliasing that bilinear sampling gives on large downscales
    (a 4000-px photo to 224 px), which would otherwise change the features.
    """
    h, w = image.shape[:2]
    th, tw = size_hw
    if (h, w) == (th, tw):
        return image
    interp = cv2.INTER_AREA if th * tw < h * w else cv2.INTER_LINEAR
    return cv2.resize(image, (tw, th), interpolation=interp)
