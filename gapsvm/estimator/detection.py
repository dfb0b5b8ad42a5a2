"""Weakly supervised detection with a fitted :class:`~gapsvm.estimator.classifier.GapClassifier`.

For a linear head on global-average-pooled features, the decision value of any window of the
feature grid is the mean of the class activation map over the window's cells plus the
intercept, exactly. So one forward pass per input scale scores every window at every
position (an integral image over the CAM, :func:`gapsvm.core.detection.scored_windows`), and
greedy non-maximum suppression over all scales leaves the detections: the sliding-window
detector of Dalal and Triggs, with CNN features and no extra network pass per window. Box
voting then moves each kept box to the score-weighted mean of the windows overlapping it,
off the grid of feature cells (its score stays its window's), and a second NMS drops the
boxes voted onto an object already found.

Maps come through the feature cache like every other map, so a second ``detect`` on the same
photos, or one with another head, runs no network.

References
----------
.. [1] N. Dalal, B. Triggs. "Histograms of Oriented Gradients for Human Detection". CVPR 2005.
.. [2] S. Gidaris, N. Komodakis. "Object detection via a multi-region & semantic
   segmentation-aware CNN model". ICCV 2015 (box voting).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from gapsvm.core import validation as val
from gapsvm.core.detection import (
    Detection,
    default_window,
    detections_from_arrays,
    nms,
    parse_windows,
    scored_windows,
    vote_boxes,
)
from gapsvm.core.sizes import parse_input_size, parse_scales
from gapsvm.estimator.targets import class_index, is_all
from gapsvm.utils.checks import check_int

__all__ = [
    "DEFAULT_NMS_IOU",
    "DEFAULT_SCALES",
    "DetectionRun",
    "detect_of",
    "detections_from",
    "explain_pyramid",
    "model_window",
    "resolve_detect_target",
]

#: The default input pyramid: scales of each photo's own size. Chosen for people about 45 px
#: tall with a head trained on 128x64 crops (``python -m benchmarks.detection``): enlarged
#: twice to two and a half times, they are about the size the head was trained on.
DEFAULT_SCALES: tuple[float, ...] = (2.0, 2.5)
#: Greedy NMS drops a window whose IoU with a better one is above this.
DEFAULT_NMS_IOU = 0.3
#: Windows kept per image and scale before NMS: NMS is quadratic in what it is given, and
#: windows far down the ranking are suppressed or cut by ``max_detections`` anyway.
_PRE_NMS = 5000


@dataclass(frozen=True)
class DetectionRun:
    """What :func:`detect_of` found: detections per image (None where unreadable), the read
    errors (:class:`~gapsvm.core.decode.ImageReadError`) and the CAMs they came from (the
    :func:`explain_pyramid` result), which ``gapsvm detect`` draws without another pass."""

    detections: list[list[Detection] | None]
    errors: list[Any]
    pyramid: dict[float, Any]


def model_window(model: Any) -> tuple[int, int]:
    """The window, in feature cells, of the input size the model's head was trained at.

    A head trained on 128x64 crops through a stride-16 backbone saw 8x4 cells per image: a
    window of that size scores what the head learnt to score.

    Raises
    ------
    ValueError
        The model was trained at each image's own size, which gives no single window.
    """
    meta = getattr(model, "feature_meta_", None) or {}
    size = parse_input_size(meta.get("input_size", model.input_size))
    if not (isinstance(size, tuple) and len(size) == 2):
        raise ValueError(
            f"this model was trained at input size {meta.get('input_size')!r}, not a fixed "
            "HxW, so it has no default window; give window= in feature cells, e.g. '8x4'"
        )
    return default_window(size, int(meta.get("stride", 16)))


def _check_options(nms_iou: float, score_threshold: float | None,
                   max_detections: int | None, stride: int, box_vote: bool) -> None:
    val.check_unit_interval(nms_iou, "nms_iou")
    if not isinstance(box_vote, bool | np.bool_):
        raise TypeError(f"box_vote must be True or False, got {box_vote!r}")
    if score_threshold is not None and (isinstance(score_threshold, bool) or not isinstance(
            score_threshold, numbers.Real) or not np.isfinite(score_threshold)):
        raise ValueError(f"score_threshold must be a finite number or None, got "
                         f"{score_threshold!r}")
    if max_detections is not None:
        check_int(max_detections, "max_detections", minimum=1)
    check_int(stride, "stride", minimum=1)


def _image_windows(cam: np.ndarray, intercept: float, windows: Sequence[tuple[int, int]],
                   image_hw: tuple[int, int], stride: int,
                   score_threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    boxes, scores = scored_windows(cam, intercept, windows, image_hw, stride)
    if score_threshold is not None:
        keep = scores >= score_threshold
        boxes, scores = boxes[keep], scores[keep]
    if len(scores) > _PRE_NMS:
        top = np.argsort(-scores, kind="stable")[:_PRE_NMS]
        boxes, scores = boxes[top], scores[top]
    return boxes, scores


def _suppress(boxes: np.ndarray, scores: np.ndarray, nms_iou: float, max_detections: int | None,
              box_vote: bool) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS; with ``box_vote``, each kept box voted by its cluster and NMS run again
    on the voted boxes, because a weak box kept beside an object is pulled onto it by the
    object's windows, and would otherwise stay as its duplicate."""
    if not box_vote:
        keep = nms(boxes, scores, nms_iou, max_detections)
        return boxes[keep], scores[keep]
    keep = nms(boxes, scores, nms_iou)
    voted, scores = vote_boxes(boxes, scores, keep, nms_iou), scores[keep]
    again = nms(voted, scores, nms_iou, max_detections)
    return voted[again], scores[again]


def resolve_detect_target(model: Any, target: Any) -> tuple[int, Any]:
    """The class index and label ``detect`` looks for; one class, never None or "all"."""
    check_is_fitted(model)
    if target is None or is_all(target):
        raise ValueError("detect() looks for one class: give its label as target (e.g. "
                         f"target={model.classes_[-1]!r}), not {target!r}")
    c = class_index(model.classes_, target)
    label = model.classes_[c]
    return c, label.item() if isinstance(label, np.generic) else label


def explain_pyramid(model: Any, X: Any, target: Any, scales: Any = DEFAULT_SCALES, *,
                    on_error: str = "raise") -> dict[float, Any]:
    """The target class's CAM of every image at every input scale: one
    :meth:`~gapsvm.estimator.classifier.GapClassifier.explain` per scale (maps through the
    cache), keyed by scale. :func:`detections_from` turns them into detections, so several
    window or NMS settings cost no further network pass."""
    _, label = resolve_detect_target(model, target)
    X, _ = val.check_images(X)
    return {s: model.explain(X, [label] * len(X), input_size=s, on_error=on_error)
            for s in parse_scales(scales)}


def detections_from(
    explanations: Sequence[Any],
    label: Any,
    windows: Sequence[tuple[int, int]],
    *,
    stride: int = 1,
    nms_iou: float = DEFAULT_NMS_IOU,
    score_threshold: float | None = None,
    max_detections: int | None = 100,
    box_vote: bool = True,
) -> list[list[Detection] | None]:
    """Detections of ``label`` from its CAMs at several scales (``explain`` results for the
    same images): every window scored, pooled over scales, then greedy NMS per image and,
    with ``box_vote``, box voting (:func:`gapsvm.core.detection.vote_boxes`) and NMS again
    at the same overlap. None for an image that could not be read."""
    _check_options(nms_iou, score_threshold, max_detections, stride, box_vote)
    out: list[list[Detection] | None] = []
    for i in range(len(explanations[0].cams)):
        parts = []
        for info in explanations:
            cam = info.cams[i]
            if cam is None:
                break
            c = int(info.target[i])
            parts.append(_image_windows(cam, float(info.intercepts[c]), windows,
                                        info.image_hw[i], stride, score_threshold))
        if len(parts) < len(explanations):
            out.append(None)
            continue
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        out.append(detections_from_arrays(
            *_suppress(boxes, scores, nms_iou, max_detections, box_vote), label))
    return out


def detect_of(
    model: Any,
    X: Any,
    target: Any,
    *,
    scales: Any = DEFAULT_SCALES,
    window: Any = None,
    stride: int = 1,
    nms_iou: float = DEFAULT_NMS_IOU,
    score_threshold: float | None = None,
    max_detections: int | None = 100,
    box_vote: bool = True,
    on_error: str = "raise",
) -> DetectionRun:
    """:meth:`GapClassifier.detect <gapsvm.estimator.maps.MapsMixin.detect>`, with
    ``on_error="skip"`` for the command line (unreadable images give None and an error)."""
    _, label = resolve_detect_target(model, target)
    windows = parse_windows(window) if window is not None else (model_window(model),)
    _check_options(nms_iou, score_threshold, max_detections, stride, box_vote)  # first
    pyramid = explain_pyramid(model, X, label, scales, on_error=on_error)
    infos = list(pyramid.values())
    found = detections_from(infos, label, windows, stride=stride, nms_iou=nms_iou,
                            score_threshold=score_threshold, max_detections=max_detections,
                            box_vote=box_vote)
    return DetectionRun(found, list(infos[0].errors), pyramid)
