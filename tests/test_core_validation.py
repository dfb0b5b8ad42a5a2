"""Tests for gapsvm.core.validation: the input checks every estimator shares, each failing
with a message that says what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gapsvm.core.validation import (
    check_image_hw,
    check_images,
    check_input_size,
    check_integral,
    check_labels,
    check_map,
    check_unit_interval,
)

RGB = np.zeros((6, 5, 3), np.uint8)


# ------------------------------------------------------------------ images


def test_check_images_accepts_paths_arrays_and_batches() -> None:
    assert check_images("a.png") == (["a.png"], ["a.png"])
    assert check_images(Path("d") / "a.png") == ([str(Path("d/a.png"))], [str(Path("d/a.png"))])
    other = np.ones((3, 4, 3), np.uint8)
    sources, names = check_images(["a.png", RGB, Path("b.png"), other])
    assert sources[0] == "a.png" and sources[2] == "b.png"
    assert sources[1] is RGB and sources[3] is other  # arrays as given, not copied
    assert names == ["a.png", "<array 1>", "b.png", "<array 3>"]
    batch = np.stack([RGB, RGB + 1])
    sources, names = check_images(batch)
    assert len(sources) == 2 and names == ["<array 0>", "<array 1>"]
    np.testing.assert_array_equal(sources[1], RGB + 1)
    # Any iterable: arrays of paths, generators.
    assert check_images(np.array(["a.png", "b.png"]))[1] == ["a.png", "b.png"]
    assert check_images(p for p in ("a.png", "b.png"))[1] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ([], ValueError, "no images given (an empty list)"),
        (np.zeros((0, 4, 4, 3), np.uint8), ValueError, "no images given"),
        (RGB, ValueError, "image arrays must have shape (n_images, height, width, 3) (RGB); "
         "got (6, 5, 3); for one image use X[None]"),
        (np.zeros((2, 6, 5, 4), np.uint8), ValueError, "got (2, 6, 5, 4)"),
        ([RGB.astype(np.float32)], ValueError, "image 0 has dtype float32; pass uint8 RGB"),
        (np.zeros((1, 6, 5, 3)), ValueError, "image 0 has dtype float64"),
        (["a.png", RGB[..., 0]], ValueError, "image 1 has shape (6, 5); expected (height, "
         "width, 3)"),
        (["a.png", 3], TypeError, "image 1 is a int; expected a path or a uint8 RGB array"),
        ([b"a.png"], TypeError, "image 0 is a bytes"),
        (7, TypeError, "expected image paths or uint8 RGB arrays, got int"),
    ],
)
def test_check_images_says_what_is_wrong(bad, error, message) -> None:
    with pytest.raises(error) as info:
        check_images(bad)
    assert message in str(info.value)


def test_check_input_size_is_the_size_grammar() -> None:
    assert check_input_size("128x64") == (128, 64)
    assert check_input_size(None) is None and check_input_size("x2") == 2.0
    with pytest.raises(ValueError, match="smaller than one feature cell"):
        check_input_size((8, 8))


def test_check_labels() -> None:
    y = check_labels(["a", "b", "a"], 3)
    assert isinstance(y, np.ndarray) and y.tolist() == ["a", "b", "a"]
    with pytest.raises(ValueError, match="got 2 labels for 3 images: one label per image"):
        check_labels(["a", "b"], 3)
    with pytest.raises(ValueError, match=r"labels must be one-dimensional, got shape \(3, 1\)"):
        check_labels([["a"], ["b"], ["a"]], 3)


# ------------------------------------------------------------------ numbers and shapes


@pytest.mark.parametrize("value, want", [(3, 3), (np.int16(-2), -2), (12.0, 12),
                                         (np.float32(4.0), 4)])
def test_check_integral_accepts_whole_numbers(value, want) -> None:
    got = check_integral(value, "x_min")
    assert got == want and type(got) is int


@pytest.mark.parametrize(
    "value, error, message",
    [
        (12.5, ValueError, "x_min must be an integer, got 12.5; round it explicitly"),
        (float("nan"), ValueError, "x_min must be an integer, got nan"),
        (float("inf"), ValueError, "x_min must be an integer, got inf"),
        (True, TypeError, "x_min must be an integer, got a bool"),
        (np.bool_(False), TypeError, "got a bool"),
        ("3", TypeError, "x_min must be an integer, got str"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_check_integral_refuses_the_rest(value, error, message) -> None:
    with pytest.raises(error) as info:
        check_integral(value, "x_min")
    assert message in str(info.value)


def test_check_image_hw() -> None:
    assert check_image_hw((4, 6)) == (4, 6)
    assert check_image_hw((4, 6, 3)) == (4, 6)
    assert check_image_hw(np.zeros((4, 6, 3)).shape) == (4, 6)
    assert check_image_hw([4.0, 6.0]) == (4, 6)
    with pytest.raises(ValueError, match=r"expected an image shape \(h, w\) or \(h, w, c\), "
                                         r"got \(4,\)"):
        check_image_hw((4,))
    with pytest.raises(ValueError, match=r"must be positive, got \(0, 6\)"):
        check_image_hw((0, 6))
    with pytest.raises(ValueError, match=r"image size must be an integer, got 4\.5"):
        check_image_hw((4.5, 6))


def test_check_map() -> None:
    a = np.ones((3, 4))
    assert check_map(a) is a  # a float64 map is not copied
    got = check_map([[1, 2], [3, 4]])
    assert got.dtype == np.float64 and got.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert check_map(np.eye(2, dtype=bool)).dtype == np.float64


@pytest.mark.parametrize(
    "cam, message",
    [
        (np.zeros(4), "saliency must be a 2-D map (h, w), got shape (4,)"),
        (np.zeros((1, 2, 2)), "got shape (1, 2, 2)"),
        (np.zeros((0, 3)), "saliency is empty (shape (0, 3))"),
        (np.array([[1.0, np.nan]]), "saliency contains NaN or infinite values"),
        (np.array([[1.0, -np.inf]]), "contains NaN or infinite values"),
        (np.array([["a"]]), "saliency must be a real-valued array, got dtype <U1"),
        (np.ones((2, 2), complex), "got dtype complex128"),
    ],
)
def test_check_map_names_the_map_and_the_problem(cam, message) -> None:
    with pytest.raises(ValueError) as info:
        check_map(cam, "saliency")
    assert message in str(info.value)


def test_check_unit_interval() -> None:
    for v in (0, 1, 0.5, np.float32(0.25)):
        got = check_unit_interval(v, "threshold")
        assert got == float(v) and type(got) is float
    for v in (-0.01, 1.0001, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got "):
            check_unit_interval(v, "threshold")
    for v in (True, "0.5", None):
        with pytest.raises(TypeError, match="threshold must be a real number, got "):
            check_unit_interval(v, "threshold")
