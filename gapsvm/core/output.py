"""Files gapsvm writes for people: safe output names and PNG images (BGR on disk, for OpenCV).

Output names come from input paths and class labels, which a user (or a crafted model or
features file) chooses; these functions keep every output inside its output folder and two
inputs from writing to the same file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from gapsvm.utils.atomic import atomic_write

__all__ = [
    "MAX_NAME_BYTES",
    "common_root",
    "output_name",
    "path_inside",
    "safe_label",
    "safe_relpath",
    "unique_names",
    "write_npy",
    "write_png",
]

#: The longest file or folder name written, in UTF-8 bytes: the limit of ext4, XFS, btrfs
#: and APFS. A longer output name is shortened by :func:`output_name`.
MAX_NAME_BYTES = 255


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
        dropped. If nothing is left (``path`` is ``root`` itself, or climbs above it), the
        last ordinary part of ``path``, or ``_`` when it has none: never ``..``, ``.`` or
        empty.
    """
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    parts = _plain_parts(rel) or _plain_parts(os.fspath(path))[-1:]
    return "/".join(parts) or "_"


def _plain_parts(path: str) -> list[str]:
    return [p for p in Path(path).parts if p not in ("..", ".", "", os.sep, "/")
            and not Path(p).anchor]


def common_root(inputs: Sequence[str | os.PathLike]) -> str | None:
    """The deepest folder holding every input: a folder counts as itself, a file as its folder.

    Output names relative to it mirror the inputs' own folders, so two inputs never get one
    name: ``a/x.png`` and ``b/x.png`` become ``a/x.png`` and ``b/x.png``; one folder's images
    are named relative to that folder, one file by its name.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Files and folders, as given on a command line.

    Returns
    -------
    str or None
        An absolute folder; None without inputs, or when they share no folder (Windows
        drives).
    """
    folders = [
        os.path.abspath(p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)))
        for p in inputs
    ]
    try:
        return os.path.commonpath(folders) if folders else None
    except ValueError:  # different drives
        return None


def _fit(part: str, keep: str, limit: int) -> str:
    """``part`` if it fits in ``limit`` UTF-8 bytes; else its head cut, a short hash of the
    whole part, then its ending ``keep`` (a shortened name stays unique and recognisable)."""
    raw = part.encode("utf-8")
    if len(raw) <= limit:
        return part
    digest = "~" + hashlib.sha256(raw).hexdigest()[:10]
    head = part[: len(part) - len(keep)]
    room = limit - len(digest) - len(keep.encode("utf-8"))
    head = head.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")  # whole characters
    return head + digest + keep


def output_name(rel: str, tag: str, ext: str = ".png", *, limit: int = MAX_NAME_BYTES) -> str:
    """The output file of input ``rel``: ``<rel>.<tag><ext>``, every part at most ``limit``
    bytes long.

    The input's own extension is kept (``x.jpg`` and ``x.png`` give ``x.jpg.cam-a.png`` and
    ``x.png.cam-a.png``), so distinct inputs give distinct outputs. A folder or file name
    longer than ``limit`` UTF-8 bytes (a file system refuses it: "File name too long") is
    cut and a hash of the whole name put before its ending: ``<head>~<10 hex>.<tag><ext>``,
    the same for the same input on every run.

    Parameters
    ----------
    rel : str
        The input's relative name, ``/``-separated (from :func:`safe_relpath`); ``..`` and
        ``.`` parts are dropped.
    tag : str
        What the file holds, e.g. ``"cam-" + safe_label(label)``; a file-name part.
    ext : str, default ".png"
        The output's extension.
    limit : int, default MAX_NAME_BYTES
        Longest folder or file name, in UTF-8 bytes.

    Returns
    -------
    str
        A relative, ``/``-separated name.
    """
    *folders, name = _plain_parts(rel) or ["_"]
    ending = f".{tag}{ext}"
    # A label too long to keep whole is hashed with the rest; the extension always stays.
    keep = ending if len(ending.encode("utf-8")) <= limit // 2 else ext
    return "/".join([_fit(f, "", limit) for f in folders] + [_fit(name + ending, keep, limit)])


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


def unique_names(names: Iterable[str], used: set[str] | None = None) -> list[str]:
    """The names, with ``-2``, ``-3``, ... before the extension of each repeat.

    Two inputs named ``a/x.png`` and ``b/x.png`` given as files both become ``x.png``; their
    outputs must not overwrite each other. The first keeps its name. Names differing only in
    case count as repeats: they are one file on macOS and Windows.

    Parameters
    ----------
    names : iterable of str
    used : set of str, optional
        Names (case-folded) already taken, e.g. by an earlier chunk of the same run; the new
        names are added to it.

    Returns
    -------
    list of str
        As many names, all different, in the same order.
    """
    used = set() if used is None else used
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in used:  # "x-2.png" may itself be an input's name
            n += 1
            stem, ext = os.path.splitext(name)
            candidate = f"{stem}-{n}{ext}"
        used.add(candidate.casefold())
        out.append(candidate)
    return out


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB (or grayscale) image as PNG, atomically; BGR on disk, as OpenCV wants.

    Parameters
    ----------
    path : str or path-like
        Its folder is created if needed.
    image : ndarray of shape (h, w, 3) or (h, w), uint8 or uint16

    Raises
    ------
    ValueError
        ``image`` is not uint8 or uint16 (a float image in [0, 1] would come out black), or
        not of shape (h, w) or (h, w, 3), or empty.
    OSError
        The image could not be encoded or written; ``path`` is left as it was.
    """
    image = np.asarray(image)
    where = os.fspath(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"cannot write {where} as PNG: pixels are {image.dtype}, not uint8 or uint16 "
            "(convert first, e.g. (image * 255).round().astype(np.uint8) for values in [0, 1])"
        )
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or not image.size:
        raise ValueError(
            f"cannot write {where} as PNG: shape {image.shape} is not (h, w) or (h, w, 3) "
            "with h, w > 0"
        )
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise OSError(f"cannot encode {where} as PNG")
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
