"""Baselines: model-free maps and boxes that a class activation map should beat.

A metric means little without its chance level. Each baseline here is a map of the same
image (and of the same feature grid) that knows nothing about the image's content: a centred
box and Gaussian (the photographer's centre bias), a constant map (whose box is the whole
image), smooth random noise, and the centre-Gaussian map of Choe et al. (CVPR 2020) boxed
like a CAM.

:data:`BASELINES` lists them for ``gapsvm evaluate``; adding a baseline is one entry there
(a function from a :class:`BaselineInput` to its :class:`MethodMaps`) plus its test.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.validation import check_image_hw, check_unit_interval

__all__ = [
    "BASELINES",
    "BaselineInput",
    "MethodMaps",
    "center_box",
    "center_map",
    "method_maps",
    "pool_to_grid",
    "random_map",
    "uniform_map",
]


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
        If the shape is invalid or ``sigma`` is not a finite number > 0.
    TypeError
        If ``sigma`` is not a real number.

    Notes
    -----
    A Gaussian rather than a cone: it is smooth like an upsampled CAM and strictly positive,
    so :func:`~gapsvm.core.metrics.energy_in_box` is always defined and no flat region of
    ties decides the deletion / insertion order.
    """
    h, w = check_image_hw(shape)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a real number, got {type(sigma).__name__}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0.0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
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
        ``float64`` ``(h, w)`` array of ones. Its energy in box equals
        :func:`~gapsvm.core.metrics.box_area_share`, its box
        (:func:`~gapsvm.core.boxes.cam_to_boxes`) is the whole image, and its pointing-game
        "maximum" is the top-left pixel (first of the ties).

    Raises
    ------
    ValueError
        If the shape is invalid.
    """
    return np.ones(check_image_hw(shape), dtype=np.float64)


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
        Size in pixels of one noise cell, i.e. the upsampling factor. Pass the backbone's
        stride (over the input scale) so that the random blobs have the size of a CAM's
        cells, as ``gapsvm evaluate`` does; the default is a 16-px stride's.

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
    h, w = check_image_hw(shape)
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
    h, w = check_image_hw(shape)
    fraction = check_unit_interval(fraction, "fraction")
    if fraction == 0.0:
        raise ValueError("fraction must be in (0, 1], got 0")
    bw = max(1, math.floor(fraction * w + 0.5))
    bh = max(1, math.floor(fraction * h + 0.5))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return Box(x0, y0, x0 + bw, y0 + bh)


def pool_to_grid(image_map: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Average an image-resolution map over the pixels of each feature cell.

    Parameters
    ----------
    image_map : numpy.ndarray
        ``(H, W)`` map at image resolution.
    grid_hw : tuple of int
        ``(h, w)`` of the feature grid.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(h, w)`` map (area averaging; a map already of that shape is returned
        as it is, in ``float64``), for ranking and weighting feature cells.
    """
    h, w = grid_hw
    if image_map.shape == (h, w):
        return np.asarray(image_map, dtype=np.float64)
    return cv2.resize(
        np.asarray(image_map, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA
    ).astype(np.float64)


@dataclass(frozen=True)
class MethodMaps:
    """One method's explanation of one image, in the forms the metrics read.

    Attributes
    ----------
    image : numpy.ndarray
        ``(H, W)`` map at image resolution (localisation, image-space faithfulness).
    grid : numpy.ndarray
        ``(h, w)`` map on the feature grid (feature-cell faithfulness).
    largest : list of Box
        The box IoU and CorLoc score (empty when the map has none).
    predicted : list of Box
        The boxes matched against the ground truth for box recall and precision.
    sweep : bool, default True
        Whether MaxBoxAccV2 sweeps thresholds of ``image`` (a map's boxes) or scores the fixed
        box ``largest`` at every threshold (a method that predicts a box, not a map).
    """

    image: np.ndarray
    grid: np.ndarray
    largest: list[Box]
    predicted: list[Box]
    sweep: bool = True


def method_maps(
    image_map: np.ndarray, grid_map: np.ndarray, threshold: float, mode: str
) -> MethodMaps:
    """A map's :class:`MethodMaps`, its boxes from :func:`~gapsvm.core.boxes.cam_to_boxes`.

    Parameters
    ----------
    image_map, grid_map : numpy.ndarray
        The map at image resolution and on the feature grid.
    threshold : float
        Box threshold as a fraction of the map's maximum, in [0, 1].
    mode : {"largest", "all"}
        ``predicted`` is the largest component's box, or one box per component.

    Returns
    -------
    MethodMaps
    """
    largest = cam_to_boxes(image_map, threshold, "largest")
    predicted = largest if mode == "largest" else cam_to_boxes(image_map, threshold, "all")
    return MethodMaps(image_map, grid_map, largest, predicted)


@dataclass(frozen=True)
class BaselineInput:
    """What a baseline may know of an image: its sizes, never its pixels.

    Attributes
    ----------
    image_hw : tuple of int
        ``(H, W)`` of the image.
    grid_hw : tuple of int
        ``(h, w)`` of the feature grid the map under test comes from.
    cell : int
        Image pixels per feature cell (the backbone's stride over the input scale).
    threshold : float
        Box threshold, as for the map under test.
    mode : {"largest", "all"}
        Box mode, as for the map under test.
    rng : numpy.random.Generator
        The randomness a baseline may use, seeded per (image, label) pair.
    """

    image_hw: tuple[int, int]
    grid_hw: tuple[int, int]
    cell: int
    threshold: float
    mode: str
    rng: np.random.Generator


def _centre(given: BaselineInput) -> MethodMaps:
    # The centre bias predicts its own box, not the thresholded Gaussian's ellipse; so a
    # threshold sweep has nothing to move (``gaussian`` is the swept map).
    box = [center_box(given.image_hw)]
    return MethodMaps(center_map(given.image_hw), center_map(given.grid_hw), box, box,
                      sweep=False)


def _gaussian(given: BaselineInput) -> MethodMaps:
    # Choe et al.'s centre-Gaussian map, boxed exactly like the map under test.
    return method_maps(
        center_map(given.image_hw), center_map(given.grid_hw), given.threshold, given.mode
    )


def _uniform(given: BaselineInput) -> MethodMaps:
    return method_maps(
        uniform_map(given.image_hw), uniform_map(given.grid_hw), given.threshold, given.mode
    )


def _random(given: BaselineInput) -> MethodMaps:
    # One noise value per CAM cell, so the blobs have the size of the map under test's.
    noise = random_map(given.image_hw, given.rng, cell=given.cell)
    return method_maps(noise, pool_to_grid(noise, given.grid_hw), given.threshold, given.mode)


#: The baselines, in table order: name -> function of a :class:`BaselineInput` giving the
#: baseline's maps and boxes. ``centre``: the centred box (:func:`center_box`; its map for the
#: map metrics is :func:`center_map`); ``uniform``: :func:`uniform_map`, whose box at every
#: threshold is the whole image; ``random``: :func:`random_map` with one value per cell;
#: ``gaussian``: Choe et al.'s centre-Gaussian map (:func:`center_map`) boxed at the threshold
#: like the map under test, and swept by MaxBoxAccV2.
BASELINES: dict[str, Callable[[BaselineInput], MethodMaps]] = {
    "centre": _centre,
    "uniform": _uniform,
    "random": _random,
    "gaussian": _gaussian,
}
