"""Input checks shared by the estimators (as scikit-learn keeps ``utils.validation``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gapsvm.core.sizes import parse_input_size


def check_images(X: Any) -> tuple[list[Any], list[str]]:
    """Turn the accepted image inputs into a list of sources and a name for each.

    Accepted: one path; a sequence of paths and/or ``uint8`` arrays of shape (h, w, 3); a
    ``uint8`` array of shape (n, h, w, 3). Returns (sources, names).

    Raises
    ------
    ValueError, TypeError
        Anything else, with what was expected.
    """
    if isinstance(X, str | os.PathLike):
        X = [X]
    if isinstance(X, np.ndarray):
        if X.dtype == object or X.dtype.kind in "US":
            X = list(X)
        else:
            if X.ndim != 4 or X.shape[-1] != 3:
                raise ValueError(
                    "image arrays must have shape (n_images, height, width, 3) (RGB); got "
                    f"{X.shape}" + ("; for one image use X[None]" if X.ndim == 3 else "")
                )
            X = list(X)
    if not isinstance(X, Sequence) and hasattr(X, "__iter__"):
        X = list(X)  # pandas Series, generators
    if not isinstance(X, Sequence):
        raise TypeError(
            f"expected image paths or uint8 RGB arrays, got {type(X).__name__}"
        )
    if len(X) == 0:
        raise ValueError("no images given (an empty list)")
    sources: list[Any] = []
    names: list[str] = []
    for i, s in enumerate(X):
        if isinstance(s, str | os.PathLike):
            sources.append(os.fspath(s))
            names.append(os.fspath(s))
        elif isinstance(s, np.ndarray):
            if s.dtype != np.uint8:
                raise ValueError(
                    f"image {i} has dtype {s.dtype}; pass uint8 RGB (0..255): float images are "
                    "ambiguous (0..1 or 0..255)"
                )
            if s.ndim != 3 or s.shape[-1] != 3:
                raise ValueError(f"image {i} has shape {s.shape}; expected (height, width, 3)")
            sources.append(s)
            names.append(f"<array {i}>")
        else:
            raise TypeError(
                f"image {i} is a {type(s).__name__}; expected a path or a uint8 RGB array"
            )
    return sources, names


def check_input_size(value: Any) -> Any:
    """Normalise ``input_size`` (see :func:`gapsvm.images.parse_input_size`)."""
    return parse_input_size(value)


def check_labels(y: Any, n_images: int) -> np.ndarray:
    """Check that there is one label per image and at least two classes."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if len(y) != n_images:
        raise ValueError(f"got {len(y)} labels for {n_images} images: one label per image")
    return y
