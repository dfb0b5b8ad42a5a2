"""Reading images from disk and from memory: the only module that decodes pixels.

Everything downstream sees ``uint8`` RGB arrays of shape ``(h, w, 3)``. OpenCV decodes
(``cv2.imdecode`` over the file's bytes so that non-ASCII paths work on every platform) and
returns BGR, which is flipped to RGB here, once. Grayscale becomes three equal channels, an
alpha channel is dropped (as ``PIL.Image.convert("RGB")`` and ``keras.utils.load_img`` do),
16-bit images are scaled to 8 bits, and EXIF orientation is applied, as browsers do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import cv2
import numpy as np

__all__ = [
    "MAX_PIXELS",
    "ImageReadError",
    "decode_image",
    "read_image",
    "resize_image",
]


#: Decoding refuses larger images (about 16k x 16k): a 20000x20000 PNG would need 1.2 GB
#: of RGB before any resizing, and an out-of-memory kill loses the whole run.
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


def _pnm_dims(data: memoryview) -> Dims:
    tokens: list[bytes] = []
    for line in bytes(data[2:512]).split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            break
    if len(tokens) >= 2 and tokens[0].isdigit() and tokens[1].isdigit():
        return int(tokens[1]), int(tokens[0])
    return None


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


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
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
    if dims is not None and dims[0] * dims[1] > MAX_PIXELS:
        raise ImageReadError(
            name,
            f"image is {dims[1]}x{dims[0]} pixels, over the {MAX_PIXELS:,}-pixel limit "
            "(downscale it first; decoding it would need "
            f"{dims[0] * dims[1] * 3 / 2**30:.1f} GiB)",
        )
    if head[:2] == b"\xff\xd8" and not _jpeg_is_complete(buf.tobytes()):
        raise ImageReadError(name, "truncated JPEG (no end-of-image marker after the last scan)")
    # IMREAD_COLOR applies EXIF orientation and expands grayscale; ANYDEPTH keeps 16-bit
    # samples so they are scaled here rather than clipped by OpenCV.
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # OpenCV raises for some malformed headers instead of returning None
        raise ImageReadError(name, f"not a decodable image ({exc.err or exc})") from None
    if img is None:
        raise ImageReadError(name, _undecodable_reason(head))
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return img
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
