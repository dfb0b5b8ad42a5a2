"""Sliding-window detection on a class activation map: window scores, boxes and greedy NMS.

A linear head on global-average-pooled (GAP) features scores a feature grid as
``w . mean_cells f + b``. Because the mean is linear, the score of any window of cells is the
mean of the CAM ``cam[y, x] = sum_k w_k f_k(y, x)`` over the window's cells plus the
intercept, exactly: the decision the head would give to the window's pooled features. So
one CAM scores every window at every position, and an integral image (summed-area table)
gives all those means at once (:func:`window_means`, :func:`scored_windows`).

Windows are counted in feature cells (``8x4``: 8 cells high, 4 wide, the size of a 128x64
training crop at stride 16; see :func:`default_window`), their boxes in image pixels
(:func:`window_boxes`), greedy non-maximum suppression (:func:`nms`) keeps the best
window of each cluster, and box voting (:func:`vote_boxes`) moves each kept box to the
score-weighted mean of its cluster. Boxes follow :mod:`gapsvm.core.boxes`: integer
``(x_min, y_min, x_max, y_max)`` with exclusive maxima.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box, as_box, iou_matrix
from gapsvm.core.validation import check_map, check_unit_interval
from gapsvm.utils.checks import check_int

__all__ = [
    "WINDOW_GRAMMAR",
    "Detection",
    "default_window",
    "detections_from_arrays",
    "nms",
    "parse_windows",
    "scored_windows",
    "vote_boxes",
    "window_boxes",
    "window_means",
]

#: The window grammar, as error messages quote it.
WINDOW_GRAMMAR = "HxW in feature cells, height x width (e.g. 8x4), or a list such as 8x4,10x5"


@dataclass(frozen=True)
class Detection:
    """One detected object: a box in image pixels, its score and its class.

    Parameters
    ----------
    box : Box or sequence of 4 ints
        ``(x_min, y_min, x_max, y_max)`` with exclusive maxima; stored as a :class:`Box`.
    score : float
        The window's decision value (higher is more confident); not NaN.
    label : object, optional
        The class the detection is of.

    Raises
    ------
    TypeError, ValueError
        An invalid box, or a score that is not a number or is NaN.
    """

    box: Box
    score: float
    label: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", as_box(self.box))
        if isinstance(self.score, bool) or not isinstance(self.score, numbers.Real):
            raise TypeError(f"a detection's score must be a number, got {self.score!r}")
        if np.isnan(self.score):
            raise ValueError("a detection's score is NaN")
        object.__setattr__(self, "score", float(self.score))


def _check_window(window: Any) -> tuple[int, int]:
    try:
        h, w = window
    except (TypeError, ValueError):
        raise ValueError(
            f"window must be (height, width) in feature cells, got {window!r}"
        ) from None
    return check_int(h, "window height"), check_int(w, "window width")


def _n_positions(side: int, window: int, stride: int) -> int:
    return (side - window) // stride + 1 if side >= window else 0


def window_means(a: np.ndarray, window: tuple[int, int], stride: int = 1) -> np.ndarray:
    """The mean of a map over every window position, from one integral image.

    Parameters
    ----------
    a : numpy.ndarray
        ``(H, W)`` map or ``(H, W, C)`` feature maps; real-valued and finite.
    window : tuple of (int, int)
        ``(h, w)``, the window's height and width in cells.
    stride : int, default=1
        Cells between two window positions, down and across; windows start at row
        ``0, stride, 2 * stride, ...`` (and likewise for columns).

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(ny, nx)`` or ``(ny, nx, C)``: entry ``[i, j]`` is the mean of
        ``a[i * stride : i * stride + h, j * stride : j * stride + w]`` over its cells, with
        ``ny = (H - h) // stride + 1`` and ``nx = (W - w) // stride + 1``. A window larger
        than the map gives ``ny = 0`` or ``nx = 0``: an empty array, not an error.

    Raises
    ------
    ValueError
        ``a`` is not a finite real 2-D or 3-D array, or ``window`` or ``stride`` are not
        positive integers.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf" or arr.ndim not in (2, 3):
        raise ValueError(
            f"expected a real (H, W) or (H, W, C) array, got shape {arr.shape} of {arr.dtype}"
        )
    wh, ww = _check_window(window)
    stride = check_int(stride, "stride")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("the map holds NaN or infinite values")
    H, W = arr.shape[:2]
    ny, nx = _n_positions(H, wh, stride), _n_positions(W, ww, stride)
    if ny == 0 or nx == 0:
        return np.zeros((ny, nx, *arr.shape[2:]))
    # Centring first keeps the table's entries small, so that the four-corner differences
    # below lose less to cancellation; the offset comes back exactly as a constant.
    offset = arr.mean(axis=(0, 1))
    table = np.zeros((H + 1, W + 1, *arr.shape[2:]))
    table[1:, 1:] = (arr - offset).cumsum(axis=0).cumsum(axis=1)
    y0 = (np.arange(ny) * stride)[:, None]
    x0 = (np.arange(nx) * stride)[None, :]
    sums = table[y0 + wh, x0 + ww] - table[y0, x0 + ww] - table[y0 + wh, x0] + table[y0, x0]
    return sums / (wh * ww) + offset


def _cell_edges(n_cells: int, n_pixels: int) -> np.ndarray:
    """Pixel edges of ``n_cells`` cells over ``n_pixels``: cell ``i`` is ``[e[i], e[i+1])``."""
    # i * n / cells is an exact half-integer whenever it is one, so rint (half to even, as
    # Python's round) rounds it the same way on every platform.
    edges = np.rint(np.arange(n_cells + 1) * n_pixels / n_cells).astype(np.int64)
    return np.clip(edges, 0, n_pixels)


def window_boxes(
    grid_hw: tuple[int, int],
    window: tuple[int, int],
    stride: int,
    image_hw: tuple[int, int],
) -> np.ndarray:
    """The image-pixel box of every window position, in the order of :func:`window_means`.

    Parameters
    ----------
    grid_hw : tuple of (int, int)
        ``(gh, gw)``, the feature grid's size in cells.
    window : tuple of (int, int)
        ``(h, w)`` in cells.
    stride : int
        Cells between two window positions.
    image_hw : tuple of (int, int)
        ``(H, W)``, the image's size in pixels. Cell ``(i, j)`` covers the rows
        ``[round(i * H / gh), round((i + 1) * H / gh))`` and the columns likewise.

    Returns
    -------
    numpy.ndarray
        ``int64`` ``(ny * nx, 4)`` boxes ``(x_min, y_min, x_max, y_max)`` with exclusive
        maxima, row-major over window positions, so that row ``k`` is the box of
        ``window_means(cam, window, stride).reshape(-1)[k]``; ``(0, 4)`` when the window
        does not fit the grid.

    Raises
    ------
    ValueError
        A size, the window or the stride is not made of positive integers.
    """
    gh, gw = (check_int(v, "grid size") for v in grid_hw)
    H, W = (check_int(v, "image size") for v in image_hw)
    wh, ww = _check_window(window)
    stride = check_int(stride, "stride")
    ny, nx = _n_positions(gh, wh, stride), _n_positions(gw, ww, stride)
    rows, cols = _cell_edges(gh, H), _cell_edges(gw, W)
    y0 = np.arange(ny) * stride
    x0 = np.arange(nx) * stride
    yy0, xx0 = np.meshgrid(y0, x0, indexing="ij")
    out = np.stack(
        [cols[xx0], rows[yy0], cols[xx0 + ww], rows[yy0 + wh]], axis=-1
    ).reshape(-1, 4)
    return out.astype(np.int64, copy=False)


def scored_windows(
    cam: np.ndarray,
    intercept: float,
    windows: Sequence[tuple[int, int]],
    image_hw: tuple[int, int],
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Every window of every shape on a CAM, as image boxes and decision values.

    Parameters
    ----------
    cam : numpy.ndarray
        ``(gh, gw)`` class activation map on the feature grid, without the intercept.
    intercept : float
        The head's intercept for the class.
    windows : sequence of (int, int) or str
        Window shapes in cells, anything :func:`parse_windows` reads.
    image_hw : tuple of (int, int)
        The image's ``(H, W)`` in pixels, for the boxes.
    stride : int, default=1
        Cells between two window positions.

    Returns
    -------
    boxes : numpy.ndarray
        ``int64`` ``(n, 4)``, see :func:`window_boxes`.
    scores : numpy.ndarray
        ``float64`` ``(n,)``: the window's mean CAM plus ``intercept``, which is the head's
        decision value on the window's pooled features. Shapes in the order given, each
        row-major; shapes larger than the grid add nothing.

    Raises
    ------
    ValueError
        An invalid map, intercept, window or stride.
    """
    cam = check_map(cam)
    if isinstance(intercept, bool) or not isinstance(intercept, numbers.Real) or not (
        np.isfinite(intercept)
    ):
        raise ValueError(f"intercept must be a finite number, got {intercept!r}")
    all_boxes, all_scores = [np.zeros((0, 4), np.int64)], [np.zeros(0)]
    for window in parse_windows(windows):
        all_scores.append(window_means(cam, window, stride).reshape(-1) + float(intercept))
        all_boxes.append(window_boxes(cam.shape, window, stride, image_hw))
    return np.concatenate(all_boxes), np.concatenate(all_scores)


def _as_box_array(boxes: Any) -> np.ndarray:
    """``(n, 4)`` integer boxes with ordered corners, as int64."""
    arr = np.asarray(boxes)
    if arr.size == 0:
        return np.zeros((0, 4), np.int64)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf":
        raise ValueError(f"boxes must be an (n, 4) array of integers, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError("box coordinates must be whole numbers (exclusive maxima, pixels)")
    out = arr.astype(np.int64)
    if ((out[:, 2] < out[:, 0]) | (out[:, 3] < out[:, 1])).any():
        raise ValueError("boxes must be (x_min, y_min, x_max, y_max) with x_max >= x_min, "
                         "y_max >= y_min")
    return out


def _box_scores(boxes: Any, scores: Any, *, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` boxes (:func:`_as_box_array`) and their ``(n,)`` float64 scores, checked
    to pair up and, with ``finite``, to be finite."""
    b = _as_box_array(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"got {len(s)} scores for {len(b)} boxes")
    if finite and not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return b, s


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.3,
    max_keep: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression.

    Boxes are visited by decreasing score (ties: lower index first); a box is kept unless
    its IoU with a box already kept is above ``iou_threshold``.

    Parameters
    ----------
    boxes : array of shape (n, 4)
        Integer ``(x_min, y_min, x_max, y_max)`` with exclusive maxima.
    scores : array of shape (n,)
        Finite scores, higher is better.
    iou_threshold : float, default=0.3
        In [0, 1]; a box is suppressed when its IoU with a kept box is strictly greater.
        IoU is :func:`gapsvm.core.boxes.iou`'s (no ``+ 1``; boxes sharing an edge have 0).
    max_keep : int or None, default=None
        Stop after this many boxes (None: no limit).

    Returns
    -------
    numpy.ndarray
        ``int64`` indices into ``boxes`` of the kept boxes, by decreasing score; empty for
        no boxes.

    Raises
    ------
    ValueError
        Malformed boxes, scores of another length or not finite, or bad parameters.
    """
    b, s = _box_scores(boxes, scores)
    iou_threshold = check_unit_interval(iou_threshold, "iou_threshold")
    limit = len(b) if max_keep is None else check_int(max_keep, "max_keep", minimum=0)
    rest = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while len(rest) and len(keep) < limit:
        best, rest = rest[0], rest[1:]
        keep.append(int(best))
        rest = rest[iou_matrix(b[best][None], b[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def vote_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    keep: Sequence[int],
    iou_threshold: float = 0.3,
) -> np.ndarray:
    """Box voting: each kept box becomes the score-weighted mean of the boxes it overlaps.

    Windows sit on a grid of feature cells (16 input pixels at stride 16), so the best one
    of a cluster is off the object by up to half a cell at its scale; its neighbours at
    other positions, shapes and scales see the same object. Averaging the cluster's boxes,
    weighted by how far each scores above the cluster's lowest, places the box between
    them (Gidaris and Komodakis, ICCV 2015, weighted by the positive score). The weights
    depend only on the order and spacing of the scores, not on their unit or offset, so a
    head's decision values need no calibration.

    Parameters
    ----------
    boxes : array of shape (n, 4)
        Integer ``(x_min, y_min, x_max, y_max)`` with exclusive maxima: every candidate.
    scores : array of shape (n,)
        Finite scores, higher is better.
    keep : sequence of int
        Indices of the boxes that survived :func:`nms`.
    iou_threshold : float, default=0.3
        A box votes for a kept box when their IoU is above this (the boxes ``nms`` at the
        same threshold would suppress around it, and the kept box itself).

    Returns
    -------
    numpy.ndarray
        ``int64`` ``(len(keep), 4)``: the voted boxes, rounded to whole pixels. A kept box
        that no other box overlaps, or whose cluster scores all alike, is returned as is.

    Raises
    ------
    ValueError
        Malformed boxes, scores of another length or not finite, or an index out of range.
    """
    b, s = _box_scores(boxes, scores)
    iou_threshold = check_unit_interval(iou_threshold, "iou_threshold")
    k = np.asarray(keep, dtype=np.int64).reshape(-1)
    if len(k) and (k.min() < 0 or k.max() >= len(b)):
        raise ValueError(f"keep has indices outside 0..{len(b) - 1}")
    out = b[k].astype(np.float64)
    for row, i in enumerate(k):  # row by row: the kept boxes may be thousands, as the boxes
        near = iou_matrix(b[i][None], b)[0] > iou_threshold
        near[i] = True
        w = s[near] - s[near].min()
        if w.sum() > 0:
            out[row] = w @ b[near] / w.sum()
    return np.rint(out).astype(np.int64)


def _window_pair(item: Any) -> tuple[int, int]:
    if isinstance(item, str):
        parts = item.strip().lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"window {item.strip()!r} is not {WINDOW_GRAMMAR}")
        h, w = (int(p) for p in parts)
    else:
        try:
            h, w = item
        except (TypeError, ValueError):
            raise ValueError(f"window {item!r} is not {WINDOW_GRAMMAR}") from None
    try:
        return check_int(h, "window height"), check_int(w, "window width")
    except ValueError as exc:
        raise ValueError(f"{exc}; windows are {WINDOW_GRAMMAR}") from None


def parse_windows(text: str | Sequence[Any]) -> tuple[tuple[int, int], ...]:
    """Parse window shapes: ``"8x4"``, ``"8x4,10x5"``, ``(8, 4)`` or ``[(8, 4), "10x5"]``.

    Parameters
    ----------
    text : str or sequence
        Text in :data:`WINDOW_GRAMMAR` (feature cells, height x width, comma-separated), one
        ``(h, w)`` pair of integers, or a sequence of pairs and/or ``"HxW"`` strings.

    Returns
    -------
    tuple of (int, int)
        In the given order, duplicates removed.

    Raises
    ------
    ValueError
        Empty, not in the grammar (the message quotes it), or a side that is not a positive
        integer.
    """
    if isinstance(text, str):
        items: list[Any] = [p for p in text.split(",") if p.strip()]
    elif isinstance(text, Sequence | np.ndarray) and len(text) == 2 and all(
        isinstance(v, numbers.Integral) for v in text
    ):
        items = [tuple(text)]  # one (h, w) pair
    else:
        try:
            items = list(text)
        except TypeError:
            raise ValueError(f"windows must be {WINDOW_GRAMMAR}, got {text!r}") from None
    if not items:
        raise ValueError(f"no window given; windows are {WINDOW_GRAMMAR}")
    out: list[tuple[int, int]] = []
    for item in items:
        pair = _window_pair(item)
        if pair not in out:
            out.append(pair)
    return tuple(out)


def default_window(input_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """The training input's size in feature cells: the window the head learnt to score.

    Parameters
    ----------
    input_hw : tuple of (int, int)
        The network input ``(height, width)`` the head was trained at, in pixels.
    stride : int
        The backbone's pixels per feature cell.

    Returns
    -------
    tuple of (int, int)
        ``(input_h // stride, input_w // stride)``, at least 1 cell each: (128, 64) at
        stride 16 gives (8, 4). Floor division, as VGG16's max-pools floor odd sides.

    Raises
    ------
    ValueError
        A size or the stride is not a positive integer.
    """
    h, w = (check_int(v, "input size") for v in input_hw)
    stride = check_int(stride, "stride")
    return max(1, h // stride), max(1, w // stride)


def detections_from_arrays(
    boxes: Any, scores: Any, label: Any = None
) -> list[Detection]:
    """Detections from ``(n, 4)`` boxes and ``(n,)`` scores (e.g. after :func:`nms`).

    Parameters
    ----------
    boxes : array of shape (n, 4)
        Integer boxes with exclusive maxima.
    scores : array of shape (n,)
    label : object, optional
        Given to every detection.

    Returns
    -------
    list of Detection
        In the order given.

    Raises
    ------
    ValueError
        Malformed boxes or another number of scores.
    """
    b, s = _box_scores(boxes, scores, finite=False)  # Detection refuses NaN, keeps +-inf
    return [
        Detection(Box(*(int(v) for v in row)), float(sc), label)
        for row, sc in zip(b, s, strict=True)
    ]
