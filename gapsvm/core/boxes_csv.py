"""The one reader of ground-truth boxes CSVs (``gapsvm evaluate`` and ``gapsvm report``).

One row per box, ``filename,label,x_min,y_min,x_max,y_max`` in pixels of the image file, with
**exclusive** ``x_max`` / ``y_max`` like :class:`~gapsvm.core.boxes.Box` (the box covers
``x_min <= x < x_max``). ``inclusive_max=True`` reads files whose maxima are the last pixel
inside the box and adds one. The reader is strict and reports every problem with its line
before anything runs; a byte-order mark (spreadsheets write one) is accepted.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gapsvm.core.boxes import Box
from gapsvm.core.decode import ImageReadError, read_image

__all__ = [
    "CSV_COLUMNS",
    "Annotation",
    "BoxesCSVError",
    "read_boxes_csv",
]


#: Columns a boxes CSV must have (others are ignored).
CSV_COLUMNS = ("filename", "label", "x_min", "y_min", "x_max", "y_max")


_MAX_LISTED = 20


class BoxesCSVError(ValueError):
    """A boxes CSV is invalid; ``problems`` lists ``(line, reason)`` pairs.

    Parameters
    ----------
    path : str
        The CSV file.
    problems : list of (int, str)
        Line number in the file (1 is the header) and what is wrong on it.
    """

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int, str]]) -> None:
        self.path = os.fspath(path)
        self.problems = list(problems)
        shown = [f"{self.path}:{line}: {reason}" for line, reason in self.problems[:_MAX_LISTED]]
        more = len(self.problems) - _MAX_LISTED
        if more > 0:
            shown.append(f"... and {more} more problem(s)")
        head = "" if len(self.problems) == 1 else f"{len(self.problems)} problems in the CSV:\n"
        super().__init__(head + "\n".join(shown))

    def __reduce__(self):  # keep the two-argument constructor picklable
        return (type(self), (self.path, self.problems))


@dataclass
class Annotation:
    """The ground-truth boxes of one label in one image.

    Attributes
    ----------
    filename : str
        As written in the CSV (relative to the images folder).
    path : str
        The image file.
    image_hw : tuple of int
        ``(height, width)`` of the decoded image (EXIF orientation applied).
    label : str
        The class, as written in the CSV.
    boxes : list of Box
        Boxes with exclusive maxima, inside the image.
    lines : list of int
        CSV line of each box.
    """

    filename: str
    path: str
    image_hw: tuple[int, int]
    label: str
    boxes: list[Box] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _coordinate(text: str | None, name: str) -> int:
    """Parse one CSV coordinate; raise ValueError with the reason."""
    if text is None or not text.strip():
        raise ValueError(f"{name} is missing")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text.strip()!r} is not a finite number")
    # Rounding 12.5 silently would hide a convention mismatch (e.g. normalised coordinates).
    if not value.is_integer():
        raise ValueError(f"{name} {text.strip()} is not a whole pixel; round the CSV explicitly")
    return int(value)


def read_boxes_csv(
    csv_path: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    classes: Iterable[Any] | None = None,
    inclusive_max: bool = False,
) -> list[Annotation]:
    """Read and validate a boxes CSV against the images it names.

    Parameters
    ----------
    csv_path : path
        CSV with the columns of :data:`CSV_COLUMNS` (in any order; extra columns ignored),
        one row per box, pixel coordinates with exclusive ``x_max`` / ``y_max``.
    images_dir : path
        Folder the ``filename`` column is relative to.
    classes : iterable, optional
        The model's classes; a label that is not one of them (compared as text) is an error.
    inclusive_max : bool, default False
        The CSV's ``x_max`` / ``y_max`` are the last pixel inside the box; one is added.

    Returns
    -------
    list of Annotation
        One per (image, label) pair, in order of first appearance; each image is decoded once
        to learn its size.

    Raises
    ------
    BoxesCSVError
        Listing every problem with its line: missing columns, empty fields, unknown or
        unreadable files, non-numeric or non-integral coordinates, empty or inverted boxes,
        boxes outside the image, labels that are not model classes, rows repeating an
        earlier row's box (with the earlier line).
    FileNotFoundError
        If the CSV or the images folder does not exist.
    """
    csv_path = os.fspath(csv_path)
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"images folder {os.fspath(images_dir)!r} does not exist")
    class_names = None if classes is None else [str(c) for c in classes]
    problems: list[tuple[int, str]] = []
    sizes = _ImageSizes(root)
    out: dict[tuple[str, str], Annotation] = {}
    first_line: dict[tuple[str, str, Box], int] = {}
    # utf-8-sig: spreadsheets often save a byte-order mark that would rename the first column.
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        _check_header(reader, csv_path)
        for row in reader:
            line = reader.line_num
            try:
                filename, label, box = _parse_row(row, class_names, inclusive_max)
                hw = sizes.check(filename, box)
            except ValueError as exc:
                if str(exc):  # an empty reason: already reported on the file's first line
                    problems.append((line, str(exc)))
                continue
            # "./a.png" and "a.png" are one image; a repeated row would count as a second box
            # (and halve box recall), so it is an error, not merged silently.
            key = Path(filename).as_posix()
            earlier = first_line.setdefault((key, label, box), line)
            if earlier != line:
                problems.append((line, f"duplicate of line {earlier}: the same box "
                                       f"{box.as_tuple()} of {label!r} in {filename!r}; "
                                       "delete the repeated row"))
                continue
            ann = out.setdefault(
                (key, label), Annotation(filename, os.fspath(root / filename), hw, label)
            )
            ann.boxes.append(box)
            ann.lines.append(line)
    if problems:
        raise BoxesCSVError(csv_path, problems)
    if not out:
        raise BoxesCSVError(csv_path, [(1, "no boxes: the file has a header but no rows")])
    return list(out.values())


def _check_header(reader: csv.DictReader, csv_path: str) -> None:
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise BoxesCSVError(csv_path, [(1, f"empty file; expected a header {CSV_COLUMNS}")])
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise BoxesCSVError(
            csv_path,
            [(1, f"missing column(s) {missing}; the header must have {list(CSV_COLUMNS)}")],
        )
    reader.fieldnames = header


def _parse_row(
    row: dict[str, str | None], class_names: list[str] | None, inclusive_max: bool
) -> tuple[str, str, Box]:
    """``(filename, label, box)`` of one row; ValueError says what is wrong with it."""
    filename = (row.get("filename") or "").strip()
    label = (row.get("label") or "").strip()
    if not filename:
        raise ValueError("filename is empty")
    if not label:
        raise ValueError("label is empty")
    if class_names is not None and label not in class_names:
        raise ValueError(f"label {label!r} is not a class of the model {class_names}")
    x0, y0, x1, y1 = (_coordinate(row.get(c), c) for c in CSV_COLUMNS[2:])
    if inclusive_max:
        x1, y1 = x1 + 1, y1 + 1
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"box ({x0}, {y0}, {x1}, {y1}) is empty or inverted: x_max must exceed x_min "
            "and y_max exceed y_min (maxima are exclusive)"
        )
    rel = Path(filename)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"filename {filename!r} must be relative to the images folder")
    return filename, label, Box(x0, y0, x1, y1)


class _ImageSizes:
    """Each named image decoded once, for its size; a missing or unreadable file is reported
    on its first line only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sizes: dict[str, tuple[int, int] | None] = {}

    def _size(self, filename: str) -> tuple[int, int]:
        if filename in self.sizes:
            hw = self.sizes[filename]
            if hw is None:
                raise ValueError("")
            return hw
        path = self.root / filename
        self.sizes[filename] = None
        if not path.is_file():
            raise ValueError(f"unknown file {filename!r}: not found in {self.root}")
        try:
            hw = read_image(path).shape[:2]
        except ImageReadError as exc:
            raise ValueError(f"image {filename!r} cannot be read: {exc.reason}") from None
        self.sizes[filename] = hw
        return hw

    def check(self, filename: str, box: Box) -> tuple[int, int]:
        """The image's (height, width); ValueError if ``box`` does not lie inside it."""
        h, w = self._size(filename)
        if box.x_min < 0 or box.y_min < 0 or box.x_max > w or box.y_max > h:
            raise ValueError(
                f"box {box.as_tuple()} lies outside the {w}x{h} image {filename!r} "
                f"(0 <= x_min < x_max <= {w}, 0 <= y_min < y_max <= {h}; maxima are exclusive)"
            )
        return h, w
