"""Strict JSON output: NumPy values as plain numbers, NaN and infinities as null, atomic files.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which most JSON readers reject;
gapsvm's reports mark an undefined value with ``null`` instead.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any

import numpy as np

from gapsvm.utils.atomic import atomic_write

__all__ = ["to_jsonable", "write_json"]


def to_jsonable(value: Any) -> Any:
    """Return ``value`` with every part strict JSON can hold.

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples, NumPy arrays and scalars, numbers, strings, None.

    Returns
    -------
    object
        Dict keys as text, tuples and arrays as lists, NumPy booleans and numbers as Python
        ones, and NaN or an infinity as None. Other values are returned unchanged.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as strict JSON (see :func:`to_jsonable`), atomically, UTF-8.

    Parameters
    ----------
    obj : object
        Anything :func:`to_jsonable` turns into JSON values.
    path : str or path-like
        The file; its folder is created if needed, and readers never see half of it.

    Raises
    ------
    TypeError
        A value JSON cannot hold (e.g. an arbitrary object); ``path`` is left as it was.
    """
    text = json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n"
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
