"""Reading images from disk and from memory: the only module that decodes pixels.

Everything downstream sees ``uint8`` RGB arrays of shape ``(h, w, 3)``. OpenCV decodes
(``cv2.imdecode`` over ``np.fromfile`` so that non-ASCII paths work on every platform) and
returns BGR, which is flipped to RGB here, once. Grayscale becomes three equal channels, an
alpha channel is dropped (as ``PIL.Image.convert("RGB")`` and ``keras.utils.load_img`` do),
16-bit images are scaled to 8 bits, and EXIF orientation is applied, as browsers do.

Images smaller than one VGG16 block5 cell cannot produce a feature map; where the network
input keeps the image's own size (``input_size=None`` or a scale factor), such images are
*upscaled* (aspect ratio kept) until the shorter side is :data:`MIN_SIDE` pixels.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "UNSUPPORTED_IMAGE_EXTENSIONS",
    "ImageReadError",
    "decode_image",
    "format_size",
    "list_images",
    "load_directory",
    "parse_input_size",
    "read_image",
    "resize_image",
    "safe_label",
    "target_size",
    "write_png",
]

#: File endings treated as images when a folder is scanned (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

#: Smallest side fed to the network in native-size mode: two block5 cells at stride 16.
MIN_SIDE = 32

#: Decoding refuses larger images (about 16k x 16k): a 20000x20000 PNG would need 1.2 GB
#: of RGB before any resizing, and an out-of-memory kill loses the whole run.
MAX_PIXELS = 16384 * 16384

InputSize = tuple[int, int] | float | None


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


def _image_dims_from_header(data: bytes | memoryview) -> tuple[int, int] | None:
    """Return (height, width) from the header of a PNG, JPEG, GIF, BMP, WebP, TIFF or PNM
    file, or None if the format or header is not recognised.

    Cheap guard against decompression bombs: read before OpenCV allocates anything. Only the
    bytes that hold the size are touched, whatever the file size.
    """
    n = len(data)
    sig = bytes(data[:12])
    if sig[:8] == b"\x89PNG\r\n\x1a\n" and n >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if sig[:2] == b"\xff\xd8":
        i = 2
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
            seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
            # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h = int.from_bytes(data[i + 5 : i + 7], "big")
                w = int.from_bytes(data[i + 7 : i + 9], "big")
                return h, w
            i += 2 + seg_len
        return None
    if sig[:6] in (b"GIF87a", b"GIF89a") and n >= 10:
        return int.from_bytes(data[8:10], "little"), int.from_bytes(data[6:8], "little")
    if sig[:2] == b"BM" and n >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
            return int.from_bytes(data[20:22], "little"), int.from_bytes(data[18:20], "little")
        w = int.from_bytes(data[18:22], "little", signed=True)
        h = int.from_bytes(data[22:26], "little", signed=True)  # negative: top-down rows
        return abs(h), abs(w)
    if sig[:4] == b"RIFF" and sig[8:12] == b"WEBP" and n >= 30:
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
    if sig[:4] in (b"II*\x00", b"MM\x00*") and n >= 8:
        order = "little" if sig[:2] == b"II" else "big"
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
    if sig[:1] == b"P" and sig[1:2] in b"123456" and sig[2:3].isspace():
        tokens = []
        for line in bytes(data[2:512]).split(b"\n"):
            tokens += line.split(b"#", 1)[0].split()
            if len(tokens) >= 2:
                break
        if len(tokens) >= 2 and tokens[0].isdigit() and tokens[1].isdigit():
            return int(tokens[1]), int(tokens[0])
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


def parse_input_size(value: InputSize | str | Sequence[int]) -> InputSize:
    """Normalise an ``input_size`` parameter.

    Parameters
    ----------
    value : tuple of two ints, int, float, str or None
        ``(h, w)`` resizes every image to that size; an int ``s`` means ``(s, s)``; a float
        is a scale factor applied to each image's own size; ``None`` keeps each image's own
        size. Strings come from the command line: ``"128x64"`` (height x width), ``"224"``,
        ``"x2"`` or ``"2.0x"`` (a scale), ``"native"``.

    Returns
    -------
    tuple of (int, int), float or None

    Raises
    ------
    ValueError
        Not one of the forms above, or not positive.
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("", "none", "native"):
            return None
        if s.startswith("x") or s.endswith("x"):
            return parse_input_size(float(s.strip("x")))
        if "x" in s:
            h, w = s.split("x", 1)
            return parse_input_size((int(h), int(w)))
        return parse_input_size(int(s)) if s.isdigit() else parse_input_size(float(s))
    if isinstance(value, bool):
        raise ValueError(f"input_size must be (h, w), a scale or None, got {value!r}")
    if isinstance(value, int | np.integer):
        return parse_input_size((int(value), int(value)))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"input_size scale must be a positive number, got {value!r}")
        return float(value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_size must be (height, width), a scale factor or None, got {value!r}"
        ) from None
    if h < MIN_SIDE // 2 or w < MIN_SIDE // 2:
        raise ValueError(
            f"input_size {value!r} is smaller than one stride-16 feature cell; use at least "
            f"{MIN_SIDE}x{MIN_SIDE}"
        )
    return (h, w)


def format_size(input_size: InputSize) -> str:
    """Spell an ``input_size`` the way the command line takes it (``"128x64"``, ``"x2"``)."""
    if input_size is None:
        return "native"
    if isinstance(input_size, float):
        return f"x{input_size:g}"
    return f"{input_size[0]}x{input_size[1]}"


def target_size(image_hw: tuple[int, int], input_size: InputSize) -> tuple[int, int]:
    """The (height, width) fed to the network for an image of size ``image_hw``.

    Parameters
    ----------
    image_hw : tuple of int
        The image's own (height, width).
    input_size : tuple of int, float or None
        As returned by :func:`parse_input_size`.

    Returns
    -------
    (height, width) : tuple of int
        Fixed sizes are returned as given. Native and scaled sizes are upscaled, keeping the
        aspect ratio, until the shorter side is at least :data:`MIN_SIDE`.
    """
    if isinstance(input_size, tuple):
        return input_size
    h, w = image_hw
    scale = 1.0 if input_size is None else float(input_size)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    short = min(th, tw)
    if short < MIN_SIDE:
        up = MIN_SIDE / short
        th, tw = max(MIN_SIDE, round(th * up)), max(MIN_SIDE, round(tw * up))
    return th, tw


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


#: Image formats gapsvm does not read: a folder scan reports these files instead of
#: skipping them silently, so photos from a phone (HEIC) do not just vanish from a dataset.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset(
    {".heic", ".heif", ".avif", ".jxl", ".gif", ".tga", ".svg", ".psd", ".ico", ".raw", ".cr2",
     ".nef", ".arw", ".dng"}
)  # fmt: skip


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


_LINKED_DIR = "symbolic link to a folder, not followed (a link loop would never end)"


def _unsupported(ext: str) -> str:
    return (
        f"unsupported image format {ext} (gapsvm reads "
        f"{', '.join(sorted(IMAGE_EXTENSIONS))}); convert it to JPEG or PNG"
    )


@dataclass
class ScanProblem:
    """A path found while scanning a folder that cannot be used, with the reason."""

    path: str
    reason: str


def list_images(
    directory: str | os.PathLike, problems: list[ScanProblem] | None = None
) -> list[str]:
    """List image files below ``directory`` (recursively), sorted, as strings.

    Symbolic links to files are followed; links to directories are not (a link loop cannot
    hang the scan). Unreadable sub-folders and broken links are reported in ``problems``
    when a list is given, else skipped silently.

    Parameters
    ----------
    directory : str or path-like
    problems : list, optional
        Receives a :class:`ScanProblem` for every path that could not be used.

    Returns
    -------
    list of str
    """
    out: list[str] = []
    root = os.fspath(directory)

    def onerror(exc: OSError) -> None:
        if problems is not None:
            problems.append(ScanProblem(exc.filename or root, exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            if problems is not None and os.path.islink(os.path.join(dirpath, d)):
                problems.append(ScanProblem(os.path.join(dirpath, d), _LINKED_DIR))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not _is_image_name(name):
                ext = os.path.splitext(name)[1].lower()
                if problems is not None and ext in UNSUPPORTED_IMAGE_EXTENSIONS:
                    problems.append(ScanProblem(full, _unsupported(ext)))
                continue
            if os.path.islink(full) and not os.path.exists(full):
                if problems is not None:
                    problems.append(ScanProblem(full, "broken or looping symbolic link"))
                continue
            out.append(full)
    return out


def load_directory(
    directory: str | os.PathLike, problems: list[ScanProblem] | None = None
) -> tuple[list[str], np.ndarray | None, list[str]]:
    """Load a folder of images, with labels when it is laid out one sub-folder per class.

    The layout is that of ``keras.utils.image_dataset_from_directory``: ``directory/<class>/``
    holds the images of one class, and class names are sorted. A folder with images at its
    top level and no class sub-folders is *flat*: no labels.

    Parameters
    ----------
    directory : str or path-like
    problems : list, optional
        Receives a :class:`ScanProblem` for every path that could not be used (unreadable
        folders, broken links, empty class folders).

    Returns
    -------
    paths : list of str
        Sorted by class, then by file name.
    labels : ndarray of str or None
        The class name of each path, or None for a flat folder.
    class_names : list of str
        Sorted; empty for a flat folder.

    Raises
    ------
    FileNotFoundError
        ``directory`` does not exist or is not a folder.
    ValueError
        No image was found.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise FileNotFoundError(f"cannot list {str(root)!r}: {exc.strerror}") from None
    subdirs = [
        e for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
    ]
    top_images = [e for e in entries if _is_image_name(e.name)]
    if subdirs and not top_images:
        paths: list[str] = []
        labels: list[str] = []
        class_names: list[str] = []
        if problems is not None:
            problems.extend(
                ScanProblem(e.path, _LINKED_DIR)
                for e in entries
                if not e.name.startswith(".") and e.is_symlink() and e.is_dir()
            )
        for d in subdirs:
            found = list_images(d.path, problems)
            if not found:
                if problems is not None:
                    problems.append(ScanProblem(d.path, "class folder holds no images"))
                continue
            class_names.append(d.name)
            paths.extend(found)
            labels.extend([d.name] * len(found))
        if not paths:
            raise ValueError(f"no images found in the class folders of {str(root)!r}")
        return paths, np.asarray(labels), class_names
    paths = list_images(root, problems)
    if not paths:
        raise ValueError(
            f"no images found in {str(root)!r} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return paths, None, []


def safe_label(label: object) -> str:
    """A class label as a file-name part: a label comes from the model file, and a crafted
    one like ``../../x`` must not choose where output goes."""
    text = re.sub(r"[^\w .+-]+", "_", str(label)).strip(". ")
    return text or "_"


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 RGB (or grayscale) image as PNG, atomically; BGR on disk, as OpenCV wants.

    Parameters
    ----------
    path : str or path-like
        Its folder is created if needed.
    image : ndarray of shape (h, w, 3) or (h, w), uint8

    Raises
    ------
    OSError
        The image could not be encoded or written; ``path`` is left as it was.
    """
    from ._atomic import atomic_write

    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise OSError(f"cannot encode {os.fspath(path)} as PNG")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.tobytes())
