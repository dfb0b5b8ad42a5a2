"""Tests for gapsvm.core.sizes: the one input-size grammar (``HxW``, ``S``, ``xS`` / ``Sx``,
``native``, scale lists), its formatter, and the size the network is fed.

``--scale`` / ``--scales`` of ``gapsvm evaluate`` are command-line spellings of the same
settings; their parsing is in test_cli_evaluate.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapsvm.core.sizes import (
    MIN_SIDE,
    format_scales,
    format_size,
    parse_input_size,
    parse_scales,
    target_size,
)

FAST = settings(max_examples=100)  # the profile in conftest.py sets the rest

#: Sides a fixed size may have at the default MIN_SIDE (one feature cell and up).
SIDES = st.integers(MIN_SIDE // 2, 4096)
#: Scales as a user types them: up to six significant digits (what ``format_size`` keeps).
TYPED_SCALES = st.integers(1, 999_999).map(lambda n: n / 1000)


# ------------------------------------------------------------------ parse_input_size


@pytest.mark.parametrize(
    "text, want",
    [
        ("128x64", (128, 64)),
        ("224", (224, 224)),
        ("x2", 2.0),
        ("1.5x", 1.5),
        ("native", None),
        (None, None),
        ((96, 48), (96, 48)),
        (300, (300, 300)),
        (0.5, 0.5),
    ],
)
def test_parse_input_size_forms(text, want) -> None:
    got = parse_input_size(text)
    assert got == want and type(got) is type(want)
    if got is not None:
        assert parse_input_size(format_size(got)) == got  # the CLI spelling round-trips


@pytest.mark.parametrize("bad", ["abc", (10, 10), -1.0, 0.0, True, "1x2x3", (1, 2, 3)])
def test_parse_input_size_rejects(bad) -> None:
    with pytest.raises(ValueError):
        parse_input_size(bad)


@pytest.mark.parametrize(
    "text, want",
    [
        ("128X64", (128, 64)),  # case and spaces, as typed or read from a file
        (" 128 x 64 ", (128, 64)),
        ("x0.5", 0.5),
        ("2x", 2.0),
        ("1.5", 1.5),  # a bare number that is not an integer is a scale
        ("NATIVE", None),
        ("none", None),
        (np.int64(64), (64, 64)),
        (np.float32(2.0), 2.0),
        (np.array([96, 48]), (96, 48)),
        ([96, 48], (96, 48)),
    ],
)
def test_parse_input_size_spellings(text, want) -> None:
    got = parse_input_size(text)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("abc", "input size 'abc': expected HxW (e.g. 128x64), a scale like x2, or native"),
        ("1.5x2", "input size '1.5x2': expected HxW"),
        ("x", "scale 'x' is not a number (e.g. 2, x2 or 1.5x)"),
        ("128x64x", "scale '128x64x' is not a number"),
        ("x0", "scales must be positive numbers, got 'x0'"),
        ("x-2", "scales must be positive numbers, got 'x-2'"),
        ("xinf", "scales must be positive numbers, got 'xinf'"),
        ("nan", "input_size scale must be a positive number, got nan"),
        ("-3", "input_size scale must be a positive number"),
        ("12x12", "input_size (12, 12) is smaller than one feature cell; use at least 32x32"),
        ("2", "smaller than one feature cell"),  # a bare integer is a square size, not x2
        (True, "input_size must be (h, w), a scale or None, got True"),
    ],
)
def test_bad_sizes_say_what_is_wrong(bad, message) -> None:
    with pytest.raises(ValueError) as info:
        parse_input_size(bad)
    assert message in str(info.value)


def test_the_smallest_fixed_size_is_one_feature_cell_of_the_backbone() -> None:
    # min_side is the backbone's (its registry entry's); half of it is one feature cell.
    half = MIN_SIDE // 2
    assert parse_input_size((half, half)) == (half, half)
    with pytest.raises(ValueError, match=f"use at least {MIN_SIDE}x{MIN_SIDE}"):
        parse_input_size((half - 1, 400))
    with pytest.raises(ValueError, match="use at least 64x64"):
        parse_input_size("31x400", min_side=64)
    assert parse_input_size("32x400", min_side=64) == (32, 400)
    # A scale has no minimum: target_size raises the result to min_side instead.
    assert parse_input_size("x0.01", min_side=64) == 0.01


def test_default_min_side_is_the_vgg16_registry_entry() -> None:
    from gapsvm.network.backbone.registry import get_spec

    assert get_spec("vgg16").min_side == MIN_SIDE


@FAST
@given(h=SIDES, w=SIDES)
def test_fixed_sizes_round_trip_through_their_spelling(h: int, w: int) -> None:
    text = format_size((h, w))
    assert text == f"{h}x{w}"
    assert parse_input_size(text) == (h, w)


@FAST
@given(scale=TYPED_SCALES)
def test_scales_round_trip_through_their_spelling(scale: float) -> None:
    text = format_size(scale)
    assert text.startswith("x")
    assert parse_input_size(text) == scale
    assert parse_input_size(text[1:] + "x") == scale  # the "Sx" spelling reads the same


def test_format_size_spellings() -> None:
    assert format_size(None) == "native" and parse_input_size("native") is None
    assert format_size(2.0) == "x2" and format_size(0.5) == "x0.5"
    assert format_size((128, 64)) == "128x64"


# ------------------------------------------------------------------ scale lists


def test_parse_scales() -> None:
    assert parse_scales("1,2") == (1.0, 2.0)
    assert parse_scales(" x1.5 , 2, 2 ") == (1.5, 2.0)
    assert parse_scales(2) == (2.0,)
    for bad in ("", "1,a", "0", "-1", "nan"):
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_scale_lists_use_the_scale_grammar() -> None:
    # In a list (and after --scale), a bare number is a scale: "2" is what "x2" is to
    # parse_input_size, and "224" is a scale too, never a 224x224 size.
    assert parse_scales("2") == (parse_input_size("x2"),) == (2.0,)
    assert parse_scales("x1,x1.5,2x") == (1.0, 1.5, 2.0)
    assert parse_scales("224") == (224.0,)
    assert parse_scales("native") == (1.0,) == parse_scales("x1")
    assert parse_scales("native,x1,2") == (1.0, 2.0)  # duplicates go, order stays
    assert parse_scales("2,1") == (2.0, 1.0)
    assert parse_scales("1,,2,") == (1.0, 2.0)
    assert parse_scales([1, "x2", "native"]) == (1.0, 2.0)
    assert parse_scales((np.float32(0.5),)) == (0.5,)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "no scale given; use e.g. 1 or 1,2"),
        (",", "no scale given"),
        ([], "no scale given"),
        ("1,a", "scale 'a' is not a number (e.g. 2, x2 or 1.5x)"),
        ("native,x", "scale 'x' is not a number"),
        ("x0", "scales must be positive numbers, got 'x0'"),
        ("1,-1", "scales must be positive numbers, got '-1'"),
        ("inf", "scales must be positive numbers, got 'inf'"),
        ("128x64", "scale '128x64' is not a number"),  # a size is no scale
    ],
)
def test_bad_scale_lists_say_what_is_wrong(bad, message) -> None:
    with pytest.raises(ValueError) as info:
        parse_scales(bad)
    assert message in str(info.value)


@FAST
@given(scales=st.lists(TYPED_SCALES, min_size=1, max_size=5, unique=True))
def test_scale_lists_round_trip_through_their_spelling(scales: list[float]) -> None:
    text = format_scales(scales)
    assert text == ",".join(format_size(s) for s in scales)
    assert parse_scales(text) == tuple(scales)


def test_format_scales_separator() -> None:
    assert format_scales([1, 2.5]) == "x1,x2.5"
    assert format_scales((1.0, 2.0), sep=" ") == "x1 x2"


# ------------------------------------------------------------------ target_size


def test_target_size_keeps_fixed_scales_and_upscales_tiny_images() -> None:
    assert target_size((300, 451), (128, 64)) == (128, 64)
    assert target_size((128, 64), None) == (128, 64)
    assert target_size((128, 64), 2.0) == (256, 128)
    # Too small for a stride-16 cell pair: upscaled keeping the aspect ratio.
    th, tw = target_size((10, 40), None)
    assert th == MIN_SIDE and tw == 128


def test_target_size_follows_the_backbones_min_side() -> None:
    assert target_size((10, 40), None, min_side=64) == (64, 256)
    assert target_size((10, 40), 2.0) == (MIN_SIDE, 4 * MIN_SIDE)  # 20x80, then raised
    assert target_size((300, 200), 0.5) == (150, 100)  # large enough: only scaled
    assert target_size((301, 201), 0.5) == (150, 100)  # rounded to whole pixels
    assert target_size((5, 5), (16, 16), min_side=64) == (16, 16)  # a fixed size is kept


@FAST
@given(h=st.integers(1, 2000), w=st.integers(1, 2000), scale=TYPED_SCALES.filter(lambda s: s < 8))
def test_target_size_meets_min_side_and_keeps_the_aspect_ratio(h: int, w: int,
                                                                scale: float) -> None:
    th, tw = target_size((h, w), scale)
    assert min(th, tw) >= MIN_SIDE
    scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    if min(scaled) >= MIN_SIDE:
        assert (th, tw) == scaled  # nothing to raise: exactly the scaled size
    else:
        # Raised to min_side along the short side; the long side follows within rounding.
        assert min(th, tw) == MIN_SIDE
        ratio = max(scaled) / min(scaled)
        assert abs(max(th, tw) - ratio * MIN_SIDE) <= 0.5 + 1e-9
