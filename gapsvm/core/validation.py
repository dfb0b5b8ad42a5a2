"""Input checks shared by the core and the estimators (as scikit-learn keeps
``utils.validation``): images, labels and sizes, maps, coordinates and fractions."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gapsvm.core.pixels import image_from_array
from gapsvm.core.sizes import format_size, parse_input_size


def _is_pil_image(x: Any) -> bool:
    # Duck-typed, so that PIL is not imported (nor required) to recognise its images.
    return hasattr(x, "convert") and hasattr(x, "mode") and not isinstance(x, np.ndarray)


def _refuse_table(X: Any) -> None:
    """A DataFrame iterates over its column names, which would read as missing files."""
    if hasattr(X, "columns") and hasattr(X, "shape") and not isinstance(X, np.ndarray):
        cols = [str(c) for c in list(X.columns)[:5]]
        raise TypeError(
            f"got a {type(X).__name__} (columns {', '.join(map(repr, cols))}); expected a "
            "column of image paths: pass one column, e.g. X=df["
            f"{cols[0] if cols else 'path'!r}]"
        )


def _as_list(X: Any) -> list[Any]:
    """The accepted containers (one path or image, a sequence, an (n, h, w[, c]) array, any
    iterable) as a list of items, still unchecked."""
    if isinstance(X, str | os.PathLike) or _is_pil_image(X):
        return [X]
    _refuse_table(X)
    if isinstance(X, np.ndarray) and X.dtype != object and X.dtype.kind not in "US":
        if X.ndim == 3 and X.shape[-1] in (1, 3, 4):
            return [X]  # one (h, w, c) image
        if X.ndim in (3, 4):
            return list(X)  # a batch: (n, h, w) grayscale or (n, h, w, c)
        raise ValueError(
            f"image arrays must have shape (n_images, height, width[, channels]) or (height, "
            f"width, channels); got {X.shape}"
            + ("; for one grayscale image pass [X]" if X.ndim == 2 else "")
        )
    if isinstance(X, np.ndarray) or (not isinstance(X, Sequence) and hasattr(X, "__iter__")):
        return list(X)  # arrays of paths, pandas Series, generators
    if not isinstance(X, Sequence):
        raise TypeError(
            f"expected image paths or images (arrays, PIL images), got {type(X).__name__}"
        )
    return list(X)


def _check_one(i: int, s: Any) -> tuple[Any, str]:
    """One item as (source, name): a path as its text, an image as a uint8 RGB array (an
    RGB uint8 array as given, not copied)."""
    if isinstance(s, str | os.PathLike):
        return os.fspath(s), os.fspath(s)
    if _is_pil_image(s):
        # Modes with more than 8 bits per sample are converted as files are, not clipped
        # the way PIL's own convert("RGB") does.
        deep = s.mode in ("F", "I") or s.mode.startswith("I;16")
        return image_from_array(np.asarray(s if deep else s.convert("RGB")), f"image {i}"), (
            f"<image {i}>"
        )
    if not isinstance(s, np.ndarray):
        raise TypeError(
            f"image {i} is a {type(s).__name__}; expected a path, an image array or a PIL image"
        )
    if s.size == 0:
        raise ValueError(f"image {i} has shape {s.shape}: an image needs at least one pixel")
    return image_from_array(s, f"image {i}"), f"<array {i}>"


def check_images(X: Any) -> tuple[list[Any], list[str]]:
    """Turn the accepted image inputs into a list of sources and a name for each.

    Parameters
    ----------
    X : path, image, sequence of paths and/or images, or ndarray
        One path or image; a sequence of paths and/or images; an array of shape
        (n, h, w, c) or (n, h, w). An image is an array of shape (h, w, 3) RGB, (h, w, 4)
        RGBA or (h, w) grayscale, or a PIL image (any mode); its values are read as
        :func:`gapsvm.core.pixels.image_from_array` says (floats: [0, 1] when their maximum
        is at most 1, else 0..255 as ``keras.utils.img_to_array`` gives).

    Returns
    -------
    sources : list of str or ndarray
        Paths as text, images as ``uint8`` RGB arrays (``uint8`` RGB arrays as given).
    names : list of str
        The path, or ``"<array i>"`` / ``"<image i>"``, for messages.

    Raises
    ------
    ValueError, TypeError
        Anything else, with what was expected.
    """
    items = _as_list(X)
    if len(items) == 0:
        raise ValueError("no images given (an empty "
                         + (f"array of shape {X.shape})" if isinstance(X, np.ndarray) else
                            f"{type(X).__name__})"))
    checked = [_check_one(i, s) for i, s in enumerate(items)]
    return [src for src, _ in checked], [name for _, name in checked]


def check_input_size(value: Any) -> Any:
    """Normalise ``input_size`` (see :func:`gapsvm.core.sizes.parse_input_size`)."""
    return parse_input_size(value)


_COUNTS = {2: "two", 3: "three"}


def check_labels(y: Any, n_images: int, *, min_classes: int = 1) -> np.ndarray:
    """Check that there is one label per image, and at least ``min_classes`` classes.

    Raises
    ------
    ValueError
        Not one-dimensional, not one label per image, or too few classes.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if len(y) != n_images:
        raise ValueError(f"got {len(y)} labels for {n_images} images: one label per image")
    if len(np.unique(y)) < min_classes:
        raise ValueError(
            f"need at least {_COUNTS.get(min_classes, min_classes)} classes to train a "
            "classifier, got only "
            f"{np.unique(y)!r}"
        )
    return y


def check_features_match(
    metadata: dict[str, Any], backbone: str, weights: Any, input_size: Any
) -> None:
    """Refuse features that a model with these parameters would not produce.

    Checked from names alone, without building the backbone: ``weights="imagenet"`` and
    ``weights=None`` have known names; a weights file is checked by content hash when the
    model is used or loaded.

    Parameters
    ----------
    metadata : dict
        The features' metadata (``GapFeaturizer.metadata()``, a features file's ``meta``).
    backbone, weights, input_size
        The model's parameters.

    Raises
    ------
    ValueError
        Another backbone, other named weights, or another input size; the message says
        which and what to do.
    """
    if metadata.get("backbone") != backbone:
        raise ValueError(
            f"features come from backbone {metadata.get('backbone')!r}, this model uses "
            f"{backbone!r}"
        )
    got = (metadata.get("weights") or {}).get("name")
    want = {None: "random(", "imagenet": "imagenet"}.get(weights) if isinstance(
        weights, str | None) else None
    if got is not None and want is not None and not str(got).startswith(want):
        raise ValueError(
            f"the features were computed with weights {got!r}, but this model has "
            f"weights={weights!r}; use the weights the features came from"
        )
    size = metadata.get("input_size")
    mine = format_size(check_input_size(input_size))
    if size is not None and size != mine:
        raise ValueError(
            f"the features were computed at input size {size}, but this model has "
            f"input_size {mine}; set input_size to match (change it after fitting to "
            "explain other sizes)"
        )


def check_integral(value: object, name: str) -> int:
    """Return ``value`` as a Python int; accept integers and integral floats only.

    Raises
    ------
    TypeError
        Not a real number, or a bool (``True`` as a coordinate is almost certainly a bug).
    ValueError
        A float that is not a whole number.
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, got a bool")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        # Annotation files often store integral coordinates as floats (12.0); silently
        # rounding 12.5 would hide a convention mismatch, so only exact integers pass.
        if math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{name} must be an integer, got {value!r}; round it explicitly")
    raise TypeError(f"{name} must be an integer, got {type(value).__name__}")


def check_image_hw(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(h, w)`` of an image shape ``(h, w)`` or ``(h, w, c)``.

    Raises
    ------
    ValueError
        Not two or three dimensions, or a side that is not positive.
    """
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"expected an image shape (h, w) or (h, w, c), got {shape}")
    h, w = (check_integral(v, "image size") for v in shape[:2])
    if h <= 0 or w <= 0:
        raise ValueError(f"image height and width must be positive, got {shape}")
    return h, w


def check_map(cam: Any, name: str = "cam") -> np.ndarray:
    """Return ``cam`` as a finite, non-empty 2-D ``float64`` array (not copied if it is one).

    Raises
    ------
    ValueError
        Not real-valued, not 2-D, empty, or holding NaN or infinity; ``name`` names it.
    """
    arr = np.asarray(cam)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D map (h, w), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_unit_interval(value: float, name: str) -> float:
    """Return ``value`` as a float if it is a real number in [0, 1].

    Raises
    ------
    TypeError
        Not a real number (or a bool).
    ValueError
        Outside [0, 1], or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value
