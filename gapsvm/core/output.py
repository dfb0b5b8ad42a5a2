"""Files gapsvm writes for people: safe output names and PNG images (BGR on disk, for OpenCV)."""

from __future__ import annotations

import os
import re

import cv2
import numpy as np

__all__ = [
    "safe_label",
    "write_png",
]


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
    from gapsvm.utils.atomic import atomic_write

    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise OSError(f"cannot encode {os.fspath(path)} as PNG")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.tobytes())
