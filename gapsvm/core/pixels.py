"""Sample values to 8-bit RGB: what a pixel value means, for files and in-memory images.

:mod:`gapsvm.core.decode` turns bytes into arrays; this module gives their values one meaning
whatever the source: PGM/PPM samples scaled by the file's own maximum value, floating-point
samples as intensities in [0, 1] (clipped, never stretched; NaN refused), 16-bit as 1/257,
grayscale as three equal channels and RGBA without its alpha.
"""

from __future__ import annotations

import numpy as np

__all__ = ["float_to_8bit", "image_from_array", "pnm_maxval", "pnm_to_8bit"]


def pnm_maxval(head: bytes) -> tuple[bytes, int] | None:
    """(magic, maximum sample value) of a PGM/PPM header, or None."""
    magic = head[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        return None
    tokens: list[bytes] = []
    for line in head[2:1024].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 3:
            break
    return (magic, int(tokens[2])) if len(tokens) >= 3 and tokens[2].isdigit() else None


def pnm_to_8bit(img: np.ndarray, head: bytes) -> np.ndarray:
    """Scale PGM/PPM samples by the file's own maximum value (OpenCV scales only 255, 65535,
    and ASCII files up to 255)."""
    found = pnm_maxval(head)
    if found is None or found[1] in (0, 255, 65535) or found[1] > 65535:
        return img
    magic, maxval = found
    if img.dtype == np.uint8 and magic in (b"P2", b"P3"):
        return img
    levels = np.minimum(np.arange(256 if img.dtype == np.uint8 else 65536), maxval)
    lut = ((levels * 510 + maxval) // (2 * maxval)).astype(np.uint8)  # exact, halves round up
    return lut[img]  # a table lookup: no float copy of the image


def float_to_8bit(img: np.ndarray) -> np.ndarray:
    """Floating-point samples are intensities in [0, 1]: clipped, never stretched (a
    stretch would turn a constant image black and let one outlier darken the rest)."""
    if np.isnan(img).any():
        raise ValueError("floating-point image holds NaN pixels (expected values in [0, 1])")
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)


def image_from_array(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert an in-memory image to ``uint8`` RGB ``(h, w, 3)`` as files are converted.

    Grayscale ``(h, w)`` or ``(h, w, 1)`` becomes three equal channels and RGBA ``(h, w, 4)``
    loses its alpha. ``uint8`` is kept (not copied when already RGB) and ``uint16`` is scaled
    as 16-bit files are. Floating-point images are read as values in [0, 1] when their maximum
    is at most 1, otherwise as 0..255 (what ``keras.utils.img_to_array`` returns); either way
    clipped, and NaN is refused. Other integer types must hold values in 0..255.

    Parameters
    ----------
    image : ndarray
    name : str, default="<array>"
        Used in error messages.

    Returns
    -------
    image : ndarray of shape (h, w, 3), dtype uint8

    Raises
    ------
    ValueError
        Another shape, a non-numeric dtype, NaN, or integers outside 0..255.
    """
    if image.ndim == 3 and image.shape[2] in (1, 4):
        image = image[..., :1] if image.shape[2] == 1 else image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(
            f"{name} has shape {image.shape}; expected (height, width) grayscale, or "
            "(height, width, 3) RGB, or (height, width, 4) RGBA"
        )
    kind = image.dtype.kind
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif kind == "f":
        if np.isnan(image).any():
            raise ValueError(f"{name} holds NaN values")
        scale = 255.0 if image.max() <= 1.0 else 1.0
        image = np.floor(np.clip(image * scale, 0.0, 255.0) + 0.5).astype(np.uint8)
    elif kind in "iu" and image.dtype != np.uint8:
        if image.min() < 0 or image.max() > 255:
            raise ValueError(
                f"{name} has dtype {image.dtype} with values in {image.min()}..{image.max()}; "
                "expected 0..255 (or uint8, uint16, or floats in [0, 1])"
            )
        image = image.astype(np.uint8)
    elif kind not in "iuf":
        raise ValueError(
            f"{name} has dtype {image.dtype}; expected uint8 RGB (0..255), uint16, or floats"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)  # RGBA with its alpha sliced off is a strided view
    return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
