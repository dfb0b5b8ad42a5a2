"""The threshold sweep of weakly-supervised object localisation (Choe et al., CVPR 2020).

A map is min-max normalised, cut at every threshold of a fine grid, and boxed (the largest
component's box) at each; :func:`iou_curve` scores those boxes against the ground truth,
:func:`max_box_accuracy` takes the best threshold per IoU level (MaxBoxAccV2), and
:func:`top1_localisation` counts a box only when the predicted class is right. Pure
functions of arrays, as everything in :mod:`gapsvm.core.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gapsvm.core.boxes import BoxLike, as_boxes, box_array, iou_matrix
from gapsvm.core.metrics.localisation import corloc, iou_threshold
from gapsvm.core.validation import check_map

__all__ = [
    "MAXBOXACC_IOUS",
    "MAXBOXACC_THRESHOLDS",
    "MaxBoxAcc",
    "box_ious",
    "iou_curve",
    "max_box_accuracy",
    "minmax_normalize",
    "threshold_boxes",
    "top1_localisation",
]


#: Choe et al.'s threshold grid for MaxBoxAcc: 0, 0.01, ..., 0.99 of the min-max normalised map.
MAXBOXACC_THRESHOLDS: np.ndarray = np.round(np.arange(0.0, 1.0, 0.01), 2)
#: The IoU levels MaxBoxAccV2 averages over (Choe et al. 2020, section 4.2).
MAXBOXACC_IOUS: tuple[float, ...] = (0.3, 0.5, 0.7)


def minmax_normalize(cam: np.ndarray) -> np.ndarray:
    """Rescale a map to [0, 1] by its minimum and maximum, as Choe et al. do before a sweep.

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D map.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(cam - min) / (max - min)``. A constant map becomes ones: every pixel is
        the maximum, so every threshold keeps the whole image (its box is the image, as
        :func:`~gapsvm.core.boxes.cam_to_boxes` gives for a flat map).

    Raises
    ------
    ValueError
        If ``cam`` is not a finite, non-empty 2-D array.
    """
    cam = check_map(cam).astype(np.float64, copy=False)
    lo, hi = float(cam.min()), float(cam.max())
    if hi <= lo:
        return np.ones_like(cam)
    return (cam - lo) / (hi - lo)


def _check_thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not ((t >= 0.0) & (t <= 1.0)).all():
        raise ValueError("thresholds must be a non-empty 1-D sequence of values in [0, 1]")
    return t


def _largest_box(keep: np.ndarray, norm: np.ndarray) -> tuple[int, int, int, int]:
    """Box of the component of ``keep`` with the most pixels (ties: the higher peak, then
    the first in row-major order, as :func:`~gapsvm.core.boxes.cam_to_boxes`)."""
    mask = keep.view(np.uint8)
    # Tracing borders is an order of magnitude faster than labelling pixels, and a smooth
    # map's mask is usually one component: then its outer border's box is the answer. (The
    # two-level hierarchy puts a component lying in another's hole at the top level too.)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer = [c for c, h in zip(contours, hierarchy[0], strict=True) if h[3] < 0]
    if len(outer) == 1:
        x, y, w, h = cv2.boundingRect(outer[0])
        return x, y, x + w, y + h
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=8, ltype=cv2.CV_32S
    )
    areas = stats[1:, cv2.CC_STAT_AREA]
    tied = np.flatnonzero(areas == areas.max()) + 1
    k = int(tied[0])
    if tied.size > 1:  # rare: look at the peaks only when areas tie
        k = int(tied[int(np.argmax([float(norm[labels == b].max()) for b in tied]))])
    x, y = int(stats[k, cv2.CC_STAT_LEFT]), int(stats[k, cv2.CC_STAT_TOP])
    return x, y, x + int(stats[k, cv2.CC_STAT_WIDTH]), y + int(stats[k, cv2.CC_STAT_HEIGHT])


def threshold_boxes(
    cam: np.ndarray, thresholds: Sequence[float] | np.ndarray = MAXBOXACC_THRESHOLDS
) -> np.ndarray:
    """The largest component's box at each threshold of the min-max normalised map.

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D map at image resolution.
    thresholds : sequence of float, default :data:`MAXBOXACC_THRESHOLDS`
        Thresholds in [0, 1] on :func:`minmax_normalize` ``(cam)``; a pixel is kept when its
        value is ``>= threshold`` (inclusive, as :func:`~gapsvm.core.boxes.cam_to_boxes`).

    Returns
    -------
    numpy.ndarray
        ``int64`` ``(len(thresholds), 4)`` boxes ``(x_min, y_min, x_max, y_max)`` with
        exclusive maxima, never empty (the maximum always passes). Threshold 0 gives the whole
        image.

    Raises
    ------
    ValueError
        If ``cam`` is not a finite 2-D map or a threshold is outside [0, 1].

    Notes
    -----
    Masks shrink as the threshold grows, so two thresholds that keep the same number of
    pixels keep the same pixels: the components are labelled once per distinct mask, not once
    per threshold. Choe et al.'s code takes the bounding rectangle of the largest contour of
    the 8-bit map thresholded with ``>``; on the float map with ``>=`` the two differ only on
    quantisation ties.
    """
    norm = minmax_normalize(cam)
    t = _check_thresholds(thresholds)
    flat = np.sort(norm, axis=None)
    counts = flat.size - np.searchsorted(flat, t, side="left")
    out = np.empty((t.size, 4), dtype=np.int64)
    done: dict[int, tuple[int, int, int, int]] = {}
    for k, (thr, n_kept) in enumerate(zip(t, counts, strict=True)):
        n_kept = int(n_kept)
        if n_kept not in done:
            done[n_kept] = _largest_box(norm >= thr, norm)
        out[k] = done[n_kept]
    return out


def box_ious(boxes: np.ndarray | Sequence[BoxLike], gt_boxes: Iterable[BoxLike]) -> np.ndarray:
    """IoU of every box against every ground-truth box, vectorised.

    Parameters
    ----------
    boxes : array of shape (n, 4) or sequence of boxes
        ``(x_min, y_min, x_max, y_max)`` with exclusive maxima.
    gt_boxes : iterable of Box or 4-sequences
        Ground-truth boxes (exclusive maxima).

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(n, n_gt)``; 0 where a union is empty. Equals
        :func:`~gapsvm.core.boxes.iou` pair by pair.
    """
    return iou_matrix(box_array(boxes), box_array(gt_boxes))


def iou_curve(
    cam: np.ndarray,
    gt_boxes: Iterable[BoxLike],
    thresholds: Sequence[float] | np.ndarray = MAXBOXACC_THRESHOLDS,
) -> np.ndarray:
    """Best IoU with the ground truth of the map's box at each threshold of a sweep.

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D map at image resolution.
    gt_boxes : iterable of Box or 4-sequences
        Ground-truth boxes of the pair (exclusive maxima); the best match counts, as in
        Choe et al.'s evaluation.
    thresholds : sequence of float, default :data:`MAXBOXACC_THRESHOLDS`
        See :func:`threshold_boxes`.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(len(thresholds),)`` IoUs in [0, 1]; zeros when there is no ground truth.
    """
    boxes = threshold_boxes(cam, thresholds)
    gts = as_boxes(gt_boxes)
    if not gts:
        return np.zeros(len(boxes))
    return box_ious(boxes, gts).max(axis=1)


@dataclass(frozen=True)
class MaxBoxAcc:
    """MaxBoxAccV2 and its parts: :func:`max_box_accuracy`'s result.

    Attributes
    ----------
    value : float
        The mean over the IoU levels of the best box accuracy (MaxBoxAccV2).
    per_iou : dict of float to float
        IoU level -> box accuracy at that level's best threshold.
    best_threshold : dict of float to float
        IoU level -> the threshold where it is reached (the lowest one on ties).
    curves : numpy.ndarray
        ``(len(ious), len(thresholds))`` box accuracy at every threshold.
    """

    value: float
    per_iou: dict[float, float]
    best_threshold: dict[float, float]
    curves: np.ndarray


def max_box_accuracy(
    iou_curves: np.ndarray | Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = MAXBOXACC_THRESHOLDS,
    ious: Sequence[float] = MAXBOXACC_IOUS,
) -> MaxBoxAcc:
    """MaxBoxAccV2 (Choe et al. 2020): box accuracy at the best threshold, averaged over IoUs.

    For each IoU level ``d``, the box accuracy at threshold ``t`` is the share of pairs whose
    box at ``t`` has IoU ``>= d`` with the ground truth; its maximum over ``t`` is taken per
    level, then averaged over the levels.

    Parameters
    ----------
    iou_curves : array of shape (n_pairs, n_thresholds)
        One :func:`iou_curve` per pair.
    thresholds : sequence of float, default :data:`MAXBOXACC_THRESHOLDS`
        The thresholds the curves were computed at (only reported back).
    ious : sequence of float, default (0.3, 0.5, 0.7)
        IoU levels in (0, 1], inclusive.

    Returns
    -------
    MaxBoxAcc

    Raises
    ------
    ValueError
        If the curves are empty, not 2-D, outside [0, 1], or do not match the thresholds.

    Notes
    -----
    The threshold is chosen on the pairs being scored: that is the metric's definition (an
    upper bound of what one calibrated threshold reaches), not a calibration.

    References
    ----------
    .. [1] J. Choe, S. J. Oh, S. Lee, S. Chun, Z. Akata, H. Shim. "Evaluating Weakly
       Supervised Object Localization Methods Right". CVPR 2020.
    """
    c = np.asarray(iou_curves, dtype=np.float64)
    t = _check_thresholds(thresholds)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] != t.size:
        raise ValueError(
            f"iou_curves must be (n_pairs >= 1, {t.size}) to match the thresholds, got {c.shape}"
        )
    if not ((c >= 0.0) & (c <= 1.0)).all():
        raise ValueError("iou_curves must all be in [0, 1] (and not NaN)")
    levels = [iou_threshold(d) for d in ious]
    curves = np.stack([(c >= d).mean(axis=0) for d in levels])
    best = curves.argmax(axis=1)  # first maximum: the lowest threshold on ties
    per_iou = {d: float(curves[k, best[k]]) for k, d in enumerate(levels)}
    at = {d: float(t[best[k]]) for k, d in enumerate(levels)}
    return MaxBoxAcc(float(np.mean(list(per_iou.values()))), per_iou, at, curves)


def top1_localisation(
    correct: Sequence[bool] | np.ndarray,
    ious: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
) -> float:
    """Top-1 localisation: share of pairs whose predicted class is right *and* box is right.

    Parameters
    ----------
    correct : sequence of bool
        Per pair, whether the classifier's top class is the pair's label.
    ious : sequence of float
        Per pair, the IoU of the true class's box (when the class is right, that is the
        predicted class's box; when it is wrong the pair is a miss whatever the box).
    threshold : float, default 0.5
        IoU needed, in (0, 1]; inclusive.

    Returns
    -------
    float
        Fraction in [0, 1]; ``1 -`` it is the CAM paper's top-1 localisation error.

    Raises
    ------
    ValueError
        If the sequences are empty or differ in length, or an IoU is outside [0, 1].
    """
    ok = np.atleast_1d(np.asarray(correct, dtype=bool))
    iou_arr = np.atleast_1d(np.asarray(ious, dtype=np.float64))
    if ok.shape != iou_arr.shape:
        raise ValueError(
            f"correct {ok.shape} and ious {iou_arr.shape} must have one value per pair"
        )
    corloc(iou_arr, threshold)  # the same checks of the IoUs and threshold
    return float(np.mean(ok & (iou_arr >= threshold)))
