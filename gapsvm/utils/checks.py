"""Argument checks every layer shares, so one mistake reads the same wherever it is made."""

from __future__ import annotations

import numbers
from collections.abc import Collection
from typing import Any

__all__ = [
    "check_choice",
    "check_folds",
    "check_int",
]


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise when it is not an integer of at least ``minimum``.

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message.
    minimum : int, default=1

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Not an integer (booleans included: ``True`` is no count), or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; otherwise raise, listing them.

    Raises
    ------
    ValueError
        ``value`` is not in ``choices``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_folds(cv: Any) -> int:
    """The number of cross-validation folds, checked: 0 skips cross-validation.

    Raises
    ------
    ValueError
        Not a whole number, negative, or 1 (one fold leaves nothing to train on).
    """
    if isinstance(cv, bool) or not isinstance(cv, numbers.Integral):
        raise ValueError(f"folds must be a whole number, got {cv!r}")
    if cv < 0 or cv == 1:
        raise ValueError(f"{cv} folds: give 0 to skip cross-validation, or 2 or more")
    return int(cv)
