"""What :meth:`GapClassifier.explain <gapsvm.estimator.classifier.GapClassifier.explain>`
returns: feature-resolution CAMs with everything needed to draw and judge them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapsvm.core.decode import ImageReadError

__all__ = ["Explanation"]


@dataclass(frozen=True)
class Explanation:
    """CAMs of a batch of images, in input order.

    Attributes
    ----------
    cams : list of ndarray or None
        One float32 map of shape (h', w') per image at feature resolution, without the
        intercept (its mean plus ``intercepts[target[i]]`` is the class score); None for an
        image that could not be read.
    classes : ndarray of shape (n_classes,)
        The model's ``classes_``.
    target : ndarray of shape (n,), int
        Index into ``classes`` of the class each map explains (-1 for unreadable images).
    predicted : ndarray of shape (n,)
        Predicted label of each image (undefined for unreadable images).
    scores : ndarray of shape (n, n_classes)
        Every class's score ``W[c] . gap + b[c]``; NaN rows for unreadable images.
    intercepts : ndarray of shape (n_classes,)
        ``b``: the per-class intercepts of the (pipeline-folded) head.
    image_hw, input_hw : list of tuple of int or None
        Each image's own size and the size the network saw.
    errors : list of ImageReadError
        The unreadable images, in input order.
    """

    cams: list[np.ndarray | None]
    classes: np.ndarray
    target: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray
    intercepts: np.ndarray
    image_hw: list[tuple[int, int] | None]
    input_hw: list[tuple[int, int] | None]
    errors: list[ImageReadError] = field(default_factory=list)

    #: The keys of the dict that ``explain`` returned before gapsvm 0.2.
    _DICT_KEYS = ("cams", "target", "predicted", "scores", "intercepts", "image_hw",
                  "input_hw", "errors", "ok")

    def __getitem__(self, key: str) -> Any:
        """``explanation["cams"]`` as before gapsvm 0.2 (deprecated: use the attribute)."""
        if key not in self._DICT_KEYS:
            raise KeyError(key)
        warnings.warn(
            f"explain() returns an Explanation: use .{key} instead of [{key!r}]",
            DeprecationWarning, stacklevel=2,
        )
        return getattr(self, key)

    def __len__(self) -> int:
        return len(self.cams)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the images that were read and explained."""
        return np.array([c is not None for c in self.cams], dtype=bool)

    @property
    def target_labels(self) -> list[object]:
        """The label each map explains (None for unreadable images)."""
        return [None if t < 0 else self.classes[t] for t in self.target]

    def score(self, i: int) -> float:
        """Image ``i``'s score for the class its map explains (``mean(cam) + intercept``)."""
        return float(self.scores[i, self.target[i]])
