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
        image that could not be read. With ``target="all"`` (:attr:`all_classes`), one
        array of shape (n_classes, h', w') per image: every class's map, in ``classes``
        order.
    classes : ndarray of shape (n_classes,)
        The model's ``classes_``.
    target : ndarray of shape (n,) or (n, n_classes), int
        Index into ``classes`` of the class each map explains (-1 for unreadable images);
        with ``target="all"`` one row per image, ``0 ... n_classes - 1``.
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
    def all_classes(self) -> bool:
        """Whether each image has every class's map (``target="all"``), not one map."""
        return np.ndim(self.target) == 2

    @property
    def target_labels(self) -> list[Any]:
        """The label each map explains (None for unreadable images); with
        :attr:`all_classes`, each image's list of labels."""
        if self.all_classes:
            return [None if row[0] < 0 else list(self.classes[row]) for row in self.target]
        return [None if t < 0 else self.classes[t] for t in self.target]

    def score(self, i: int) -> float | np.ndarray:
        """Image ``i``'s score for the class its map explains (``mean(cam) + intercept``);
        with :attr:`all_classes`, the scores of every class, shape (n_classes,)."""
        if self.all_classes:
            return np.asarray(self.scores[i, self.target[i]], dtype=np.float64)
        return float(self.scores[i, self.target[i]])
