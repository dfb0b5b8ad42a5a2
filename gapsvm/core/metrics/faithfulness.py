"""Faithfulness metrics: does the model's score follow what a map says matters?

Average Drop and Increase in Confidence (Grad-CAM++) compare a class probability on the full
input and on the input weighted by the map; deletion and insertion curves (RISE) remove or
add the most salient pixels step by step. For a linear head on global-average-pooled
features, :func:`linear_gap_scores` and :func:`linear_gap_curves` give the scores of masked
feature maps exactly, without a network pass.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gapsvm.core.validation import check_map

__all__ = [
    "PixelSchedule",
    "auc",
    "average_drop",
    "deletion_insertion_orders",
    "increase_in_confidence",
    "linear_gap_curves",
    "linear_gap_scores",
    "scores_to_probabilities",
]


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
    cam = check_map(cam)
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


def scores_to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Class scores of a linear head as probabilities, the scores the Grad-CAM++ and RISE
    metrics expect.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(..., k)`` class scores. With two classes the scores are ``(-s, s)``, as a binary
        head's per-class CAM weights give them.

    Returns
    -------
    numpy.ndarray
        ``float64`` of the same shape: ``sigmoid(s_c)`` for two classes (the logistic reading
        of the decision value; the two sum to one), a softmax over the last axis otherwise.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[-1] == 2:
        return 0.5 * (1.0 + np.tanh(0.5 * s))  # sigmoid without overflow warnings
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
