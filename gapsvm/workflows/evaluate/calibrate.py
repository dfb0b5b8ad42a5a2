"""Calibration of the box threshold (and network inputs) on one set, for scoring on another.

Choe et al. [1]_ showed that a threshold chosen on the images being scored inflates
localisation results. :func:`calibrate` chooses the threshold, and optionally the network
inputs among a few candidates, that maximise GT-known localisation (the true class's box at
IoU >= 0.5) on a calibration set; ``gapsvm evaluate --calibrate`` then scores *other* images
with it, and :func:`check_disjoint` refuses sets that share an image.

The sweep is :func:`~gapsvm.core.metrics.sweep.iou_curve`'s. It cuts the min-max normalised
map, while boxes are cut at a fraction of the map's maximum
(:func:`~gapsvm.core.boxes.cam_to_boxes`); :func:`_fraction_thresholds` maps each threshold
of the second kind to the first, per map, so the threshold chosen is the one boxes use.

References
----------
.. [1] J. Choe et al. "Evaluating Weakly Supervised Object Localization Methods Right".
   CVPR 2020.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapsvm.core import metrics as M
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.sizes import format_size
from gapsvm.network.features_file import image_keys
from gapsvm.workflows.evaluate.run import (
    Size,
    cam_image,
    class_indices,
    class_maps_of,
    parse_sizes,
)
from gapsvm.workflows.evaluate.table import IOU_MATCH

__all__ = ["Calibration", "calibrate", "check_disjoint", "sizes_label"]


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` chose, and on what.

    Attributes
    ----------
    threshold : float
        The box threshold (a fraction of the map's maximum) with the best GT-known
        localisation; the lowest on ties.
    scales : tuple
        The candidate network inputs it was reached with (the first candidate on ties).
    gt_known : float
        GT-known localisation on the calibration set at that choice.
    n_images, n_pairs : int
        Calibration images and (image, label) pairs.
    source : str
        ``"calibrated on FILE (n images)"``, for reports and the model.
    candidates : dict
        Per candidate (its label, e.g. ``"x1+x2"``): ``gt_known`` per threshold of
        ``thresholds``.
    thresholds : list of float
        The thresholds tried.
    """

    threshold: float
    scales: tuple[Size, ...]
    gt_known: float
    n_images: int
    n_pairs: int
    source: str
    candidates: dict[str, list[float]] = field(repr=False)
    thresholds: list[float] = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        """The calibration as plain JSON values (for ``evaluation.json``'s settings)."""
        return {
            "source": self.source, "threshold": self.threshold,
            "scales": [list(s) if isinstance(s, tuple) else s for s in self.scales],
            "gt_known": self.gt_known, "n_images": self.n_images, "n_pairs": self.n_pairs,
            "best_per_candidate": {
                k: {"gt_known": max(v), "threshold": self.thresholds[int(np.argmax(v))]}
                for k, v in self.candidates.items()
            },
        }


def sizes_label(sizes: Sequence[Size]) -> str:
    """A candidate's label: ``x1``, ``224x224``, ``x1+x2`` for a multi-scale CAM."""
    return "+".join(f"x{s:g}" if not isinstance(s, tuple) else format_size(s) for s in sizes)


def check_disjoint(calibration: Sequence[Annotation], scored: Sequence[Annotation]) -> None:
    """Refuse a calibration set that shares an image with the scored set.

    Images are the same when their resolved paths are, or their contents (the feature
    cache's content key, so a copy under another name counts too).

    Raises
    ------
    ValueError
        One line naming a shared image and how many there are.
    """
    def paths(anns: Sequence[Annotation]) -> dict[str, str]:
        return {os.path.realpath(a.path): a.filename for a in anns}

    cal, sco = paths(calibration), paths(scored)
    shared = [sco[p] for p in sco if p in cal]
    if not shared:
        keys = dict(zip(image_keys(list(cal)), cal.values(), strict=True))
        keys.pop(None, None)
        shared = [name for k, name in zip(image_keys(list(sco)), sco.values(), strict=True)
                  if k is not None and k in keys]
    if shared:
        raise ValueError(
            f"the calibration and scored sets share {len(shared)} image(s) (e.g. "
            f"{shared[0]!r}): a threshold chosen on the images it scores is optimistic; "
            "calibrate on other images"
        )


def _fraction_thresholds(cam: np.ndarray, thresholds: np.ndarray) -> np.ndarray | None:
    """Thresholds on the min-max normalised map that keep what ``cam >= t * max`` keeps;
    None when the map has no positive value (no box: a miss at every threshold)."""
    peak, lo = float(cam.max()), float(cam.min())
    if peak <= 0.0:
        return None
    if peak <= lo:  # a flat positive map: every threshold keeps the whole image
        return np.zeros_like(thresholds)
    return np.clip((thresholds * peak - lo) / (peak - lo), 0.0, 1.0)


def _hits(cam: np.ndarray, gt: list, thresholds: np.ndarray) -> np.ndarray:
    """Per threshold, whether the map's box localises the object (IoU >= 0.5)."""
    mapped = _fraction_thresholds(cam, thresholds)
    if mapped is None:
        return np.zeros(thresholds.size, dtype=bool)
    return M.iou_curve(cam, gt, mapped) >= IOU_MATCH


def calibrate(
    model: Any,
    annotations: Sequence[Annotation],
    *,
    candidates: Sequence[Sequence[Any]] = ((1.0,),),
    thresholds: Sequence[float] | np.ndarray = M.MAXBOXACC_THRESHOLDS,
    name: str = "calibration set",
    chunk_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    """Choose the box threshold (and network inputs) maximising GT-known localisation.

    Parameters
    ----------
    model : GapClassifier
        Fitted, with a linear head.
    annotations : sequence of Annotation
        The calibration set, labels among the model's classes; never the images to score.
    candidates : sequence of sequences, default ((1.0,),)
        Network inputs to choose among; each is one input (``(2.0,)``, ``((224, 224),)``)
        or several (a multi-scale CAM, as ``evaluate``'s ``scales``).
    thresholds : sequence of float, default 0, 0.01, ..., 0.99
        Box thresholds tried, fractions of the map's maximum.
    name : str, default "calibration set"
        What the source phrase calls the set (e.g. the CSV's file name).
    chunk_size : int, default 8
        Images whose feature maps are held in memory at once.
    progress : callable, optional
        Called with the number of images just finished.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        No annotations, no candidates, or a label that is not a model class.
    """
    if not annotations:
        raise ValueError("no annotations to calibrate on")
    cands = [parse_sizes(c) for c in candidates]
    if not cands:
        raise ValueError("no candidate network inputs to calibrate")
    t = np.asarray(thresholds, dtype=np.float64)
    W, _ = model.head_.cam_weights()
    targets = class_indices(model.classes_, annotations)
    sizes = list(dict.fromkeys(s for c in cands for s in c))  # each input extracted once
    by_file: dict[str, list[int]] = {}
    for i, ann in enumerate(annotations):
        by_file.setdefault(ann.path, []).append(i)
    files = list(by_file)
    hits = np.zeros((len(cands), t.size))
    for start in range(0, len(files), chunk_size):
        chunk = files[start : start + chunk_size]
        extracted = {s: model.extract(chunk, maps=True, input_size=s) for s in sizes}
        for j, path in enumerate(chunk):
            hw = extracted[sizes[0]].image_hw[j]
            maps = {s: class_maps_of([extracted[s]], j, W)[0] for s in sizes}
            for i in by_file[path]:
                for k, cand in enumerate(cands):
                    cam = cam_image([maps[s] for s in cand], targets[i], hw)
                    hits[k] += _hits(cam, annotations[i].boxes, t)
        if progress is not None:
            progress(len(chunk))
    acc = hits / len(annotations)
    k, b = np.unravel_index(int(np.argmax(acc)), acc.shape)  # first: lowest threshold
    return Calibration(
        threshold=float(t[b]), scales=cands[k], gt_known=float(acc[k, b]),
        n_images=len(files), n_pairs=len(annotations),
        source=f"calibrated on {name} ({len(files)} images)",
        candidates={sizes_label(c): acc[i].tolist() for i, c in enumerate(cands)},
        thresholds=t.tolist(),
    )
