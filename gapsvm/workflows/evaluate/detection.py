"""Detection metrics of ``gapsvm evaluate --detect``: every instance of a class, pooled over
images, for :meth:`GapClassifier.detect <gapsvm.estimator.maps.MapsMixin.detect>` beside a
baseline made of the model's own CAM boxes.

For each class of the boxes CSV, ``detect`` runs on the images that have boxes of that class,
and :func:`~gapsvm.core.metrics.detection.detection_summary` pools its detections over those
images: average precision at IoU 0.5 and 0.3 (VOC, all-point interpolation), recall at one
false positive per image and the best recall. What ``detect``'s best-scored false positives
are (:func:`~gapsvm.core.metrics.detection.false_positive_kinds`) says what would help: only
those on background can be taught away by hard negatives from images without the class.

The baseline is what gapsvm had before ``detect``: ``boxes(mode="all")``, one box per
connected region of the CAM at the box threshold, at the network inputs and threshold the
rest of ``evaluate`` uses. Pooled metrics rank detections of every image together, so each
box needs a score comparable across images: it is the mean of the raw (unnormalised) CAM
over the box plus the class intercept (:func:`scored_boxes`). That is, up to the bilinear
upsampling, the decision value the head gives the box's pooled features: the same score
``detect`` gives a window, so the two rows differ in where the boxes come from, not in how
they are ranked. (The region's peak, which orders ``boxes(mode="all")`` within one image,
would favour large blobs that merge several objects.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.cam import fuse_cams
from gapsvm.core.detection import Detection
from gapsvm.core.metrics.detection import (
    FALSE_POSITIVE_KINDS,
    detection_summary,
    false_positive_kinds,
)
from gapsvm.estimator.box_settings import box_scales, box_threshold
from gapsvm.estimator.detection import DEFAULT_NMS_IOU, DEFAULT_SCALES, detect_of
from gapsvm.estimator.targets import class_index
from gapsvm.utils.checks import check_int
from gapsvm.workflows.evaluate.run import parse_sizes

__all__ = [
    "DETECTION_METHODS",
    "IOU_THRESHOLDS",
    "evaluate_detection",
    "format_detection_table",
    "scored_boxes",
]

#: The IoU levels average precision is reported at.
IOU_THRESHOLDS = (0.5, 0.3)
#: The rows of the detection table: key in the report -> what the table calls it.
DETECTION_METHODS = {"detect": "detect", "boxes_all": 'boxes(mode="all")'}
#: The columns of the detection table: key of the summary -> header, format.
_COLUMNS = (("ap@0.5", "AP@0.5", "{:.3f}"), ("ap@0.3", "AP@0.3", "{:.3f}"),
            ("recall@1fppi", "recall@1FPPI", "{:.3f}"), ("best_recall", "best recall", "{:.3f}"),
            ("n_detections", "detections", "{:d}"))
_BASELINE_SCORE = ("mean of the raw CAM over the box plus the class intercept (the box's "
                   "decision value up to upsampling, as detect scores a window)")


def scored_boxes(cam: np.ndarray, intercept: float, threshold: float,
                 label: Any = None) -> list[Detection]:
    """``boxes(mode="all")`` of one CAM as scored detections.

    Parameters
    ----------
    cam : numpy.ndarray
        ``(H, W)`` raw class activation map at image size (upsampled, not normalised).
    intercept : float
        The class's intercept: added to every score, so scores are decision values.
    threshold : float
        Box threshold, a fraction of the map's maximum in [0, 1]
        (:func:`~gapsvm.core.boxes.cam_to_boxes`).
    label : object, optional
        Given to every detection.

    Returns
    -------
    list of Detection
        One per connected region at ``threshold``, in ``cam_to_boxes``'s order (highest
        peak first); each scored ``cam[box].mean() + intercept``. Empty when the map has no
        positive value.
    """
    cam = np.asarray(cam, dtype=np.float64)
    return [Detection(Box(*b.as_tuple()),
                      float(cam[b.y_min:b.y_max, b.x_min:b.x_max].mean()) + float(intercept),
                      label)
            for b in cam_to_boxes(cam, threshold, "all")]


def _baseline(model: Any, paths: list[str], label: Any, sizes: Sequence[Any],
              threshold: float) -> list[list[Detection]]:
    """Each image's scored ``boxes(mode="all")``: one explain per network input, fused as
    :meth:`GapClassifier.boxes` fuses them."""
    infos = [model.explain(paths, label, input_size=s) for s in sizes]
    intercept = float(infos[0].intercepts[class_index(model.classes_, label)])
    return [scored_boxes(fuse_cams([info.cams[j] for info in infos], hw), intercept,
                         threshold, label)
            for j, hw in enumerate(infos[0].image_hw)]


def _settings(options: dict[str, Any], sizes: Sequence[Any], threshold: float,
              source: str) -> dict[str, Any]:
    window = options.get("window")
    return {
        "scales": list(options.get("scales", DEFAULT_SCALES)),
        "window": "the training input size, in cells" if window is None
        else [list(w) if isinstance(w, tuple | list) else w for w in window],
        "stride": options.get("stride", 1),
        "nms_iou": options.get("nms_iou", DEFAULT_NMS_IOU),
        "score_threshold": options.get("score_threshold"),
        "max_detections": options.get("max_detections", 100),
        "box_vote": options.get("box_vote", True),
        "iou_thresholds": list(IOU_THRESHOLDS),
        "fppi": 1.0,
        "images": "those with boxes of the class",
        "baseline": {"boxes": 'boxes(mode="all")', "threshold": threshold,
                     "threshold_source": source,
                     "scales": [list(s) if isinstance(s, tuple) else s for s in sizes],
                     "score": _BASELINE_SCORE},
    }


def evaluate_detection(
    model: Any,
    annotations: Sequence[Annotation],
    *,
    detect_options: dict[str, Any] | None = None,
    scales: Sequence[Any] | None = None,
    threshold: float | None = None,
    threshold_source: str | None = None,
    chunk_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Detection metrics per class, for ``detect`` and the ``boxes(mode="all")`` baseline.

    Parameters
    ----------
    model : GapClassifier
        Fitted, with a linear head.
    annotations : sequence of Annotation
        From :func:`~gapsvm.core.boxes_csv.read_boxes_csv`; each label is a class to find,
        on the images that have boxes of it.
    detect_options : dict, optional
        Keyword arguments of :meth:`GapClassifier.detect` (``scales``, ``window``,
        ``stride``, ``nms_iou``, ``score_threshold``, ``max_detections``, ``box_vote``);
        default its own.
    scales : sequence, optional
        The baseline's network inputs, as :func:`~gapsvm.workflows.evaluate.evaluate`
        takes them; default the model's calibrated ``box_scales_``, else ``(1.0,)``.
    threshold : float, optional
        The baseline's box threshold; default the model's calibrated one, else 0.2.
    threshold_source : str, optional
        Where ``threshold`` came from, for the report.
    chunk_size : int, default=8
        Images whose maps are held at once.
    progress : callable, optional
        Called with the number of images just finished (an image of two classes counts
        twice).

    Returns
    -------
    dict
        ``settings`` (the detect options, the baseline's inputs, threshold and score) and
        ``per_class``: label -> ``{"detect": summary, "boxes_all": summary}``, each summary
        as :func:`~gapsvm.core.metrics.detection.detection_summary` returns it (AP at IoU
        0.5 and 0.3, recall at 1 FPPI, best recall, counts); ``false_positives``: label ->
        what ``detect``'s false positives are at IoU 0.5, as
        :func:`~gapsvm.core.metrics.detection.false_positive_kinds` returns it.

    Raises
    ------
    ValueError
        No annotations, a label that is not a class, or bad detect options.
    """
    check_int(chunk_size, "chunk_size")
    if not annotations:
        raise ValueError("no annotations to evaluate")
    options = dict(detect_options or {})
    sizes = parse_sizes(scales if scales is not None else box_scales(model) or (1.0,))
    thr, source = box_threshold(model, threshold)
    by_label: dict[str, list[Annotation]] = {}
    for ann in annotations:
        class_index(model.classes_, ann.label)  # every label checked before any work
        by_label.setdefault(ann.label, []).append(ann)
    per_class: dict[str, dict[str, Any]] = {}
    kinds: dict[str, dict[str, Any]] = {}
    for label, anns in by_label.items():
        target = model.classes_[class_index(model.classes_, label)]
        found: dict[str, list[list[Detection]]] = {key: [] for key in DETECTION_METHODS}
        for start in range(0, len(anns), chunk_size):
            paths = [a.path for a in anns[start:start + chunk_size]]
            found["detect"] += detect_of(model, paths, target, **options).detections
            found["boxes_all"] += _baseline(model, paths, target, sizes, thr)
            if progress is not None:
                progress(len(paths))
        truth = [a.boxes for a in anns]
        per_class[label] = {key: detection_summary(dets, truth, IOU_THRESHOLDS)
                            for key, dets in found.items()}
        kinds[label] = false_positive_kinds(found["detect"], truth, IOU_THRESHOLDS[0])
    return {"settings": _settings(options, sizes, thr, threshold_source or source),
            "per_class": per_class, "false_positives": kinds}


def format_detection_table(section: dict[str, Any]) -> str:
    """The detection part of ``evaluate``'s printed table: one block per class, a row for
    ``detect`` and one for the baseline.

    Parameters
    ----------
    section : dict
        As :func:`evaluate_detection` returns it.

    Returns
    -------
    str
        Plain text; undefined values (no ground truth) as ``n/a``.
    """
    width = max(len(name) for name in DETECTION_METHODS.values()) + 2
    lines = []
    for label, methods in section["per_class"].items():
        first = next(iter(methods.values()))
        lines.append(f"detection of {label!r}: {first['n_images']} image(s), "
                     f"{first['n_ground_truth']} box(es), pooled")
        lines.append(" " * width + "  ".join(f"{head:>12}" for _, head, _ in _COLUMNS))
        for key, name in DETECTION_METHODS.items():
            cells = [_cell(methods[key][k], fmt) for k, _, fmt in _COLUMNS]
            lines.append(f"{name:<{width}}" + "  ".join(f"{c:>12}" for c in cells))
        kinds = section.get("false_positives", {}).get(label)
        if kinds:
            lines.extend(_kinds_lines(kinds))
    return "\n".join(lines)


def _kinds_lines(kinds: dict[str, Any]) -> list[str]:
    """Two lines on detect's false positives: their kinds in the best-scored detections, and
    the AP, at the level they were matched at, that removing each kind would give."""
    counts = ", ".join(f"{kinds[k]} {k}" for k in FALSE_POSITIVE_KINDS)
    without = ", ".join(f"{k} {_cell(kinds[f'ap_without_{k}'], '{:.3f}')}"
                        for k in FALSE_POSITIVE_KINDS)
    return [f"detect's {kinds['top']} best-scored: {kinds['true_positives']} true positives; "
            f"false: {counts}",
            f"AP@{IOU_THRESHOLDS[0]:g} {_cell(kinds['ap'], '{:.3f}')}; without the false ones "
            f"of a kind: {without}"]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return fmt.format(value)
