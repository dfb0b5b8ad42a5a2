"""Which class a CAM explains: one resolution of ``target`` for every command and method.

A target is a class label as the model has it, or its text (the command line and CSV files
give text, while a model's classes may be numbers): ``"3"`` finds the class ``3``. Where a
caller allows it, :data:`ALL` (the text ``"all"``) asks for every class's map of each image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ALL", "class_index", "is_all", "resolve_target", "resolve_targets"]

#: The target that asks for the maps of every class, in ``classes_`` order.
ALL = "all"


def is_all(target: Any) -> bool:
    """Whether ``target`` is :data:`ALL` (a plain string; arrays and labels of other types
    are never it)."""
    return isinstance(target, str) and target == ALL


def _check_all(classes: np.ndarray) -> None:
    # A model with a class called "all" would read target="all" two ways; refuse to guess.
    if ALL in [str(c) for c in np.asarray(classes).tolist()]:
        raise ValueError(
            f"target {ALL!r} is ambiguous: this model has a class named {ALL!r}; to draw "
            "that class, give it once per image (a list of labels)"
        )


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


def resolve_target(classes: np.ndarray, target: Any, *, allow_all: bool = False) -> Any:
    """The class label ``target`` names (None stays None: each image's prediction).

    With ``allow_all``, :data:`ALL` stays :data:`ALL` (every class); otherwise ``"all"`` is a
    label like any other, refused as unknown unless the model has that class.
    """
    if target is None:
        return None
    if allow_all and is_all(target):
        _check_all(classes)
        return ALL
    return np.asarray(classes)[class_index(classes, target)]


def resolve_targets(
    target: Any, classes: np.ndarray, predicted: np.ndarray | None, n: int
) -> np.ndarray:
    """Class indices for CAMs: None -> predicted, one label -> that class for every image,
    a sequence of n labels -> one per image, :data:`ALL` -> every class for every image.

    Parameters
    ----------
    target : None, label, sequence of labels or "all"
    classes : ndarray of shape (n_classes,)
    predicted : ndarray of shape (n,) or None
        Predicted labels, used when ``target`` is None.
    n : int
        Number of images.

    Returns
    -------
    ndarray of shape (n,), int, or (n, n_classes) for :data:`ALL`
        Row ``i`` of the latter is ``0, 1, ..., n_classes - 1``.

    Raises
    ------
    ValueError
        A label that is not in ``classes`` (the message lists them), a wrong length, or
        ``"all"`` for a model that has a class of that name.
    """
    if is_all(target):
        _check_all(classes)
        return np.tile(np.arange(len(classes)), (n, 1))
    if target is None:
        return np.array([class_index(classes, p) for p in predicted], dtype=int)
    if isinstance(target, str | bytes) or np.ndim(target) == 0:
        return np.full(n, class_index(classes, target), dtype=int)
    target = list(target)
    if len(target) != n:
        raise ValueError(f"got {len(target)} targets for {n} images: give one, or one per image")
    return np.array([class_index(classes, t) for t in target], dtype=int)
