"""Tests for gapsvm.utils.checks: one wording for a bad count or a bad choice, wherever it is
made."""

from __future__ import annotations

import numpy as np
import pytest

from gapsvm.utils.checks import check_choice, check_int


def test_check_int_accepts_integers_from_the_minimum() -> None:
    assert check_int(1, "workers") == 1
    assert check_int(0, "steps", minimum=0) == 0
    got = check_int(np.int64(7), "batch_size")
    assert got == 7 and type(got) is int


@pytest.mark.parametrize(
    "value, minimum, message",
    [
        (0, 1, "workers must be a positive integer, got 0"),
        (-1, 0, "workers must be a non-negative integer, got -1"),
        (2, 3, "workers must be an integer >= 3, got 2"),
        (True, 1, "workers must be a positive integer, got True"),  # True is no count
        (2.0, 1, "workers must be a positive integer, got 2.0"),
        ("4", 1, "workers must be a positive integer, got '4'"),
        (None, 1, "workers must be a positive integer, got None"),
    ],
)
def test_check_int_refuses_the_rest(value, minimum, message) -> None:
    with pytest.raises(ValueError) as info:
        check_int(value, "workers", minimum=minimum)
    assert str(info.value) == message


def test_check_choice() -> None:
    assert check_choice("all", "mode", ("largest", "all")) == "all"
    with pytest.raises(ValueError) as info:
        check_choice("biggest", "mode", ["largest", "all"])
    assert str(info.value) == "mode must be one of ('largest', 'all'), got 'biggest'"
