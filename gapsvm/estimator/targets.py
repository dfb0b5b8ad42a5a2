"""Which class a CAM explains: one resolution of ``target`` for every command and method.

A target is a class label as the model has it, or its text (the command line and CSV files
give text, while a model's classes may be numbers): ``"3"`` finds the class ``3``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_index", "resolve_target", "resolve_targets"]


def class_index(classes: np.ndarray, label: Any) -> int:
    """Position of ``label`` in ``classes``, matched by value, else by its text.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
        A fitted model's ``classes_``.
    label : object
        A class label, or its text.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``label`` is not a class; the message lists the model's classes.
    """
    key = label.item() if isinstance(label, np.generic) else label
    values = np.asarray(classes).tolist()
    if key in values:
        return values.index(key)
    names = [str(c) for c in values]
    if str(key) in names:
        return names.index(str(key))
    raise ValueError(f"unknown target class {label!r}; the model's classes are {names}")


def resolve_target(classes: np.ndarray, target: Any) -> Any:
    """The class label ``target`` names (None stays None: each image's prediction)."""
    return None if target is None else np.asarray(classes)[class_index(classes, target)]


def resolve_targets(
    target: Any, classes: np.ndarray, predicted: np.ndarray | None, n: int
) -> np.ndarray:
    """Class indices for CAMs: None -> predicted, one label -> that class for every image,
    a sequence of n labels -> one per image.

    Parameters
    ----------
    target : None, label or sequence of labels
    classes : ndarray of shape (n_classes,)
    predicted : ndarray of shape (n,) or None
        Predicted labels, used when ``target`` is None.
    n : int
        Number of images.

    Returns
    -------
    ndarray of shape (n,), int

    Raises
    ------
    ValueError
        A label that is not in ``classes`` (the message lists them), or a wrong length.
    """
    if target is None:
        return np.array([class_index(classes, p) for p in predicted], dtype=int)
    if isinstance(target, str | bytes) or np.ndim(target) == 0:
        return np.full(n, class_index(classes, target), dtype=int)
    target = list(target)
    if len(target) != n:
        raise ValueError(f"got {len(target)} targets for {n} images: give one, or one per image")
    return np.array([class_index(classes, t) for t in target], dtype=int)
