"""What ``gapsvm report`` shows, before any HTML: the model run over a folder.

Every readable image becomes a :class:`ReportEntry` (prediction, the score and map of the class
drawn, and with ground-truth boxes the localisation check); the entries give the confusion
matrix and the plain-text findings the page opens with. The CAMs come from
:meth:`GapClassifier.explain <gapsvm.estimator.classifier.GapClassifier.explain>`; nothing
here recomputes them. Boxes are read by the one strict reader,
:func:`gapsvm.core.boxes_csv.read_boxes_csv`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box
from gapsvm.core.boxes_csv import Annotation, read_boxes_csv
from gapsvm.core.cam import upsample_cam
from gapsvm.core.metrics.localisation import box_area_share, energy_in_box, pointing_game
from gapsvm.core.scan import ScanProblem, load_directory
from gapsvm.estimator.explanation import Explanation
from gapsvm.estimator.targets import is_all
from gapsvm.network.features_file import image_keys
from gapsvm.utils.progress import progress_bar

__all__ = [
    "BoxLookup",
    "Report",
    "ReportEntry",
    "collect_entries",
    "confusion",
    "confusion_labels",
    "findings",
    "read_boxes",
]

#: Ground-truth boxes by image: relative file name (POSIX separators) -> ``[(label, Box)]``.
BoxLookup = dict[str, list[tuple[str, Box]]]

# Images per call to ``explain``: enough to batch the network, few enough for a smooth bar.
_CHUNK = 64


@dataclass
class ReportEntry:
    """One image of the report.

    Attributes
    ----------
    name : str
        Path relative to the images folder (POSIX separators).
    path : str
        The file as found on disk.
    true : str or None
        Label from the class folder, None for a flat folder.
    predicted : str
        The model's prediction.
    target : str
        The class whose map is drawn (with every class's map drawn, the prediction).
    score : float
        That class's score, ``mean(cam) + intercept`` (for a binary head, the decision
        function for ``classes_[1]`` and its negative for ``classes_[0]``).
    scores : dict
        Every class's score.
    image_hw, input_hw : tuple of int
        The image's own size and the network's input size.
    cam : ndarray
        The map of ``target`` at feature resolution, without the intercept.
    peak_xy : tuple of int
        ``(x, y)`` of the map's maximum, in image pixels.
    boxes : list of Box
        Ground-truth boxes of the target class (empty without a boxes file).
    hit : bool or None
        Whether the peak lies inside one of ``boxes`` (None without boxes).
    energy, box_share : float or None
        Share of the map's positive mass inside the boxes, and share of the image the boxes
        cover (what a uniform map would get).
    trained_on : bool or None
        Whether the model was trained on this very image (by content), None when the model
        does not record its training images.
    class_cams : ndarray of shape (n_classes, h', w') or None
        Every class's map at feature resolution, in the model's class order, when the report
        draws them all (``target="all"``); else None.
    class_boxes : dict
        With ``class_cams`` and a boxes file: the image's ground-truth boxes by label.
    """

    name: str
    path: str
    true: str | None
    predicted: str
    target: str
    score: float
    scores: dict[str, float]
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    cam: np.ndarray = field(repr=False)
    peak_xy: tuple[int, int] = (0, 0)
    boxes: list[Box] = field(default_factory=list)
    hit: bool | None = None
    energy: float | None = None
    box_share: float | None = None
    trained_on: bool | None = None
    class_cams: np.ndarray | None = field(default=None, repr=False)
    class_boxes: dict[str, list[Box]] = field(default_factory=dict)

    @property
    def misclassified(self) -> bool:
        """True when the image has a label and the prediction differs from it."""
        return self.true is not None and self.true != self.predicted


@dataclass
class Report:
    """What :func:`~gapsvm.workflows.report.html.build_report` found; ``path`` is the page.

    Attributes
    ----------
    path : Path
        The written ``index.html``.
    entries : list of ReportEntry
        Every image that was read, in folder order.
    errors : list of (str, str)
        Files that could not be used and why.
    labels : list of str
        Row and column labels of ``confusion`` (the model's classes, then any other class
        folder names).
    confusion : ndarray of shape (n_labels, n_labels) or None
        Counts, rows true and columns predicted; None for a flat folder.
    findings : list of str
        Plain-text statements the page opens with (accuracy, localisation, caveats).
    """

    path: Path
    entries: list[ReportEntry]
    errors: list[tuple[str, str]]
    labels: list[str]
    confusion: np.ndarray | None
    findings: list[str]


# -- ground-truth boxes --------------------------------------------------------------------
def read_boxes(
    boxes: str | os.PathLike | Iterable[Annotation] | BoxLookup | None,
    images_dir: str | os.PathLike,
    classes: Iterable[Any],
) -> BoxLookup | None:
    """Ground-truth boxes as a lookup by relative file name.

    Parameters
    ----------
    boxes : path, list of Annotation, dict or None
        A boxes CSV (read strictly against ``images_dir`` and ``classes``: every problem is
        reported with its line before any image is run), what
        :func:`~gapsvm.core.boxes_csv.read_boxes_csv` returned, or a ready lookup.
    images_dir : str or path-like
        The folder the CSV's file names are relative to.
    classes : iterable
        The model's classes; a CSV label that is not one of them is an error.

    Returns
    -------
    dict or None
        Relative file name (POSIX separators) -> ``[(label, Box)]``; None without boxes.

    Raises
    ------
    BoxesCSVError
        The CSV is invalid (a ValueError naming the file and every bad line).
    """
    if boxes is None or isinstance(boxes, dict):
        return boxes
    if isinstance(boxes, str | os.PathLike):
        boxes = read_boxes_csv(boxes, images_dir, classes=classes)
    out: BoxLookup = {}
    for ann in boxes:
        out.setdefault(Path(ann.filename).as_posix(), []).extend((ann.label, b) for b in ann.boxes)
    return out


def _labelled(lookup: BoxLookup, name: str) -> list[tuple[str, Box]]:
    # A bare file name also matches (a lookup built by hand may key images by name only).
    return lookup.get(name) or lookup.get(Path(name).name) or []


def _boxes_of(lookup: BoxLookup, name: str, target: str) -> list[Box]:
    return [b for label, b in _labelled(lookup, name) if label == target]


def _localise(entry: ReportEntry, full: np.ndarray, boxes: list[Box]) -> None:
    """Fill the entry's localisation check; ``full`` is its map at image resolution."""
    entry.boxes = boxes
    if boxes:
        entry.hit = pointing_game(full, boxes, tolerance=0.0)
        energy = energy_in_box(full, boxes)
        entry.energy = None if np.isnan(energy) else energy
        entry.box_share = box_area_share(entry.image_hw, boxes)


# -- collecting ----------------------------------------------------------------------------
def _training_keys(model: Any) -> frozenset[str] | None:
    """The content keys of the model's training images, or None when it has none to compare.

    ``gapsvm train`` records them (``training_info_["train_keys"]``); they are comparable
    only under the preprocessing version they were computed with, which the keys cover.
    """
    from gapsvm.core.cache import PREPROCESS_VERSION

    info = getattr(model, "training_info_", None) or {}
    keys = info.get("train_keys")
    if keys is None or info.get("train_keys_preprocess_version") != PREPROCESS_VERSION:
        return None
    return frozenset(keys)


def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _entry(
    info: Explanation, j: int, path: str, name: str, true: str | None
) -> tuple[ReportEntry, np.ndarray]:
    """Image ``j`` of an explained chunk, and its map upsampled to the image; with every
    class's map, the predicted class's is the one the entry's checks use."""
    classes = [str(c) for c in info.classes]
    every = None
    if info.all_classes:
        every = np.asarray(info.cams[j], dtype=np.float32)
        t = int(np.flatnonzero(info.classes == info.predicted[j])[0])
        cam, score = every[t], float(info.scores[j, t])
    else:
        t, score = int(info.target[j]), info.score(j)
        cam = np.asarray(info.cams[j], dtype=np.float32)
    hw = tuple(int(v) for v in info.image_hw[j])
    full = upsample_cam(cam, hw)
    py, px = np.unravel_index(int(np.argmax(full)), full.shape)
    entry = ReportEntry(
        name=name, path=path, true=true, predicted=str(info.predicted[j]),
        target=classes[t], score=score,
        scores={c: float(s) for c, s in zip(classes, info.scores[j], strict=True)},
        image_hw=hw, input_hw=tuple(int(v) for v in info.input_hw[j]), cam=cam,
        peak_xy=(int(px), int(py)), class_cams=every,
    )  # fmt: skip
    return entry, full


def collect_entries(
    model: Any,
    images_dir: str | os.PathLike,
    target: Any,
    input_size: Any,
    boxes: BoxLookup | None,
    verbose: int = 0,
) -> tuple[list[ReportEntry], list[tuple[str, str]], bool]:
    """Run the model over a folder: one entry per readable image.

    Parameters
    ----------
    model : GapClassifier
        Fitted, with a linear head.
    images_dir : str or path-like
        One sub-folder per class, or a flat folder.
    target : label, "all" or None
        The class whose map is drawn (already resolved); None: each image's prediction;
        ``"all"``: every class's map (the checks use the prediction's).
    input_size : object
        As :meth:`GapClassifier.explain` takes it.
    boxes : dict or None
        From :func:`read_boxes`.
    verbose : int, default=0
        1 or 2 shows a progress bar.

    Returns
    -------
    entries : list of ReportEntry
        In folder order.
    errors : list of (str, str)
        Relative path and reason of each file that could not be used.
    labelled : bool
        Whether the folder has one sub-folder per class.
    """
    problems: list[ScanProblem] = []
    paths, labels, _ = load_directory(images_dir, problems)
    trained = _training_keys(model)
    root = os.fspath(images_dir)
    errors = [(_rel(p.path, root), p.reason) for p in problems]
    entries: list[ReportEntry] = []
    with progress_bar(len(paths), verbose, "report") as bar:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            info = model.explain(chunk, target, input_size=input_size, on_error="skip")
            errors += [(_rel(e.path, root), e.reason) for e in info.errors]
            for j, path in enumerate(chunk):
                if info.cams[j] is None:
                    continue
                true = None if labels is None else str(labels[start + j])
                entry, full = _entry(info, j, path, _rel(path, root), true)
                if trained is not None:
                    entry.trained_on = image_keys([path])[0] in trained
                if boxes is not None:
                    _localise(entry, full, _boxes_of(boxes, entry.name, entry.target))
                    if entry.class_cams is not None:
                        for b_label, b in _labelled(boxes, entry.name):
                            entry.class_boxes.setdefault(b_label, []).append(b)
                entries.append(entry)
            bar.update(len(chunk))
    return entries, errors, labels is not None


def confusion_labels(classes: Iterable[Any], entries: list[ReportEntry]) -> list[str]:
    """The model's classes, then any other class folder name, as text."""
    names = [str(c) for c in classes]
    return names + sorted({e.true for e in entries if e.true is not None} - set(names))


def confusion(entries: list[ReportEntry], labels: list[str]) -> np.ndarray:
    """Counts of (true, predicted) pairs; rows true, columns predicted, in ``labels`` order."""
    index = {c: i for i, c in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for e in entries:
        cm[index[e.true], index[e.predicted]] += 1
    return cm


# -- findings ------------------------------------------------------------------------------
def _label_finding(entries: list[ReportEntry], labelled: bool) -> list[str]:
    n = len(entries)
    if not n:
        return []
    if labelled:
        bad = sum(e.misclassified for e in entries)
        return [f"Accuracy on this folder: {100 * (n - bad) / n:.1f}% ({n - bad} of {n} images); "
                f"{bad} misclassified" + (", shown first in each class." if bad else ".")
                + _optimism(entries)]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.predicted] = counts.get(e.predicted, 0) + 1
    return ["No labels (flat folder): images are grouped by predicted class ("
            + ", ".join(f"{c}: {k}" for c, k in sorted(counts.items())) + ")."]


def _optimism(entries: list[ReportEntry]) -> str:
    """The caveat of an accuracy that counts images the model was trained on."""
    seen = [e for e in entries if e.trained_on]
    if not seen:
        return ""
    new = [e for e in entries if e.trained_on is False]
    text = (f" This accuracy is optimistic: {len(seen)} of these {len(entries)} images were "
            "training images of this model")
    if not new:
        return text + ("; the cross-validated accuracy in the model card, where recorded, "
                       "is the estimate for new images.")
    ok = sum(not e.misclassified for e in new)
    return text + (f"; on the other {len(new)} images it is {100 * ok / len(new):.1f}% "
                   f"({ok} of {len(new)}).")


def _training_finding(entries: list[ReportEntry], labelled: bool) -> list[str]:
    """Without labels there is no accuracy to caveat, but the count still matters."""
    seen = sum(bool(e.trained_on) for e in entries)
    if labelled or not seen:
        return []
    return [f"{seen} of these {len(entries)} images were training images of this model."]


def _target_finding(entries: list[ReportEntry], target: Any) -> list[str]:
    other = [e for e in entries if e.predicted != e.target]
    if target is None or is_all(target) or not other:
        return []
    names = ", ".join(e.name for e in other[:8]) + (", ..." if len(other) > 8 else "")
    return [
        f"{len(other)} of {len(entries)} images are not predicted as {target}, although every "
        f"map drawn is the one for {target}: there the map shows where the evidence for "
        f"{target} lies, but it does not win the whole image ({names})."
    ]


def _boxes_findings(entries: list[ReportEntry], boxes: BoxLookup) -> list[str]:
    out = []
    seen = {e.name for e in entries} | {Path(e.name).name for e in entries}
    stray = sorted(set(boxes) - seen)
    if stray:
        out.append(f"The boxes file names {len(stray)} file(s) not in this folder: "
                   + ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else "") + ".")
    scored = [e for e in entries if e.boxes]
    if not scored:
        return [*out, "The boxes file has no box of the drawn class for any image here."]
    hits = sum(bool(e.hit) for e in scored)
    misses = [e for e in scored if not e.hit]
    msg = f"Map peak inside a ground-truth box: {hits} of {len(scored)} images with a box"
    if misses:
        msg += "; missed: " + ", ".join(
            f"{e.name} (peak at x={e.peak_xy[0]}, y={e.peak_xy[1]})" for e in misses)
    out.append(msg + ".")
    en = [e for e in scored if e.energy is not None]
    if en:
        out.append(
            f"Share of the map's positive mass inside the boxes: "
            f"{100 * np.mean([e.energy for e in en]):.0f}% on average, where the boxes "
            f"cover {100 * np.mean([e.box_share for e in en]):.1f}% of the image "
            "(what a uniform map would get)."
        )
    return out


def findings(
    entries: list[ReportEntry], errors: list[tuple[str, str]], labelled: bool,
    target: Any, boxes: BoxLookup | None,
) -> list[str]:
    """Plain-text statements the page opens with: accuracy (or the predicted classes of a
    flat folder), images not predicted as a fixed target, localisation, unusable files."""
    out = (_label_finding(entries, labelled) + _training_finding(entries, labelled)
           + _target_finding(entries, target))
    if boxes is not None:
        out += _boxes_findings(entries, boxes)
    if errors:
        out.append(f"{len(errors)} file(s) could not be used; they are listed at the end.")
    return out
