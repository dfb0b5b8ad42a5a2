"""Tests for gapsvm.core.sizes: the one input-size grammar (``HxW``, ``S``, ``xS`` / ``Sx``,
``native``, scale lists), its formatter, and the size the network is fed (bounded below by the
backbone's minimum side and above by ``MAX_INPUT_PIXELS``).

``--scale`` / ``--scales`` of ``gapsvm evaluate`` are command-line spellings of the same
settings; their parsing is in test_cli_evaluate.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gapsvm.core.decode import ImageReadError
from gapsvm.core.sizes import (
    GRAMMAR,
    MAX_INPUT_PIXELS,
    MIN_SIDE,
    downscale_note,
    format_scales,
    format_size,
    parse_input_size,
    parse_scales,
    target_size,
)

FAST = settings(max_examples=100)  # the profile in conftest.py sets the rest

#: Sides a fixed size may have at the default MIN_SIDE, within the pixel bound.
SIDES = st.integers(MIN_SIDE, 1400)
#: Scales as a user types them.
TYPED_SCALES = st.integers(1, 999_999).map(lambda n: n / 1000)
#: Any positive finite scale, with every digit a float holds.
ANY_SCALES = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False,
                       allow_infinity=False)


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
        ("abc", f"input size 'abc' is not one of: {GRAMMAR}"),
        ("1.5x2", f"input size '1.5x2' is not one of: {GRAMMAR}"),
        ("x", "input size 'x': scale 'x' is not a number (e.g. 2, x2 or 1.5x); use one of: "
              f"{GRAMMAR}"),
        ("128x64x", "scale '128x64x' is not a number"),
        ("x0", "scales must be positive numbers, got 'x0'"),
        ("x-2", "scales must be positive numbers, got 'x-2'"),
        ("xinf", "scales must be positive numbers, got 'xinf'"),
        ("nan", f"input size 'nan' is not one of: {GRAMMAR}"),
        ("-3", f"input size '-3' is not one of: {GRAMMAR}"),
        ("", f"input size is empty; use one of: {GRAMMAR}"),
        ("12x12", "input size 12x12 is smaller than the backbone's minimum side of 32 pixels; "
                  "use at least 32x32"),
        # A bare whole number is a square size, never a scale: "2" is 2x2, with a hint.
        ("2", "input size 2x2 is smaller than the backbone's minimum side of 32 pixels; use "
              "at least 32x32 (a bare number is a square; for a scale write x2)"),
        # A bare decimal is neither: refused with the spelling of the scale it may mean.
        ("1.5", f"input size '1.5' is not one of: {GRAMMAR}; for a scale write x1.5"),
        # A comma is no size separator: refused with the spelling that is.
        ("128,64", f"input size '128,64' is not one of: {GRAMMAR}; for a height and width "
                   "write 128x64"),
        (" 128 , 64 ", "for a height and width write 128x64"),
        ("100000x100000", "input size 100000x100000 is 10,000,000,000 pixels, over the "
                          f"{MAX_INPUT_PIXELS:,}-pixel bound on the network input"),
        ("100000", "is 10,000,000,000 pixels, over the"),
        (True, "input_size must be (h, w), a scale or None, got True"),
        ((True, 64), "input_size must be (height, width)"),
        ((96.5, 48), "input_size must be (height, width)"),  # refused, not truncated to 96
    ],
)
def test_bad_sizes_say_what_is_wrong(bad, message) -> None:
    with pytest.raises(ValueError) as info:
        parse_input_size(bad)
    assert message in str(info.value)


def test_the_smallest_fixed_size_is_the_backbones_min_side() -> None:
    # min_side is the backbone's (its registry entry's); the message and the check agree.
    assert parse_input_size((MIN_SIDE, MIN_SIDE)) == (MIN_SIDE, MIN_SIDE)
    for bad in ((MIN_SIDE - 1, 400), (400, MIN_SIDE - 1), (MIN_SIDE // 2, MIN_SIDE // 2)):
        with pytest.raises(ValueError, match=f"use at least {MIN_SIDE}x{MIN_SIDE}"):
            parse_input_size(bad)
    with pytest.raises(ValueError, match="use at least 64x64"):
        parse_input_size("63x400", min_side=64)
    assert parse_input_size("64x400", min_side=64) == (64, 400)
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
    # Every digit is kept: two scales never share a spelling (and so a cache key), and a
    # features file's input size reads back as the very scale it was computed at.
    assert format_size(1.2345678) == "x1.2345678"
    assert format_size(1.2345678) != format_size(1.2345679)
    assert parse_input_size(format_size(1.2345678)) == 1.2345678
    assert format_size(np.float64(0.25)) == "x0.25"


@FAST
@given(scale=ANY_SCALES)
def test_every_scale_round_trips_exactly(scale: float) -> None:
    assert parse_input_size(format_size(scale)) == scale
    assert parse_scales(format_scales([scale])) == (scale,)


def test_the_bound_on_fixed_sizes() -> None:
    side = int(MAX_INPUT_PIXELS**0.5)
    assert parse_input_size((side, side)) == (side, side)
    with pytest.raises(ValueError, match="over the"):
        parse_input_size((side + 1, side + 1))
    # max_pixels is a parameter: None lifts the bound, a number sets it.
    assert parse_input_size("4000x3000", max_pixels=None) == (4000, 3000)
    with pytest.raises(ValueError, match="over the 1,000-pixel bound"):
        parse_input_size((32, 40), max_pixels=1000)


# ------------------------------------------------------------------ scale lists


def test_parse_scales() -> None:
    assert parse_scales("1,2") == (1.0, 2.0)
    assert parse_scales(" x1.5 , 2, 2 ") == (1.5, 2.0)
    assert parse_scales(2) == (2.0,)
    for bad in ("", "1,a", "0", "-1", "nan"):
        with pytest.raises(ValueError):
            parse_scales(bad)


@pytest.mark.parametrize("bad", [True, False, [True], (1.0, np.True_)])
def test_booleans_are_no_scales_or_sizes(bad) -> None:
    # True is 1 to Python, but whoever passes it did not mean scale 1 (nor a 1x1 size).
    with pytest.raises(ValueError):
        parse_scales(bad)
    with pytest.raises(ValueError):
        parse_input_size(bad)


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
    assert target_size((0, 0), None) == (MIN_SIDE, MIN_SIDE)  # a header's guess of nothing
    assert target_size((0, 100), 1.0) == (MIN_SIDE, 100 * MIN_SIDE)  # as if one pixel high


@FAST
@given(h=st.integers(1, 5000), w=st.integers(1, 5000), scale=TYPED_SCALES.filter(lambda s: s < 8))
@example(h=2, w=2609, scale=0.749)  # 1.5 x 1954 once rounded to 1 x 1954 and was refused
def test_target_size_meets_min_side_and_the_bound_and_keeps_the_aspect_ratio(
    h: int, w: int, scale: float
) -> None:
    try:
        th, tw = target_size((h, w), scale)
    except ImageReadError as exc:
        # Refused only when no size has both the minimum side and at most the bound.
        assert max(h, w) / min(h, w) > 0.99 * MAX_INPUT_PIXELS / MIN_SIDE**2
        assert "extreme aspect ratio" in exc.reason
        return
    assert min(th, tw) >= MIN_SIDE and th * tw <= MAX_INPUT_PIXELS
    scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    if (h * scale) * (w * scale) > MAX_INPUT_PIXELS:
        # Downscaled to fit: the bound is nearly filled, the aspect ratio kept within a pixel.
        assert th * tw > 0.99 * MAX_INPUT_PIXELS
        assert abs(tw - th * w / h) <= 1 + w / h
    elif min(scaled) >= MIN_SIDE:
        assert (th, tw) == scaled  # nothing to raise: exactly the scaled size
    else:
        # Raised to min_side along the short side; the long side keeps the image's own
        # aspect ratio within rounding (not that of the rounded scaled size).
        assert min(th, tw) == MIN_SIDE
        ratio = max(h, w) / min(h, w)
        assert abs(max(th, tw) - ratio * MIN_SIDE) <= 0.5 + 1e-9


def test_large_photos_are_downscaled_to_the_bound_keeping_their_aspect() -> None:
    th, tw = target_size((3000, 4000), None)
    assert (th, tw) == (1224, 1632)  # 4:3, floor(3000 * sqrt(2e6 / 12e6)) and so on
    assert th * tw <= MAX_INPUT_PIXELS
    assert target_size((3000, 4000), 2.0) == (1224, 1632)  # a scale is bounded the same way
    assert target_size((750, 1000), None) == (750, 1000)  # under the bound: untouched
    assert target_size((3000, 4000), None, max_pixels=None) == (3000, 4000)
    assert target_size((300, 400), None, max_pixels=12_000) == (94, 126)
    # An absurd scale is bounded too, without overflowing on the way.
    assert target_size((10, 10), 1e300) == (1414, 1414)
    assert target_size((3000, 4000), (128, 64)) == (128, 64)  # a fixed size is what was asked


@pytest.mark.parametrize("hw", [(1, 20000), (20000, 1), (10, 40000)])
def test_extreme_aspect_ratios_are_refused_naming_the_file(hw) -> None:
    # A 1x20000 strip would otherwise be stretched to 32x640000: 20 M pixels, an OOM kill.
    with pytest.raises(ImageReadError) as info:
        target_size(hw, None, name="strip.png")
    assert info.value.path == "strip.png"
    assert "extreme aspect ratio" in info.value.reason
    assert "crop it" in info.value.reason
    # The same strip is fine where it fits: a looser bound, or a fixed size.
    assert min(target_size(hw, None, max_pixels=None)) == MIN_SIDE
    assert target_size(hw, (64, 64), name="strip.png") == (64, 64)


def test_the_most_elongated_image_that_fits_is_kept() -> None:
    long = MAX_INPUT_PIXELS // MIN_SIDE  # 32 x 62500 fills the bound exactly
    assert target_size((MIN_SIDE, long), None) == (MIN_SIDE, long)
    with pytest.raises(ImageReadError):
        target_size((MIN_SIDE, long + 1), None)
    # A thin strip is raised to the minimum side while that stays within the bound.
    ratio = MAX_INPUT_PIXELS // MIN_SIDE**2
    assert target_size((1, ratio), None) == (MIN_SIDE, MIN_SIDE * ratio)
    with pytest.raises(ImageReadError):
        target_size((1, ratio + 1), None)


def test_downscale_note_says_when_an_image_was_fitted_to_the_bound() -> None:
    note = downscale_note((3000, 4000), (1224, 1632), None)
    assert note == ("downscaled from 4000x3000 to 1632x1224 pixels to fit the "
                    f"{MAX_INPUT_PIXELS:,}-pixel bound on the network input")
    assert "from 8000x6000" in downscale_note((3000, 4000), (1224, 1632), 2.0)
    assert downscale_note((320, 640), (320, 640), None) is None
    assert downscale_note((301, 201), (150, 100), 0.5) is None  # rounding is no downscale
    assert downscale_note((10, 40), (32, 128), None) is None  # raised, not lowered
    assert downscale_note((3000, 4000), (128, 64), (128, 64)) is None  # asked for
    # A record computed before the bound existed (full size, from a cache) is no downscale.
    assert downscale_note((3000, 4000), (3000, 4000), None) is None


@pytest.mark.parametrize("command", ["features", "predict", "cam", "report"])
def test_every_input_size_option_documents_the_grammar(capsys, command) -> None:
    from _helpers import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, command, "--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--input-size" in text and GRAMMAR in text


@pytest.mark.parametrize(
    "text, message",
    [("100000x100000", "input size 100000x100000 is 10,000,000,000 pixels, over the"),
     ("128,64", "for a height and width write 128x64"),
     ("1.5", "for a scale write x1.5"),
     ("16x16", "use at least 32x32")],
)
def test_bad_input_sizes_are_one_line_usage_errors(capsys, tmp_path, text, message) -> None:
    from _helpers import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "features", tmp_path, "--input-size", text)
    assert exc.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("gapsvm features: error: argument --input-size: ") and message in last
