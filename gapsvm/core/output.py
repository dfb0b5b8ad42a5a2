"""Files gapsvm writes for people: safe output names and PNG images (BGR on disk, for OpenCV).

Output names come from input paths and class labels, which a user (or a crafted model or
features file) chooses; these functions keep every output inside its output folder and two
inputs from writing to the same file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from gapsvm.utils.atomic import atomic_write

__all__ = [
    "path_inside",
    "safe_label",
    "safe_relpath",
    "unique_names",
    "write_npy",
    "write_png",
]


def safe_label(label: object) -> str:
    """A class label as a file-name part: a label comes from the model file, and a crafted
    one like ``../../x`` must not choose where output goes."""
    text = re.sub(r"[^\w .+-]+", "_", str(label)).strip(". ")
    return text or "_"


def safe_relpath(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """A relative output name for ``path`` that cannot climb out of the output folder.

    Parameters
    ----------
    path : str or path-like
        An input file.
    root : str or path-like or None
        The folder ``path`` was found in; None (or empty) keeps the file name only.

    Returns
    -------
    str
        ``path`` relative to ``root``, ``/``-separated, with every ``..`` and ``.`` part
        dropped; the file name if nothing is left.
    """
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    parts = [p for p in Path(rel).parts if p not in ("..", ".", "", os.sep)]
    return "/".join(parts) or os.path.basename(path)


def path_inside(out: str | os.PathLike, rel: str) -> Path:
    """``out / rel``, refused if it would resolve outside ``out`` (symbolic links included).

    Parameters
    ----------
    out : str or path-like
        The output folder.
    rel : str
        A relative name, e.g. from :func:`safe_relpath`.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``out / rel`` resolves outside ``out``.
    """
    out = Path(out)
    dest = out / rel
    if not dest.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"refusing to write {dest}: outside the output folder {out}")
    return dest


def unique_names(names: Iterable[str]) -> list[str]:
    """The names, with ``-2``, ``-3``, ... before the extension of each repeat.

    Two inputs named ``a/x.png`` and ``b/x.png`` given as files both become ``x.png``; their
    outputs must not overwrite each other. The first keeps its name.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of str
        As many names, all different, in the same order.
    """
    used: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in used:  # "x-2.png" may itself be an input's name
            n += 1
            stem, ext = os.path.splitext(name)
            candidate = f"{stem}-{n}{ext}"
        used.add(candidate)
        out.append(candidate)
    return out


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
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise OSError(f"cannot encode {os.fspath(path)} as PNG")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.tobytes())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as ``.npy``, atomically (its folder is created if needed).

    Parameters
    ----------
    path : str or path-like
        The file; unlike :func:`numpy.save`, no ``.npy`` is appended to it.
    array : ndarray

    Raises
    ------
    OSError
        The file could not be written; ``path`` is left as it was.
    """
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
