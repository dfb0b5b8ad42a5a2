"""Detection metrics, pooled over images, with the PASCAL VOC conventions.

Detections of one class from every image are pooled and visited by decreasing score (ties:
the order given, image by image). A detection is a true positive when the ground-truth box
it overlaps most, in its own image, has IoU at least the threshold and no better-scored
detection has taken it; otherwise it is a false positive, duplicates included (Everingham
et al., 2010). From that one matching come the precision-recall curve, average precision
(AP, all-point interpolation as VOC 2010 and later), recall at a rate of false positives
per image (FPPI, as pedestrian detection reports it) and the recall when every detection is
kept; and what the false positives are (:func:`false_positive_kinds`, after Hoiem et al.).

Boxes follow :mod:`gapsvm.core.boxes` (integer, exclusive maxima, IoU without ``+ 1``).
VOC's "difficult" objects are not modelled: every ground-truth box counts.

References
----------
.. [1] M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn, A. Zisserman. "The PASCAL
   Visual Object Classes (VOC) Challenge". IJCV 88(2), 2010.
.. [2] P. Dollár, C. Wojek, B. Schiele, P. Perona. "Pedestrian Detection: An Evaluation of
   the State of the Art". TPAMI 34(4), 2012.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box, BoxLike, as_boxes
from gapsvm.core.detection import Detection
from gapsvm.core.metrics.localisation import iou_threshold as check_iou_threshold
from gapsvm.core.metrics.sweep import box_ious
from gapsvm.core.validation import check_unit_interval
from gapsvm.utils.checks import check_int

__all__ = [
    "FALSE_POSITIVE_KINDS",
    "average_precision",
    "best_recall",
    "detection_summary",
    "false_positive_kinds",
    "match_detections",
    "precision_recall_curve",
    "recall_at_fppi",
]

DetectionLike = Detection | tuple[BoxLike, float]

_Pooled = tuple[list[list[tuple[Box, float]]], list[list[Box]]]


def _one_detection(d: Any, where: str) -> tuple[Box, float]:
    if isinstance(d, Detection):
        return d.box, d.score
    try:
        box, score = d
    except (TypeError, ValueError):
        raise TypeError(
            f"{where} is a {type(d).__name__}; expected a Detection or a (box, score) pair"
        ) from None
    checked = Detection(box, score)
    return checked.box, checked.score


def _pool(detections: Any, ground_truth: Any) -> _Pooled:
    """Both inputs checked and normalised: per image, (Box, score) pairs and Boxes."""
    if isinstance(detections, Detection) or isinstance(ground_truth, Box):
        raise TypeError("expected one list per image; wrap a single image's list in a list")
    dets, gts = list(detections), list(ground_truth)
    if len(dets) != len(gts):
        raise ValueError(
            f"got detections for {len(dets)} images and ground truth for {len(gts)}: one "
            "list of each per image, in the same order"
        )
    for i, per_image in enumerate(dets):
        if isinstance(per_image, Detection):
            raise TypeError(f"detections of image {i} is a single Detection; expected a list")
    pooled = [
        [_one_detection(d, f"detection {k} of image {i}") for k, d in enumerate(per_image)]
        for i, per_image in enumerate(dets)
    ]
    return pooled, [as_boxes(g) for g in gts]


def _ious(pooled: _Pooled) -> list[np.ndarray | None]:
    """Per image, the IoU of every detection with every true box (None if either is none):
    computed once, whatever the number of IoU thresholds."""
    return [box_ious([b for b, _ in d], g) if g and d else None
            for d, g in zip(*pooled, strict=True)]


def _match(pooled: _Pooled, threshold: float, ious: list[np.ndarray | None] | None = None
           ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Scores by decreasing score, true-positive flags, ground-truth count, and each ranked
    detection's best IoU with a box of its image (0 where the image has none)."""
    dets, gts = pooled
    image = np.array([i for i, d in enumerate(dets) for _ in d], dtype=np.int64)
    local = np.array([k for d in dets for k in range(len(d))], dtype=np.int64)
    scores = np.array([s for d in dets for _, s in d], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ious = _ious(pooled) if ious is None else ious
    taken = [np.zeros(len(g), dtype=bool) for g in gts]
    is_tp = np.zeros(len(order), dtype=bool)
    overlap = np.zeros(len(order), dtype=np.float64)
    for rank, n in enumerate(order):
        table = ious[image[n]]
        if table is None:
            continue
        row = table[local[n]]
        best = int(np.argmax(row))  # ties: the lower ground-truth index, as VOC's max
        overlap[rank] = row[best]
        if row[best] >= threshold and not taken[image[n]][best]:
            taken[image[n]][best] = True
            is_tp[rank] = True
    return scores[order], is_tp, sum(len(g) for g in gts), overlap


def match_detections(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pool detections over images and mark each true or false positive, as VOC does.

    Parameters
    ----------
    detections : sequence of sequences of Detection or (box, score)
        One list per image (labels are ignored: give one class's detections).
    ground_truth : sequence of sequences of Box or 4-sequences
        One list per image, in the same order, of the class's boxes.
    iou_threshold : float, default=0.5
        Minimum IoU for a match, in (0, 1]; inclusive.

    Returns
    -------
    scores : numpy.ndarray
        ``float64`` scores of all detections, by decreasing score (ties: the order given).
    is_tp : numpy.ndarray
        ``bool``, aligned with ``scores``: True when the detection's best-overlapping
        ground-truth box in its image has IoU >= ``iou_threshold`` and was still free. A
        detection whose best box is already taken is a false positive, even when another
        box would match it.
    n_ground_truth : int
        Ground-truth boxes over all images.

    Raises
    ------
    ValueError
        Another number of detection lists than of ground-truth lists, a NaN score, a bad
        box or a threshold outside (0, 1].
    TypeError
        A single list instead of one per image, or an item that is not a detection.
    """
    threshold = check_iou_threshold(iou_threshold)
    return _match(_pool(detections, ground_truth), threshold)[:3]


def _curve(is_tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    tp = np.cumsum(is_tp)
    precision = tp / np.arange(1, len(is_tp) + 1)
    recall = tp / n_gt if n_gt else np.full(len(is_tp), math.nan)
    return recall, precision


def precision_recall_curve(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection, by decreasing score.

    Parameters
    ----------
    detections, ground_truth, iou_threshold
        As :func:`match_detections`.

    Returns
    -------
    recall, precision : numpy.ndarray
        ``float64`` ``(n_detections,)``: after the ``k``-th detection, true positives so far
        over ground-truth boxes (NaN without ground truth) and over ``k``.
    """
    _, is_tp, n_gt = match_detections(detections, ground_truth, iou_threshold)
    return _curve(is_tp, n_gt)


def _ap(is_tp: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return math.nan
    if len(is_tp) == 0:
        return 0.0
    recall, precision = _curve(is_tp, n_gt)
    rec = np.concatenate([[0.0], recall, [1.0]])
    # Precision made non-increasing from the right: at each recall, the best precision
    # reachable at that recall or beyond (VOC 2010+).
    prec = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.flatnonzero(rec[1:] != rec[:-1])
    return float(np.sum((rec[steps + 1] - rec[steps]) * prec[steps + 1]))


def average_precision(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> float:
    """Average precision with VOC 2010+ all-point interpolation.

    Parameters
    ----------
    detections, ground_truth, iou_threshold
        As :func:`match_detections`.

    Returns
    -------
    float
        The area under the precision-recall step curve, precision made non-increasing from
        the right; in [0, 1]. 0.0 when there is no detection; NaN when there is no
        ground-truth box (nothing to find).
    """
    _, is_tp, n_gt = match_detections(detections, ground_truth, iou_threshold)
    return _ap(is_tp, n_gt)


def _check_fppi(fppi: float) -> float:
    if isinstance(fppi, bool) or not isinstance(fppi, numbers.Real) or not (
        math.isfinite(fppi) and fppi >= 0
    ):
        raise ValueError(f"fppi must be a finite number >= 0, got {fppi!r}")
    return float(fppi)


def _recall_at_fppi(scores: np.ndarray, is_tp: np.ndarray, n_gt: int, n_images: int,
                    fppi: float) -> float:
    if n_gt == 0:
        return math.nan
    # A score cut keeps all detections scoring at least some value, so it can only fall
    # between two different scores: tied detections are kept or dropped together.
    k = np.arange(len(scores) + 1)
    cuts = np.ones(len(scores) + 1, dtype=bool)
    cuts[1:-1] = scores[:-1] > scores[1:]
    fp = np.concatenate([[0], np.cumsum(~is_tp)])
    tp = np.concatenate([[0], np.cumsum(is_tp)])
    ok = cuts & (fp <= fppi * n_images)
    return float(tp[k[ok].max()] / n_gt)


def recall_at_fppi(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    fppi: float = 1.0,
    iou_threshold: float = 0.5,
) -> float:
    """Recall at the loosest score cut with at most ``fppi`` false positives per image.

    Parameters
    ----------
    detections, ground_truth, iou_threshold
        As :func:`match_detections`; the number of images is ``len(ground_truth)``.
    fppi : float, default=1.0
        False positives per image allowed, >= 0.

    Returns
    -------
    float
        Recall of the detections scoring at least the lowest score ``t`` such that those
        detections have at most ``fppi * n_images`` false positives; tied scores are kept
        or dropped together. 0.0 when no cut qualifies but keeping nothing; NaN without
        ground truth.

    Raises
    ------
    ValueError
        ``fppi`` negative or not finite, or as :func:`match_detections`.
    """
    fppi = _check_fppi(fppi)
    scores, is_tp, n_gt = match_detections(detections, ground_truth, iou_threshold)
    return _recall_at_fppi(scores, is_tp, n_gt, len(ground_truth), fppi)


def best_recall(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> float:
    """Recall with every detection kept: the ceiling of the precision-recall curve.

    Returns
    -------
    float
        Matched ground-truth boxes over ground-truth boxes; NaN without ground truth.
    """
    _, is_tp, n_gt = match_detections(detections, ground_truth, iou_threshold)
    return _best_recall(is_tp, n_gt)


def _best_recall(is_tp: np.ndarray, n_gt: int) -> float:
    return float(is_tp.sum() / n_gt) if n_gt else math.nan


def detection_summary(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_thresholds: Sequence[float] = (0.5, 0.3),
) -> dict[str, float | int]:
    """The detection metrics of one class in one dictionary.

    Parameters
    ----------
    detections, ground_truth
        As :func:`match_detections`.
    iou_thresholds : sequence of float, default=(0.5, 0.3)
        The IoU levels AP is reported at.

    Returns
    -------
    dict
        ``"ap@0.5"``, ``"ap@0.3"``, ... (one per level, as :func:`average_precision`);
        ``"recall@1fppi"`` and ``"best_recall"`` at IoU 0.5; ``"n_images"``,
        ``"n_ground_truth"`` and ``"n_detections"``.
    """
    pooled = _pool(detections, ground_truth)
    levels = [check_iou_threshold(t) for t in iou_thresholds]
    ious = _ious(pooled)
    matched = {t: _match(pooled, t, ious) for t in {*levels, 0.5}}
    out: dict[str, float | int] = {}
    for t in levels:
        _, is_tp, n_gt, _ = matched[t]
        out[f"ap@{t:g}"] = _ap(is_tp, n_gt)
    scores, is_tp, n_gt, _ = matched[0.5]
    out["recall@1fppi"] = _recall_at_fppi(scores, is_tp, n_gt, len(pooled[1]), 1.0)
    out["best_recall"] = _best_recall(is_tp, n_gt)
    out["n_images"] = len(pooled[1])
    out["n_ground_truth"] = n_gt
    out["n_detections"] = len(scores)
    return out


#: The kinds of false positive :func:`false_positive_kinds` tells apart, worst first.
FALSE_POSITIVE_KINDS = ("background", "localisation", "duplicate")


def false_positive_kinds(
    detections: Sequence[Sequence[DetectionLike]],
    ground_truth: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
    *,
    background_iou: float = 0.1,
    top: int | None = None,
) -> dict[str, float | int]:
    """What the false positives are, and what average precision each kind costs.

    A false positive (as :func:`match_detections` marks it) is a *duplicate* when its best
    ground-truth box overlaps it enough but was taken by a better-scored detection; a
    *localisation* error when that best overlap is below ``iou_threshold`` but at least
    ``background_iou`` (a window on part of an object, or on an object and its
    surroundings); *background* when it overlaps no box of its image by ``background_iou``
    or more. Negatives from images without the class (hard-negative mining on object-free
    images) show the head background only: they can teach away the background kind, while
    the others lie on or beside the objects.
    The kinds follow Hoiem et al. (2012), who count duplicates with localisation errors.

    Parameters
    ----------
    detections, ground_truth, iou_threshold
        As :func:`match_detections`.
    background_iou : float, default=0.1
        Below this overlap with every box, a false positive is background; in
        (0, ``iou_threshold``].
    top : int, optional
        The kinds are counted among the ``top`` best-scored detections (ties: as
        :func:`match_detections` orders them), where they cost the most precision; default
        as many as there are ground-truth boxes.

    Returns
    -------
    dict
        ``"top"`` (the number of detections looked at), ``"true_positives"`` and one count
        per kind among them (``"background"``, ``"localisation"``, ``"duplicate"``);
        ``"ap"``, the average precision at ``iou_threshold``, and for each kind
        ``"ap_without_<kind>"``: the average precision once every false positive of that
        kind, among all detections, is removed and every other detection keeps its rank
        (removing a false positive changes no match).

    Raises
    ------
    ValueError
        ``background_iou`` outside (0, ``iou_threshold``], ``top`` negative, or as
        :func:`match_detections`.

    References
    ----------
    .. [1] D. Hoiem, Y. Chodpathumwan, Q. Dai. "Diagnosing Error in Object Detectors".
       ECCV 2012.
    """
    threshold = check_iou_threshold(iou_threshold)
    low = check_unit_interval(background_iou, "background_iou")
    if not 0.0 < low <= threshold:
        raise ValueError(f"background_iou must be in (0, iou_threshold] = (0, {threshold:g}], "
                         f"got {low:g}")
    _, is_tp, n_gt, overlap = _match(_pool(detections, ground_truth), threshold)
    k = n_gt if top is None else check_int(top, "top", minimum=0)
    kinds = dict(zip(FALSE_POSITIVE_KINDS, (~is_tp & (overlap < low),
                                            ~is_tp & (overlap >= low) & (overlap < threshold),
                                            ~is_tp & (overlap >= threshold)), strict=True))
    out: dict[str, float | int] = {"top": min(k, len(is_tp)),
                                   "true_positives": int(is_tp[:k].sum())}
    out.update({kind: int(mask[:k].sum()) for kind, mask in kinds.items()})
    out["ap"] = _ap(is_tp, n_gt)
    out.update({f"ap_without_{kind}": _ap(is_tp[~mask], n_gt) for kind, mask in kinds.items()})
    return out
