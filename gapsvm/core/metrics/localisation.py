"""Localisation metrics: does a class activation map point at, cover and box the object?

Pure functions of a map at image resolution and ground-truth boxes (see
:mod:`gapsvm.core.metrics` for the conventions): the pointing game, energy in box, IoU and
CorLoc (GT-known localisation when the box is the true class's), and greedy box matching
with recall and precision. The threshold sweep of weakly-supervised localisation (top-1
localisation, MaxBoxAccV2) is :mod:`gapsvm.core.metrics.sweep`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

from gapsvm.core.boxes import BoxLike, as_box, as_boxes, boxes_to_mask, iou
from gapsvm.core.validation import check_image_hw, check_map, check_unit_interval

__all__ = [
    "POINTING_GAME_REFERENCE_SIDE",
    "POINTING_GAME_TOLERANCE_PX",
    "best_iou",
    "box_area_share",
    "box_recall_precision",
    "corloc",
    "energy_in_box",
    "iou_threshold",
    "match_boxes",
    "pointing_game",
    "scaled_tolerance",
]

#: The pointing game's tolerance as Zhang et al. (2016) define it: 15 pixels ...
POINTING_GAME_TOLERANCE_PX = 15.0
#: ... on images whose shorter side is 224 pixels, the input size of their networks. Both are
#: the metric's definition, not a fact of gapsvm's backbone.
POINTING_GAME_REFERENCE_SIDE = 224.0


def _nonnegative_real(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def iou_threshold(threshold: float) -> float:
    """Check a minimum IoU for a match: a real number in (0, 1], returned as a float.

    Raises
    ------
    TypeError, ValueError
        Not a real number, outside (0, 1], or zero (every pair has IoU >= 0).
    """
    threshold = check_unit_interval(threshold, "threshold")
    # IoU >= 0 holds for every pair, so a zero threshold would "match" disjoint boxes.
    if threshold == 0.0:
        raise ValueError("threshold must be in (0, 1], got 0")
    return threshold


def scaled_tolerance(
    image_shape: Sequence[int],
    base: float = POINTING_GAME_TOLERANCE_PX,
    reference: float = POINTING_GAME_REFERENCE_SIDE,
) -> float:
    """Pointing-game tolerance scaled to an image's size.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)`` of the image the CAM and boxes refer to.
    base : float, default 15
        Tolerance in pixels at the reference size (15 px in Zhang et al. 2016).
    reference : float, default 224
        Shorter image side at which ``base`` applies (the input size of the paper's
        networks; part of the metric's definition, independent of gapsvm's backbone).

    Returns
    -------
    float
        ``base * min(h, w) / reference``, not rounded, e.g. 15.0 for a 224 x 300 image and
        30.0 for 448 x 640.

    Raises
    ------
    ValueError
        If the shape is invalid, ``base < 0`` or ``reference <= 0``.

    Notes
    -----
    A fixed 15 px is a different criterion on a 224-px and on a 1000-px image; scaling by the
    shorter side keeps the tolerance a constant fraction of the image, so hit rates are
    comparable across image sizes. Reading the original 15 px as "at a 224-px shorter side"
    is gapsvm's convention.
    """
    h, w = check_image_hw(image_shape)
    base = _nonnegative_real(base, "base")
    reference = _nonnegative_real(reference, "reference")
    if reference == 0.0:
        raise ValueError("reference must be > 0")
    return base * min(h, w) / reference


def pointing_game(
    cam: np.ndarray,
    gt_boxes: Iterable[BoxLike],
    tolerance: float = POINTING_GAME_TOLERANCE_PX,
) -> bool:
    """Pointing game: is the CAM's maximum within ``tolerance`` pixels of a ground-truth box?

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D map at image resolution.
    gt_boxes : iterable of Box or 4-sequences
        Ground-truth boxes of the class (exclusive maxima), clipped to the image.
    tolerance : float, default 15
        Maximum Euclidean distance, in pixels, from the maximum's pixel to the nearest pixel
        of a box; inclusive, so a point exactly ``tolerance`` away is a hit and
        ``tolerance=0`` means "inside a box". Use :func:`scaled_tolerance` for images that
        are not about 224 px on the shorter side.

    Returns
    -------
    bool
        True for a hit. False when there is no box (or every box lies outside the image).

    Raises
    ------
    ValueError
        If ``cam`` is not a finite 2-D array, ``tolerance`` is negative or not finite, or a
        box is invalid.
    TypeError
        If a box is not box-like.

    Notes
    -----
    If several pixels share the maximum value the first one in row-major order (topmost,
    then leftmost; ``numpy.argmax``) is used, so a flat map always points at the top-left
    corner; :func:`~gapsvm.core.metrics.center_map` is the meaningful "no information"
    baseline for this metric.
    Distances are measured between pixel indices. TorchRay's reference implementation uses a
    strict ``distance < tolerance``; the two agree except for points at exactly integral
    distances such as (15, 0) or (9, 12).

    References
    ----------
    .. [1] J. Zhang, Z. Lin, J. Brandt, X. Shen, S. Sclaroff. "Top-down Neural Attention by
       Excitation Backprop". ECCV 2016 (pointing game, 15-pixel tolerance).
    """
    cam = check_map(cam)
    tolerance = _nonnegative_real(tolerance, "tolerance")
    h, w = cam.shape
    row, col = divmod(int(np.argmax(cam)), w)
    limit = tolerance * tolerance
    for b in as_boxes(gt_boxes):
        x0, x1 = max(b.x_min, 0), min(b.x_max, w)
        y0, y1 = max(b.y_min, 0), min(b.y_max, h)
        if x0 >= x1 or y0 >= y1:
            continue
        # Distance to the nearest pixel of the box: the last covered column is x1 - 1.
        dx = max(x0 - col, 0, col - (x1 - 1))
        dy = max(y0 - row, 0, row - (y1 - 1))
        if dx * dx + dy * dy <= limit:
            return True
    return False


def energy_in_box(cam: np.ndarray, gt_boxes: Iterable[BoxLike]) -> float:
    """Share of the CAM's positive mass that falls inside the ground-truth boxes.

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D map at image resolution. Negative values are evidence *against* the
        class, so only ``max(cam, 0)`` counts.
    gt_boxes : iterable of Box or 4-sequences
        Ground-truth boxes (exclusive maxima); their union is used, so a pixel covered by
        two overlapping boxes counts once. Parts outside the image are ignored.

    Returns
    -------
    float
        ``sum(max(cam, 0) * union) / sum(max(cam, 0))`` in [0, 1]; ``nan`` if the CAM has no
        positive value (there is no mass to distribute). 0.0 for no boxes. Compare with
        :func:`box_area_share`, the value a uniform map obtains.

    Raises
    ------
    ValueError
        If ``cam`` is not a finite 2-D array or a box is invalid.
    TypeError
        If a box is not box-like.

    References
    ----------
    .. [1] H. Wang et al. "Score-CAM: Score-Weighted Visual Explanations for Convolutional
       Neural Networks". CVPR Workshops 2020 (energy-based pointing game).
    """
    cam = check_map(cam)
    positive = np.maximum(cam, 0.0)
    inside_mask = boxes_to_mask(cam.shape, gt_boxes)
    inside = float(positive[inside_mask].sum())
    outside = float(positive[~inside_mask].sum())
    if inside + outside <= 0.0:
        return math.nan
    # inside / (inside + outside) rather than inside / positive.sum(): the two sums use
    # different summation orders, and this form can never exceed 1 through rounding.
    return inside / (inside + outside)


def box_area_share(shape: Sequence[int], gt_boxes: Iterable[BoxLike]) -> float:
    """Share of the image covered by the union of the boxes (the chance level of energy).

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(h, w)`` or ``(h, w, c)``.
    gt_boxes : iterable of Box or 4-sequences
        Boxes (exclusive maxima); overlaps count once, parts outside the image are ignored.

    Returns
    -------
    float
        Covered pixels / ``h * w``, in [0, 1]. A uniform map has exactly this
        :func:`energy_in_box`.

    Raises
    ------
    ValueError
        If the shape or a box is invalid.
    TypeError
        If a box is not box-like.
    """
    mask = boxes_to_mask(shape, gt_boxes)
    return int(mask.sum()) / mask.size


def best_iou(pred_box: BoxLike | None, gt_boxes: Iterable[BoxLike]) -> float:
    """Highest IoU between a predicted box and any ground-truth box.

    Parameters
    ----------
    pred_box : Box, 4-sequence or None
        The prediction, e.g. ``cam_to_boxes(cam)[0]``; None (no prediction, as when
        :func:`~gapsvm.core.boxes.cam_to_boxes` returns ``[]``) scores 0.
    gt_boxes : iterable of Box or 4-sequences
        Ground-truth boxes (exclusive maxima).

    Returns
    -------
    float
        Maximum IoU in [0, 1]; 0.0 if there is no prediction or no ground truth.

    Raises
    ------
    TypeError, ValueError
        If a box is invalid.
    """
    gts = as_boxes(gt_boxes)
    if pred_box is None or not gts:
        return 0.0
    pred = as_box(pred_box)
    return max(iou(pred, g) for g in gts)


def corloc(ious: Sequence[float] | np.ndarray, threshold: float = 0.5) -> float:
    """Correct localisation (CorLoc): share of images whose box reaches an IoU threshold.

    Parameters
    ----------
    ious : sequence of float
        One IoU per image (e.g. from :func:`best_iou`), each in [0, 1].
    threshold : float, default 0.5
        IoU needed for a correct localisation, in (0, 1]. Inclusive (``iou >= threshold``),
        as the PASCAL VOC devkit compares overlaps.

    Returns
    -------
    float
        Fraction in [0, 1] (multiply by 100 for the percentage usually reported).

    Raises
    ------
    ValueError
        If ``ious`` is empty, not 1-D, or has values outside [0, 1] (NaN included), or the
        threshold is outside (0, 1].

    References
    ----------
    .. [1] T. Deselaers, B. Alexe, V. Ferrari. "Weakly Supervised Localization and Learning
       with Generic Knowledge". IJCV 2012 (CorLoc).
    """
    threshold = iou_threshold(threshold)
    arr = np.atleast_1d(np.asarray(ious, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"ious must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not ((arr >= 0.0) & (arr <= 1.0)).all():
        raise ValueError("ious must all be in [0, 1] (and not NaN)")
    return float(np.mean(arr >= threshold))


def match_boxes(
    pred_boxes: Iterable[BoxLike], gt_boxes: Iterable[BoxLike], threshold: float = 0.5
) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of predicted to ground-truth boxes by IoU.

    All (prediction, ground truth) pairs with ``IoU >= threshold`` are visited in decreasing
    IoU order (ties: lower prediction index, then lower ground-truth index) and a pair is
    kept when neither box is matched yet. Each ground-truth box is therefore matched at most
    once, and extra predictions on the same object are unmatched (false positives), as in
    detection evaluation.

    Parameters
    ----------
    pred_boxes, gt_boxes : iterable of Box or 4-sequences
        Boxes with exclusive maxima.
    threshold : float, default 0.5
        Minimum IoU for a match, in (0, 1]; inclusive.

    Returns
    -------
    list of (int, int)
        ``(prediction index, ground-truth index)`` pairs, in the order they were matched.

    Raises
    ------
    TypeError, ValueError
        If a box is invalid or the threshold is outside (0, 1].

    Notes
    -----
    Greedy matching by IoU does not depend on prediction scores; PASCAL VOC instead visits
    predictions by decreasing confidence. Neither is guaranteed to maximise the number of
    matches (an optimal assignment could), but both are the usual practice and agree when
    predictions do not compete for the same ground truth.
    """
    threshold = iou_threshold(threshold)
    preds, gts = as_boxes(pred_boxes), as_boxes(gt_boxes)
    candidates = [(iou(p, g), i, j) for i, p in enumerate(preds) for j, g in enumerate(gts)]
    candidates = [c for c in candidates if c[0] >= threshold]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_pred: set[int] = set()
    used_gt: set[int] = set()
    matches: list[tuple[int, int]] = []
    for _, i, j in candidates:
        if i not in used_pred and j not in used_gt:
            used_pred.add(i)
            used_gt.add(j)
            matches.append((i, j))
    return matches


def box_recall_precision(
    pred_boxes: Iterable[BoxLike], gt_boxes: Iterable[BoxLike], threshold: float = 0.5
) -> tuple[float, float]:
    """Recall and precision of predicted boxes under greedy one-to-one IoU matching.

    Parameters
    ----------
    pred_boxes, gt_boxes : iterable of Box or 4-sequences
        Boxes with exclusive maxima (e.g. ``cam_to_boxes(cam, mode="all")`` and the
        annotations).
    threshold : float, default 0.5
        Minimum IoU for a match, in (0, 1]; inclusive. See :func:`match_boxes`.

    Returns
    -------
    recall : float
        Matched ground-truth boxes / ground-truth boxes; ``nan`` if there is no ground truth.
    precision : float
        Matched predictions / predictions; ``nan`` if there is no prediction.

    Raises
    ------
    TypeError, ValueError
        If a box is invalid or the threshold is outside (0, 1].

    Notes
    -----
    Per-image ratios are ``nan`` when undefined rather than 0 or 1, so that averaging them
    is an explicit choice; to pool a data set, sum ``len(match_boxes(...))`` and the box
    counts over images instead.
    """
    preds, gts = as_boxes(pred_boxes), as_boxes(gt_boxes)
    n_matched = len(match_boxes(preds, gts, threshold))
    recall = n_matched / len(gts) if gts else math.nan
    precision = n_matched / len(preds) if preds else math.nan
    return recall, precision


# ---------------------------------------------------------------------------- WSOL protocol
# Weakly-supervised object localisation (WSOL) scores one box per (image, class) pair:
# GT-known and top-1 localisation (Zhou et al. 2016; Russakovsky et al. 2015) at one box
# threshold, and MaxBoxAccV2 (Choe et al. 2020) over a sweep of thresholds.
