"""Class activation maps: the pure-numpy math (no TensorFlow here).

A linear head on GAP features scores class ``c`` as ``s_c = W[c] . mean_xy f(x, y) + b[c]``.
Because the mean is linear, ``s_c = mean_xy (W[c] . f(x, y)) + b[c]``: the class activation
map ``cam_c(x, y) = sum_k W[c, k] f_k(x, y)`` (Zhou et al., CVPR 2016) distributes the score
over the image exactly, and its spatial mean plus the intercept *is* the decision function.
gapsvm keeps that identity true and tested; CAMs here never include the intercept.

Binary heads have one weight row ``w`` (scikit-learn's convention: positive scores mean
``classes_[1]``). Class 1 uses ``+w`` and class 0 ``-w``, with intercepts ``+b`` and ``-b``,
so every class, in every head, has a row in :func:`class_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

__all__ = [
    "INTERPOLATIONS",
    "NORMALIZATIONS",
    "class_activation_map",
    "class_weights",
    "fuse_cams",
    "normalize_cam",
    "upsample_cam",
]


def class_weights(
    coef: np.ndarray, intercept: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One weight row and intercept per class, expanding binary heads to ``[-w, +w]``.

    Parameters
    ----------
    coef : ndarray of shape (n_rows, n_features)
        The head's (effective) ``coef_``; one row for a binary head.
    intercept : ndarray of shape (n_rows,)
    n_classes : int

    Returns
    -------
    W : ndarray of shape (n_classes, n_features), float64
    b : ndarray of shape (n_classes,), float64
    """
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    if n_classes == 2 and coef.shape[0] == 1:
        return np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    if coef.shape[0] != n_classes or intercept.shape[0] != n_classes:
        raise ValueError(
            f"{coef.shape[0]} weight rows and {intercept.shape[0]} intercepts for {n_classes} "
            "classes"
        )
    return coef, intercept


def class_activation_map(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``cam[y, x] = sum_k weights[k] * maps[y, x, k]`` (without the intercept).

    Parameters
    ----------
    maps : ndarray of shape (h, w, k) or (n, h, w, k)
        Feature maps (any float dtype; float16 maps are accumulated in float32 or better).
    weights : ndarray of shape (k,) or (n, k)
        One row per map when ``maps`` is a batch.

    Returns
    -------
    ndarray of shape (h, w) or (n, h, w), float32
        Its spatial mean plus the class intercept equals the head's decision value.
    """
    maps = np.asarray(maps)
    weights = np.asarray(weights, dtype=np.float64)
    if maps.shape[-1] != weights.shape[-1]:
        raise ValueError(
            f"maps have {maps.shape[-1]} channels but the weights have {weights.shape[-1]}"
        )
    if maps.ndim == 3 and weights.ndim == 1:
        out = np.tensordot(maps.astype(np.float64, copy=False), weights, axes=([2], [0]))
    elif maps.ndim == 4 and weights.ndim == 2 and len(weights) == len(maps):
        out = np.einsum("nhwk,nk->nhw", maps.astype(np.float64, copy=False), weights)
    else:
        raise ValueError(f"cannot combine maps {maps.shape} with weights {weights.shape}")
    return out.astype(np.float32)


#: Upsampling interpolations by name, as OpenCV flags. ``bilinear`` is the default everywhere;
#: ``bicubic`` overshoots a little near sharp peaks (its kernel has negative lobes), so a
#: bicubic map may leave the range of its feature-resolution values. A new one is one entry.
INTERPOLATIONS: dict[str, int] = {
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}


def _interpolation_flag(interpolation: str) -> int:
    try:
        return INTERPOLATIONS[interpolation]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown interpolation {interpolation!r}; known: {', '.join(INTERPOLATIONS)}"
        ) from None


def upsample_cam(
    cam: np.ndarray, size_hw: tuple[int, int], interpolation: str = "bilinear"
) -> np.ndarray:
    """Upsample a 2-D map to ``size_hw`` (height, width).

    OpenCV's resize uses half-pixel centres: feature cell ``i`` of a stride-16 map lands at
    pixel ``16 i + 7.5``, the centre of the block it summarises.

    Parameters
    ----------
    cam : ndarray of shape (h, w)
    size_hw : tuple of int
        (height, width) of the result.
    interpolation : str, default="bilinear"
        A key of :data:`INTERPOLATIONS`: ``"bilinear"`` or ``"bicubic"``.

    Returns
    -------
    ndarray of shape size_hw, float32
        A copy of ``cam`` when it already has that size.

    Raises
    ------
    ValueError
        Not a 2-D map, a size under 1, or an unknown ``interpolation`` (the message lists
        the known ones).
    """
    flag = _interpolation_flag(interpolation)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {cam.shape}")
    h, w = int(size_hw[0]), int(size_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"target size must be positive, got {size_hw}")
    if cam.shape == (h, w):
        return cam.copy()
    return cv2.resize(cam, (w, h), interpolation=flag)


def fuse_cams(
    cams: Sequence[np.ndarray], size_hw: tuple[int, int], interpolation: str = "bilinear"
) -> np.ndarray:
    """One map from the CAMs of several network inputs: each upsampled, then their mean.

    Parameters
    ----------
    cams : sequence of ndarray
        2-D maps of one image and one class, one per network input (scale or size).
    size_hw : tuple of int
        (height, width) of the image.
    interpolation : str, default="bilinear"
        How each map is upsampled: a key of :data:`INTERPOLATIONS`.

    Returns
    -------
    ndarray of shape size_hw
        The mean of :func:`upsample_cam` of every map, in their dtype.
    """
    return np.mean([upsample_cam(c, size_hw, interpolation) for c in cams], axis=0)


def _minmax(cam: np.ndarray) -> np.ndarray:
    lo = cam.min(axis=(-2, -1), keepdims=True)
    span = cam.max(axis=(-2, -1), keepdims=True) - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (cam - lo) / np.where(span > 0, span, 1), 0.0)
    return out


def _positive(cam: np.ndarray) -> np.ndarray:
    pos = np.maximum(cam, 0.0)
    peak = pos.max(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(peak > 0, pos / np.where(peak > 0, peak, 1), 0.0)


#: Display normalisations, each mapping a map (or a batch of maps, per map) into [0, 1].
#: ``minmax`` shows where the evidence is highest *relative to the rest of the image*, as
#: the CAM paper draws it; ``positive`` keeps zero as zero, so negative evidence shows as
#: none (the weights of masked inputs in the faithfulness metrics). A new one is one entry.
NORMALIZATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "minmax": _minmax,
    "positive": _positive,
}


def normalize_cam(cam: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Scale one map (or each map of a batch) into [0, 1] for display or masking.

    Parameters
    ----------
    cam : ndarray of shape (h, w) or (n, h, w)
    method : str, default="minmax"
        A key of :data:`NORMALIZATIONS`: ``"minmax"`` (a constant map becomes 0) or
        ``"positive"`` (the positive part over its maximum; an all-negative map becomes 0).

    Returns
    -------
    ndarray of the same shape, float32, values in [0, 1]

    Raises
    ------
    ValueError
        An unknown ``method``; the message lists the known ones.
    """
    try:
        fn = NORMALIZATIONS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown normalisation {method!r}; known: {', '.join(NORMALIZATIONS)}"
        ) from None
    out = fn(np.asarray(cam, dtype=np.float32))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
