"""Tests for gapsvm.utils.jsonio: strict JSON values and the atomic writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gapsvm.utils.jsonio import to_jsonable, write_json


def test_values_become_strict_json() -> None:
    value = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True)),
        "nan": [math.nan, math.inf, -np.inf, np.float64("nan")],
        "array": np.array([[1, 2], [3, 4]]),
        "text": "é",
        "none": None,
    }
    got = to_jsonable(value)
    assert got == {"1": [0.5, 3, True], "nan": [None, None, None, None],
                   "array": [[1, 2], [3, 4]], "text": "é", "none": None}
    assert type(got["1"][1]) is int and type(got["1"][2]) is bool
    json.dumps(got, allow_nan=False)


def test_write_json_is_strict_and_atomic(tmp_path) -> None:
    path = tmp_path / "sub" / "r.json"
    write_json({"x": math.nan, "y": [np.float64(1.5)]}, path)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"x": None, "y": [1.5]} and "NaN" not in text
    # A value JSON cannot hold fails before the file is touched: the old one stays.
    with pytest.raises(TypeError):
        write_json({"x": object()}, path)
    assert json.loads(path.read_text()) == {"x": None, "y": [1.5]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left
