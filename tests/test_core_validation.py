"""Tests for gapsvm.core.validation: the input checks every estimator shares, each failing
with a message that says what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gapsvm.core.decode import read_image
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


class DataFrame:
    """What check_images sees of a pandas DataFrame (pandas is not a dependency): columns, a
    2-D shape, and iteration over the column names, not the rows."""

    columns = ("path", "label")
    shape = (2, 2)

    def __iter__(self):
        return iter(self.columns)


_FakeDataFrame = DataFrame


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


def test_one_image_grayscale_rgba_and_float_arrays_convert_as_files_do(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    # One (h, w, 3) image is one image, passed through as given.
    sources, names = check_images(rgb)
    assert names == ["<array 0>"] and sources[0] is rgb
    # RGBA and grayscale arrays become what the same pixels read from a PNG become.
    rgba = np.dstack([rgb, rng.integers(0, 256, (6, 5), dtype=np.uint8)])
    gray = rgb[..., 1].copy()
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    sources, _ = check_images([rgba, gray, gray[..., None]])
    np.testing.assert_array_equal(sources[0], read_image(tmp_path / "rgba.png"))
    np.testing.assert_array_equal(sources[1], read_image(tmp_path / "gray.png"))
    np.testing.assert_array_equal(sources[2], read_image(tmp_path / "gray.png"))
    assert all(s.dtype == np.uint8 and s.flags.c_contiguous for s in sources)
    # A batch of grayscale images (n, h, w) and of RGBA images (n, h, w, 4).
    assert [s.shape for s in check_images(np.stack([gray, gray]))[0]] == [(6, 5, 3)] * 2
    assert [s.shape for s in check_images(np.stack([rgba, rgba]))[0]] == [(6, 5, 3)] * 2
    # Floats in [0, 1] are scaled by 255; floats above 1 are 0..255, as Keras'
    # img_to_array gives them (np.asarray(pil_image, dtype="float32")).
    unit = rng.uniform(0, 1, (6, 5, 3))
    np.testing.assert_array_equal(
        check_images([unit])[0][0], np.floor(unit * 255 + 0.5).astype(np.uint8)
    )
    keras_like = np.asarray(Image.fromarray(rgb), dtype="float32")
    np.testing.assert_array_equal(check_images(keras_like[None])[0][0], rgb)
    # uint16 is scaled as a 16-bit file is; small integers of any type are 0..255.
    deep = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    np.testing.assert_array_equal(check_images([deep])[0][0],
                                  np.floor(deep / 257.0 + 0.5).astype(np.uint8))
    np.testing.assert_array_equal(check_images([rgb.astype(np.int64)])[0][0], rgb)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16", "F"])
def test_pil_images_convert_as_the_same_image_read_from_a_file(tmp_path: Path, mode) -> None:
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16))
        path = tmp_path / "img.png"
    elif mode == "F":
        img = Image.fromarray(rng.uniform(0, 1, (6, 5)).astype(np.float32))
        path = tmp_path / "img.tif"
    else:
        img = Image.fromarray(rgb).convert(mode)
        path = tmp_path / "img.png"
    assert img.mode == mode
    img.save(path)
    sources, names = check_images(img)  # one PIL image, without a list
    assert names == ["<image 0>"]
    np.testing.assert_array_equal(sources[0], read_image(path))
    assert check_images(["a.png", img])[1] == ["a.png", "<image 1>"]


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ([], ValueError, "no images given (an empty list)"),
        ((), ValueError, "no images given (an empty tuple)"),
        (np.zeros((0, 4, 4, 3), np.uint8), ValueError,
         "no images given (an empty array of shape (0, 4, 4, 3))"),
        (np.zeros((2, 0, 4, 3), np.uint8), ValueError,
         "image 0 has shape (0, 4, 3): an image needs at least one pixel"),
        (["a.png", np.zeros((4, 0, 3), np.uint8)], ValueError,
         "image 1 has shape (4, 0, 3): an image needs at least one pixel"),
        (RGB[..., 0], ValueError, "image arrays must have shape (n_images, height, "
         "width[, channels]) or (height, width, channels); got (6, 5); for one grayscale "
         "image pass [X]"),
        (np.zeros((2, 6, 5, 2), np.uint8), ValueError, "image 0 has shape (6, 5, 2); expected "
         "(height, width) grayscale, or (height, width, 3) RGB, or (height, width, 4) RGBA"),
        (np.zeros((1, 2, 6, 5, 3), np.uint8), ValueError, "got (1, 2, 6, 5, 3)"),
        ([np.full((2, 2, 3), np.nan)], ValueError, "image 0 holds NaN values"),
        ([np.full((2, 2, 3), 300)], ValueError, "image 0 has dtype int64 with values in "
         "300..300; expected 0..255"),
        ([np.ones((2, 2, 3), bool)], ValueError, "image 0 has dtype bool; expected uint8 RGB"),
        (["a.png", 3], TypeError, "image 1 is a int; expected a path, an image array or a PIL "
         "image"),
        ([b"a.png"], TypeError, "image 0 is a bytes"),
        (7, TypeError, "expected image paths or images (arrays, PIL images), got int"),
        (_FakeDataFrame(), TypeError, "got a DataFrame (columns 'path', 'label'); expected a "
         "column of image paths: pass one column, e.g. X=df['path']"),
    ],
)
def test_check_images_says_what_is_wrong(bad, error, message) -> None:
    with pytest.raises(error) as info:
        check_images(bad)
    assert message in str(info.value)


def test_check_input_size_is_the_size_grammar() -> None:
    assert check_input_size("128x64") == (128, 64)
    assert check_input_size(None) is None and check_input_size("x2") == 2.0
    with pytest.raises(ValueError, match="use at least 32x32"):
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
