"""Finding images in folders: flat folders and folder-per-class datasets.

The layout is that of ``keras.utils.image_dataset_from_directory``. Files that cannot be used
(unsupported formats, broken links, empty class folders) are reported as
:class:`ScanProblem` instead of vanishing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNSUPPORTED_IMAGE_EXTENSIONS",
    "list_images",
    "load_directory",
    "no_images_message",
]


#: File endings treated as images when a folder is scanned (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".jp2", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
     ".pgm", ".pbm"}
)  # fmt: skip


#: Image formats gapsvm does not read: a folder scan reports these files instead of
#: skipping them silently, so photos from a phone (HEIC) do not just vanish from a dataset.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset(
    {".heic", ".heif", ".avif", ".jxl", ".gif", ".tga", ".svg", ".psd", ".ico", ".raw", ".cr2",
     ".nef", ".arw", ".dng", ".exr"}
)  # fmt: skip

#: Why a format is not read, where there is more to say than "unsupported".
_UNSUPPORTED_WHY = {
    ".exr": "OpenEXR holds high-dynamic-range light values with no fixed white level, and "
    "OpenCV ships with its EXR reader disabled; tone-map it to a 16-bit PNG or TIFF",
}


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


_LINKED_DIR = "symbolic link to a folder, not followed (a link loop would never end)"


def _unsupported(ext: str) -> str:
    if ext in _UNSUPPORTED_WHY:
        return f"unsupported image format {ext} ({_UNSUPPORTED_WHY[ext]})"
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
    directory: str | os.PathLike,
    problems: list[ScanProblem] | None = None,
    *,
    exclude: Iterable[str | os.PathLike] = (),
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
    exclude : iterable of str or path-like, optional
        Folders not to enter, e.g. an output folder inside the input folder, whose files
        from an earlier run are not inputs.

    Returns
    -------
    list of str
    """
    out: list[str] = []
    root = os.fspath(directory)
    skip = {os.path.realpath(d) for d in exclude}

    def onerror(exc: OSError) -> None:
        if problems is not None:
            problems.append(ScanProblem(exc.filename or root, exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".")
            and not (skip and os.path.realpath(os.path.join(dirpath, d)) in skip)
        )
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
    top level and no sub-folder holding images is *flat*: no labels. A folder with both
    images at its top level and sub-folders holding images is refused: a stray image next to
    the class folders would otherwise turn a labelled data set into an unlabelled one.

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
        No image was found, or images lie beside class folders (the message names them).
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
    top_images = [e.name for e in entries if _is_image_name(e.name)]
    per_class = []  # (folder, its images, its problems)
    for d in subdirs:
        seen: list[ScanProblem] = []
        per_class.append((d, list_images(d.path, seen), seen))
    class_dirs = [d.name for d, found, _ in per_class if found]
    if top_images and class_dirs:
        raise ValueError(_mixed_layout_message(root, top_images, class_dirs))
    if subdirs and not top_images:
        if problems is not None:
            problems.extend(
                ScanProblem(e.path, _LINKED_DIR)
                for e in entries
                if not e.name.startswith(".") and e.is_symlink() and e.is_dir()
            )
            for d, found, seen in per_class:
                problems.extend(seen)
                if not found:
                    problems.append(ScanProblem(d.path, "class folder holds no images"))
        if not class_dirs:
            raise ValueError(f"no images found in the class folders of {str(root)!r}")
        paths = [p for _, found, _ in per_class for p in found]
        labels = [d.name for d, found, _ in per_class for _ in found]
        return paths, np.asarray(labels), class_dirs
    found = [] if problems is None else problems
    paths = list_images(root, found)
    if not paths:
        raise ValueError(no_images_message(root, found))
    return paths, None, []


def _mixed_layout_message(root: Path, loose: list[str], class_dirs: list[str]) -> str:
    def some(names: list[str]) -> str:
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    return (
        f"{str(root)!r} holds both class folders ({some(class_dirs)}) and {len(loose)} "
        f"image(s) beside them ({some(loose)}), so it is neither a labelled nor a flat data "
        "set: move each loose image into its class folder (or out of the folder) for a "
        "labelled data set, or move every image to the top level for an unlabelled one"
    )


def no_images_message(directory: str | os.PathLike, problems: list[ScanProblem]) -> str:
    """"no images found in ..." for a folder scan that found nothing usable, with one line per
    file that was found but could not be used (an unsupported format, a broken link)."""
    msg = (
        f"no images found in {os.fspath(directory)!r} "
        f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
    )
    if problems:
        msg += f"; {len(problems)} file(s) could not be used:" + "".join(
            f"\n  {p.path}: {p.reason}" for p in problems
        )
    return msg
