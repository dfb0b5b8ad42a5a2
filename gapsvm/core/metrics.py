"""Localisation and faithfulness metrics for class activation maps, and baseline maps.

Everything here is a pure function of arrays (NumPy only, plus :mod:`gapsvm.boxes`): no model
is called. Metrics that need model scores (Average Drop, deletion / insertion) take scores
computed elsewhere; for gapsvm's linear head on global-average-pooled features those are
cheap, since a masked image's score is a linear function of its pooled feature vector.

Conventions
-----------
* Boxes use the convention of :mod:`gapsvm.boxes`: integer ``(x_min, y_min, x_max, y_max)``
  with **exclusive** maxima, i.e. the pixels ``array[y_min:y_max, x_min:x_max]``.
* A map ``cam`` is a finite 2-D array at image resolution: pixel ``(row, col)`` of the map is
  pixel ``(row, col)`` of the image that the ground-truth boxes refer to.
* Shares and rates (:func:`energy_in_box`, :func:`corloc`, :func:`box_recall_precision`, ...)
  are fractions in [0, 1]. Only :func:`average_drop` and :func:`increase_in_confidence` are
  percentages, because that is how Chattopadhay et al. define them.
* Images without an object of the class should not be scored by the localisation metrics;
  that is the caller's decision. Given no ground-truth box the functions still return the
  mathematically natural value (no hit, no energy, IoU 0) rather than raising.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gapsvm.core.boxes import (
    Box,
    BoxLike,
    _image_hw,
    _validate_map,
    _validate_unit_interval,
    as_box,
    as_boxes,
    boxes_to_mask,
    iou,
)

__all__ = [
    "PixelSchedule",
    "auc",
    "average_drop",
    "best_iou",
    "box_area_share",
    "box_recall_precision",
    "center_box",
    "center_map",
    "corloc",
    "deletion_insertion_orders",
    "energy_in_box",
    "increase_in_confidence",
    "linear_gap_curves",
    "linear_gap_scores",
    "match_boxes",
    "pointing_game",
    "random_map",
    "scaled_tolerance",
    "uniform_map",
]


def _nonnegative_real(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _iou_threshold(threshold: float) -> float:
    threshold = _validate_unit_interval(threshold, "threshold")
    # IoU >= 0 holds for every pair, so a zero threshold would "match" disjoint boxes.
    if threshold == 0.0:
        raise ValueError("threshold must be in (0, 1], got 0")
    return threshold


def scaled_tolerance(
    image_shape: Sequence[int], base: float = 15.0, reference: float = 224.0
) -> float:
    """Pointing-game tolerance scaled to an image's size.

    Parameters
    ----------
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)`` of the image the CAM and boxes refer to.
    base : float, default 15
        Tolerance in pixels at the reference size (15 px in Zhang et al. 2016).
    reference : float, default 224
        Shorter image side at which ``base`` applies (the VGG16 input size).

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
    h, w = _image_hw(image_shape)
    base = _nonnegative_real(base, "base")
    reference = _nonnegative_real(reference, "reference")
    if reference == 0.0:
        raise ValueError("reference must be > 0")
    return base * min(h, w) / reference


def pointing_game(cam: np.ndarray, gt_boxes: Iterable[BoxLike], tolerance: float = 15.0) -> bool:
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
    corner; :func:`center_map` is the meaningful "no information" baseline for this metric.
    Distances are measured between pixel indices. TorchRay's reference implementation uses a
    strict ``distance < tolerance``; the two agree except for points at exactly integral
    distances such as (15, 0) or (9, 12).

    References
    ----------
    .. [1] J. Zhang, Z. Lin, J. Brandt, X. Shen, S. Sclaroff. "Top-down Neural Attention by
       Excitation Backprop". ECCV 2016 (pointing game, 15-pixel tolerance).
    """
    cam = _validate_map(cam)
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
    cam = _validate_map(cam)
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
        :func:`~gapsvm.boxes.cam_to_boxes` returns ``[]``) scores 0.
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
    threshold = _iou_threshold(threshold)
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
    threshold = _iou_threshold(threshold)
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


def _paired_scores(
    full_scores: Sequence[float] | np.ndarray, masked_scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y = np.atleast_1d(np.asarray(full_scores, dtype=np.float64))
    o = np.atleast_1d(np.asarray(masked_scores, dtype=np.float64))
    if y.ndim != 1 or o.ndim != 1 or y.shape != o.shape:
        raise ValueError(
            "full_scores and masked_scores must be 1-D with one score per image, got shapes "
            f"{y.shape} and {o.shape}"
        )
    if y.size == 0:
        raise ValueError("no scores given")
    if not (np.isfinite(y).all() and np.isfinite(o).all()):
        raise ValueError("scores must be finite")
    # The definitions divide by Y and treat scores as probabilities; raw SVM decision values
    # can be negative, which would silently flip the sign of a "drop".
    if not (y > 0.0).all():
        raise ValueError(
            "full_scores must be > 0: pass class probabilities (e.g. a sigmoid or softmax of "
            "the decision function), not raw decision values"
        )
    if not (o >= 0.0).all():
        raise ValueError(
            "masked_scores must be >= 0: pass class probabilities, not raw decision values"
        )
    return y, o


def average_drop(
    full_scores: Sequence[float] | np.ndarray, masked_scores: Sequence[float] | np.ndarray
) -> float:
    """Average Drop (%) of the class score when only the explanation is shown (Grad-CAM++).

    Parameters
    ----------
    full_scores : sequence of float
        ``Y_i``: the class probability (or another positive score) on each full image.
    masked_scores : sequence of float
        ``O_i``: the same score on each image multiplied pixel-wise by its explanation map
        (scaled to [0, 1]), same order.

    Returns
    -------
    float
        ``100 * mean_i(max(0, Y_i - O_i) / Y_i)``, in [0, 100]; lower is better.

    Raises
    ------
    ValueError
        If the inputs are empty, not 1-D of equal length, not finite, ``Y_i <= 0`` or
        ``O_i < 0``.

    Notes
    -----
    The definition assumes positive scores (probabilities): the ratio is meaningless for a
    non-positive ``Y``. Pass e.g. a sigmoid of the linear head's decision value, or a
    softmax over classes, not the raw decision value.

    References
    ----------
    .. [1] A. Chattopadhay, A. Sarkar, P. Howlader, V. N. Balasubramanian. "Grad-CAM++:
       Generalized Gradient-Based Visual Explanations for Deep Convolutional Networks".
       WACV 2018 (Average Drop %).
    """
    y, o = _paired_scores(full_scores, masked_scores)
    return float(np.mean(np.maximum(0.0, y - o) / y) * 100.0)


def increase_in_confidence(
    full_scores: Sequence[float] | np.ndarray, masked_scores: Sequence[float] | np.ndarray
) -> float:
    """Increase in Confidence (%): share of images whose score rises when masked (Grad-CAM++).

    Parameters
    ----------
    full_scores : sequence of float
        ``Y_i``: class probability (or positive score) on each full image.
    masked_scores : sequence of float
        ``O_i``: the same on each image multiplied by its explanation map.

    Returns
    -------
    float
        ``100 * mean_i(O_i > Y_i)`` (strict), in [0, 100]; higher is better.

    Raises
    ------
    ValueError
        Same conditions as :func:`average_drop`.

    Notes
    -----
    Defined on positive scores (probabilities), like :func:`average_drop`.

    References
    ----------
    .. [1] A. Chattopadhay et al. "Grad-CAM++". WACV 2018 (% Increase in Confidence).
    """
    y, o = _paired_scores(full_scores, masked_scores)
    return float(np.mean(o > y) * 100.0)


@dataclass(frozen=True, eq=False)
class PixelSchedule:
    """Which pixels are deleted (or inserted) at each step of a deletion / insertion curve.

    Both curves of Petsiuk et al. act on pixels in the same order, most salient first:
    deletion replaces them by a baseline (e.g. zero or the mean colour) in the image,
    insertion copies them from the image into a baseline canvas (e.g. a blurred image).
    Step ``i`` affects the first ``counts[i]`` pixels of ``order``; a single mask per step
    therefore serves both curves.

    Only the ranking (one index per pixel) is stored; masks are built on demand, so a
    640 x 320 map with 32 steps costs one index array, not 33 masks.

    Attributes
    ----------
    order : numpy.ndarray
        Flat (row-major) pixel indices, most salient first; read-only, length ``h * w``.
    counts : numpy.ndarray
        ``counts[i]`` = number of pixels affected after step ``i``, for ``i = 0..n_steps``;
        ``counts[i] = floor(i * h * w / n_steps)``, so ``counts[0] == 0`` and
        ``counts[-1] == h * w``. Read-only.
    shape : tuple of int
        ``(h, w)`` of the map.
    """

    order: np.ndarray
    counts: np.ndarray
    shape: tuple[int, int]

    @property
    def n_steps(self) -> int:
        """Number of steps; there are ``n_steps + 1`` masks (step 0 affects nothing)."""
        return len(self.counts) - 1

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of pixels affected at each step, ``counts / (h * w)``.

        Equal to ``i / n_steps`` up to less than one pixel, which is the x axis :func:`auc`
        assumes.
        """
        return self.counts / self.order.size

    def mask(self, step: int) -> np.ndarray:
        """Boolean ``(h, w)`` mask of the pixels deleted / inserted after ``step`` steps.

        Parameters
        ----------
        step : int
            In ``0..n_steps``.

        Returns
        -------
        numpy.ndarray
            ``bool`` array, True on the ``counts[step]`` most salient pixels.

        Raises
        ------
        IndexError
            If ``step`` is out of range.
        """
        if not 0 <= step <= self.n_steps:
            raise IndexError(f"step must be in 0..{self.n_steps}, got {step}")
        flat = np.zeros(self.order.size, dtype=bool)
        flat[self.order[: self.counts[step]]] = True
        return flat.reshape(self.shape)

    def masks(self) -> Iterator[np.ndarray]:
        """Yield the ``n_steps + 1`` masks of :meth:`mask` in step order.

        Built incrementally (each pixel is set once); every yielded array is a fresh copy
        that the caller may keep or modify.

        Yields
        ------
        numpy.ndarray
            ``bool`` ``(h, w)`` mask for steps ``0, 1, ..., n_steps``; each contains the
            previous one.
        """
        flat = np.zeros(self.order.size, dtype=bool)
        done = 0
        for count in self.counts:
            flat[self.order[done:count]] = True
            done = int(count)
            yield flat.reshape(self.shape).copy()


def deletion_insertion_orders(
    cam: np.ndarray,
    n_steps: int = 32,
    rng: np.random.Generator | int | None = None,
) -> PixelSchedule:
    """Rank pixels by saliency for the deletion and insertion metrics (RISE).

    Parameters
    ----------
    cam : numpy.ndarray
        Finite 2-D saliency map at image resolution.
    n_steps : int, default 32
        Number of steps; the curves are sampled at ``n_steps + 1`` points, from no pixel
        to all pixels.
    rng : numpy.random.Generator, int or None, optional
        How to order pixels of equal saliency. None (default): row-major order, which is
        deterministic but biased towards the top of the image when a map has large flat
        regions (e.g. zeros after a ReLU). A Generator or seed breaks ties at random.

    Returns
    -------
    PixelSchedule
        The ranking and per-step pixel counts; iterate ``schedule.masks()`` to get the
        boolean mask of affected pixels at each step.

    Raises
    ------
    ValueError
        If ``cam`` is not a finite 2-D array or ``n_steps < 1``.
    TypeError
        If ``n_steps`` is not an integer.

    Notes
    -----
    For each step the caller scores the deleted image (pixels under the mask replaced by the
    baseline) and the inserted image (baseline with the masked pixels restored), then applies
    :func:`auc` to each curve. A good map has a low deletion AUC and a high insertion AUC.

    References
    ----------
    .. [1] V. Petsiuk, A. Das, K. Saenko. "RISE: Randomized Input Sampling for Explanation
       of Black-box Models". BMVC 2018 (deletion and insertion metrics).
    """
    cam = _validate_map(cam)
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(f"n_steps must be an integer, got {type(n_steps).__name__}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    values = cam.ravel()
    n = values.size
    # A stable sort of the negated values lists the most salient first and keeps ties in
    # the order of `candidates`: row-major, or a random permutation when rng is given.
    if rng is None:
        candidates = np.arange(n)
    else:
        candidates = np.random.default_rng(rng).permutation(n)
    order = candidates[np.argsort(-values[candidates], kind="stable")]
    # Integer arithmetic gives exact endpoints (0 and n) and non-decreasing counts.
    counts = np.arange(n_steps + 1, dtype=np.int64) * n // n_steps
    order.setflags(write=False)
    counts.setflags(write=False)
    return PixelSchedule(order=order, counts=counts, shape=cam.shape)


def auc(scores: Sequence[float] | np.ndarray) -> float:
    """Area under a curve sampled at equally spaced fractions 0..1 (trapezoidal rule).

    Parameters
    ----------
    scores : sequence of float
        ``scores[i]`` is the curve at ``x = i / (len(scores) - 1)``, e.g. the class
        probability after step ``i`` of a :class:`PixelSchedule`. At least two values.

    Returns
    -------
    float
        The trapezoidal area over ``x`` in [0, 1]; a constant curve ``c`` gives ``c``, and
        for scores in [0, 1] the area is in [0, 1].

    Raises
    ------
    ValueError
        If ``scores`` is not 1-D, has fewer than two values, or is not finite.

    References
    ----------
    .. [1] V. Petsiuk, A. Das, K. Saenko. "RISE". BMVC 2018.
    """
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"scores must be 1-D with at least 2 values, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("scores must be finite")
    return float(np.trapezoid(y, dx=1.0 / (y.size - 1)))


def _class_maps_and_intercepts(
    class_maps: np.ndarray, intercepts: float | Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate ``(h, w)`` / ``(h, w, k)`` maps and their intercepts; return ``(h, w, k)``."""
    a = np.asarray(class_maps)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"class_maps must be real-valued, got dtype {a.dtype}")
    single = a.ndim == 2
    if single:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0:
        raise ValueError(f"class_maps must have shape (h, w) or (h, w, k), got {a.shape}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError("class_maps contains NaN or infinite values")
    b = np.atleast_1d(np.asarray(intercepts, dtype=np.float64))
    if b.shape != (a.shape[2],):
        raise ValueError(
            f"expected {a.shape[2]} intercept(s), one per class map, got shape {b.shape}"
        )
    if not np.isfinite(b).all():
        raise ValueError("intercepts must be finite")
    return a, b, single


def linear_gap_scores(
    class_maps: np.ndarray,
    intercepts: float | Sequence[float] | np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Scores of a linear head on GAP features when each feature cell is scaled by a weight.

    For a head ``s_c = W[c] . mean_xy f(x, y) + b[c]`` and per-class maps
    ``A_c(x, y) = W[c] . f(x, y)`` (class activation maps without the intercept), multiplying
    every feature vector ``f(x, y)`` by ``m(x, y)`` gives exactly
    ``s_c(m) = mean_xy(m(x, y) A_c(x, y)) + b[c]``: no network pass is needed to score a
    masked feature map.

    Parameters
    ----------
    class_maps : numpy.ndarray
        ``(h, w, k)`` maps ``A_c`` at feature resolution, one per class (or ``(h, w)`` for
        one class).
    intercepts : float or sequence of float
        ``b``: one per class map.
    weights : numpy.ndarray
        ``(h, w)`` mask (bool or real, e.g. an explanation scaled to [0, 1]) or a stack
        ``(m, h, w)`` of masks.

    Returns
    -------
    numpy.ndarray
        ``float64`` scores of shape ``(k,)`` for one mask or ``(m, k)`` for a stack; the class
        axis is dropped when ``class_maps`` is 2-D. An all-ones mask gives the unmasked
        score, an all-zeros mask the intercepts.

    Raises
    ------
    ValueError
        If the shapes disagree or a value is not finite.

    Notes
    -----
    Zeroing a cell is the feature-space counterpart of blacking out image pixels: after the
    backbone's final ReLU a zero vector means "no evidence at all". It is *not* the same as
    masking the image, where the convolutions would see the mask's edges and the mask would
    spread across the receptive fields.
    """
    a, b, single = _class_maps_and_intercepts(class_maps, intercepts)
    m = np.asarray(weights)
    if m.dtype.kind not in "biuf":
        raise ValueError(f"weights must be real or boolean, got dtype {m.dtype}")
    stacked = m.ndim == 3
    if m.shape[-2:] != a.shape[:2] or m.ndim not in (2, 3):
        raise ValueError(
            f"weights must have shape {a.shape[:2]} or (m, *{a.shape[:2]}), got {m.shape}"
        )
    m = m.astype(np.float64, copy=False)
    if not np.isfinite(m).all():
        raise ValueError("weights contains NaN or infinite values")
    n_cells = a.shape[0] * a.shape[1]
    scores = np.tensordot(m.reshape(-1, n_cells), a.reshape(n_cells, -1), axes=1) / n_cells + b
    if single:
        scores = scores[:, 0]
    return scores if stacked else scores[0]


def linear_gap_curves(
    class_maps: np.ndarray,
    intercepts: float | Sequence[float] | np.ndarray,
    schedule: PixelSchedule,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves of a linear GAP head over its own feature cells.

    Step ``i`` of ``schedule`` selects the ``counts[i]`` most salient cells. *Deletion* zeroes
    them (the other cells keep their features); *insertion* keeps only them (a zero feature
    map as the starting canvas). With the linear head both scores follow exactly from
    :func:`linear_gap_scores`, computed here for all steps at once with one cumulative sum.

    Parameters
    ----------
    class_maps : numpy.ndarray
        ``(h, w, k)`` per-class maps without intercept (or ``(h, w)``), as in
        :func:`linear_gap_scores`.
    intercepts : float or sequence of float
        One per class map.
    schedule : PixelSchedule
        From :func:`deletion_insertion_orders` on a saliency map of shape ``(h, w)``.

    Returns
    -------
    deletion, insertion : numpy.ndarray
        ``float64`` raw scores of shape ``(n_steps + 1, k)`` (``(n_steps + 1,)`` for a 2-D
        map). ``deletion[0]`` and ``insertion[-1]`` are the unmasked score,
        ``deletion[-1]`` and ``insertion[0]`` the intercepts. Turn them into probabilities
        before :func:`auc`, as RISE plots class probabilities.

    Raises
    ------
    ValueError
        If the schedule's shape is not ``(h, w)`` or a value is not finite.

    Notes
    -----
    Ranking cells by the class's own map ``A_c`` is the *optimal* order for both curves
    here: each step removes (or adds) the cells that change ``mean(A_c)`` the most. On
    feature cells a CAM therefore scores the best deletion and insertion possible for its
    class; the metric shows how far another map (a baseline) is from that optimum, and an
    image-space run is needed to test the backbone's part of the explanation.
    """
    a, b, single = _class_maps_and_intercepts(class_maps, intercepts)
    if not isinstance(schedule, PixelSchedule):
        raise TypeError(f"schedule must be a PixelSchedule, got {type(schedule).__name__}")
    if tuple(schedule.shape) != a.shape[:2]:
        raise ValueError(
            f"schedule is for a {schedule.shape} map but class_maps are {a.shape[:2]}"
        )
    n_cells = a.shape[0] * a.shape[1]
    ranked = a.reshape(n_cells, -1)[schedule.order]
    cumulative = np.vstack([np.zeros((1, ranked.shape[1])), np.cumsum(ranked, axis=0)])
    kept_sum = cumulative[schedule.counts]
    # The total comes from the same cumulative sum, so deletion[0] == insertion[-1] exactly.
    total = cumulative[-1]
    insertion = kept_sum / n_cells + b
    deletion = (total - kept_sum) / n_cells + b
    if single:
        return deletion[:, 0], insertion[:, 0]
    return deletion, insertion


def center_map(shape: Sequence[int], sigma: float = 0.25) -> np.ndarray:
    """Centre-bias baseline: an axis-aligned Gaussian peaking at the image centre.

    Parameters
    ----------
    shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.
    sigma : float, default 0.25
        Standard deviation as a fraction of each side (``sigma * w`` horizontally,
        ``sigma * h`` vertically), so the blob follows the image's aspect ratio.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(h, w)`` map in (0, 1], equal to 1 at the centre
        ``((h - 1) / 2, (w - 1) / 2)`` (the centre pixel for odd sizes; the four central
        pixels tie for even sizes) and symmetric under horizontal and vertical flips.

    Raises
    ------
    ValueError
        If the shape is invalid or ``sigma <= 0``.

    Notes
    -----
    A Gaussian rather than a cone: it is smooth like an upsampled CAM and strictly positive,
    so :func:`energy_in_box` is always defined and no flat region of ties decides the
    deletion / insertion order.
    """
    h, w = _image_hw(shape)
    sigma = _nonnegative_real(sigma, "sigma")
    if sigma == 0.0:
        raise ValueError("sigma must be > 0")
    # Pixel centres are at integer indices, so the image centre is at (n - 1) / 2.
    ys = (np.arange(h) - (h - 1) / 2.0) / (sigma * h)
    xs = (np.arange(w) - (w - 1) / 2.0) / (sigma * w)
    return np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))


def uniform_map(shape: Sequence[int]) -> np.ndarray:
    """No-information baseline: a map of ones.

    Parameters
    ----------
    shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(h, w)`` array of ones. Its :func:`energy_in_box` equals
        :func:`box_area_share`, its box (:func:`~gapsvm.boxes.cam_to_boxes`) is the whole
        image, and its pointing-game "maximum" is the top-left pixel (first of the ties).

    Raises
    ------
    ValueError
        If the shape is invalid.
    """
    return np.ones(_image_hw(shape), dtype=np.float64)


def _upsample_linear(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` to ``n_out`` samples (half-pixel grid).

    Same sampling grid as ``cv2.resize(..., INTER_LINEAR)``: output pixel centres are mapped
    to ``(i + 0.5) * n_in / n_out - 0.5`` in the input and clamped at the borders.
    """
    n_in = a.shape[axis]
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t_shape = [1] * a.ndim
    t_shape[axis] = n_out
    t = (src - i0).reshape(t_shape)
    return np.take(a, i0, axis=axis) * (1.0 - t) + np.take(a, i1, axis=axis) * t


def random_map(shape: Sequence[int], rng: np.random.Generator | int, cell: int = 16) -> np.ndarray:
    """Smooth random baseline: low-resolution uniform noise upsampled bilinearly.

    Parameters
    ----------
    shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.
    rng : numpy.random.Generator or int
        Source of randomness, or a seed for :func:`numpy.random.default_rng`.
    cell : int, default 16
        Size in pixels of one noise cell, i.e. the upsampling factor. The default matches
        the stride of VGG16's block5 convolutions, so the random blobs have the size of a
        CAM's.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(h, w)`` map with values in [0, 1]: one uniform value per cell on a
        ``ceil(h / cell) x ceil(w / cell)`` grid, interpolated bilinearly. Unlike per-pixel
        noise it has blob structure, so it is a fair chance level for box-based metrics.

    Raises
    ------
    ValueError
        If the shape is invalid or ``cell < 1``.
    TypeError
        If ``cell`` is not an integer.
    """
    h, w = _image_hw(shape)
    if isinstance(cell, bool) or not isinstance(cell, numbers.Integral):
        raise TypeError(f"cell must be an integer, got {type(cell).__name__}")
    if cell < 1:
        raise ValueError(f"cell must be >= 1, got {cell}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    low = gen.random((math.ceil(h / cell), math.ceil(w / cell)))
    return _upsample_linear(_upsample_linear(low, h, axis=0), w, axis=1)


def center_box(shape: Sequence[int], fraction: float = 0.5) -> Box:
    """Centre-bias baseline box: a box centred in the image.

    Parameters
    ----------
    shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.
    fraction : float, default 0.5
        Side length as a fraction of each image side, in (0, 1]; the box therefore covers
        about ``fraction ** 2`` of the image area (a quarter by default).

    Returns
    -------
    Box
        Width ``max(1, round(fraction * w))`` and height likewise (halves round up), placed
        at ``x_min = (w - width) // 2`` (exclusive maxima; score ``nan``).

    Raises
    ------
    ValueError
        If the shape is invalid or ``fraction`` is outside (0, 1].
    """
    h, w = _image_hw(shape)
    fraction = _validate_unit_interval(fraction, "fraction")
    if fraction == 0.0:
        raise ValueError("fraction must be in (0, 1], got 0")
    bw = max(1, math.floor(fraction * w + 0.5))
    bh = max(1, math.floor(fraction * h + 0.5))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return Box(x0, y0, x0 + bw, y0 + bh)
