"""Finding images in folders: flat folders and folder-per-class datasets.

The layout is that of ``keras.utils.image_dataset_from_directory``. Files that cannot be used
(unsupported formats, broken links, empty class folders) are reported as
:class:`ScanProblem` instead of vanishing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNSUPPORTED_IMAGE_EXTENSIONS",
    "list_images",
    "load_directory",
]


#: File endings treated as images when a folder is scanned (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)


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
