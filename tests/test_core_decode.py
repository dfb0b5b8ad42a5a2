"""Tests for gapsvm.core.decode: decoding real files exactly as Keras/PIL do, clear errors,
the pixel limit, and resizing. The hostile-input corpus is ``test_reliability_reading.py``."""

from __future__ import annotations

import pickle
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from _corpus import bad_image_files
from PIL import Image, ImageOps

from gapsvm.core.decode import MAX_PIXELS, ImageReadError, decode_image, read_image, resize_image


def _keras_load(path) -> np.ndarray:
    import keras

    return np.asarray(keras.utils.load_img(path), dtype=np.uint8)


# ------------------------------------------------------------------ agreement with Keras/PIL


@pytest.mark.slow  # Keras' loader imports TensorFlow
@pytest.mark.parametrize(
    "rel, mode",
    [
        ("persons/train/person/crop001001a.png", "RGB"),
        ("persons/train/not_person/00000002a.png", "RGB"),
        ("smoke/chelsea.jpg", "RGB"),
        ("smoke/coffee.jpg", "RGB"),
        ("smoke/camera.jpg", "L"),
        ("smoke/horse.png", "RGBA"),
        ("smoke/logo.png", "RGBA"),
    ],
)
def test_read_image_equals_keras_load_img(shared_data: Path, rel: str, mode: str) -> None:
    path = shared_data / rel
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is the edge case this parameter claims
    ours = read_image(path)
    theirs = _keras_load(path)
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape and ours.shape[2] == 3
    # Exact for the JPEGs too: OpenCV and PIL both decode with libjpeg-turbo here, and on
    # these files they agree bit for bit (checked when this test was written; a different
    # JPEG decoder in either wheel would show up here first). Grayscale becomes three equal
    # channels and alpha is dropped, as PIL's convert("RGB") does.
    np.testing.assert_array_equal(ours, theirs)


def test_colour_order_is_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[:, :4] = (255, 0, 0)
    rgb[:, 4:8] = (0, 255, 0)
    rgb[:, 8:] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "pil.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pil.png"), rgb)
    # OpenCV writes the same pixels when handed BGR, as it expects.
    cv2.imwrite(str(tmp_path / "cv.png"), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "cv.png"), rgb)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    cv2.imwrite(str(tmp_path / "g16.png"), ramp)
    img = read_image(tmp_path / "g16.png")
    assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
    np.testing.assert_allclose(img[..., 0], ramp / 257.0, atol=0.51)
    assert img.max() == 255 and img.min() == 0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:5, :10] = (250, 10, 10)  # a red top-left corner shows where "up" went
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", quality=100, exif=exif)
    with Image.open(tmp_path / "rot.jpg") as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(tmp_path / "rot.jpg")
    assert got.shape == (40, 20, 3) == want.shape
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=3)


def test_non_ascii_and_space_path(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "persons" / "train" / "person" / "crop001001a.png"
    folder = tmp_path / "Ünïcödé folder 人物"
    folder.mkdir()
    dst = folder / "pérson crop 1.png"
    shutil.copyfile(src, dst)
    np.testing.assert_array_equal(read_image(dst), read_image(src))


# ------------------------------------------------------------------ bad files


@pytest.mark.parametrize("kind", ["empty", "text", "truncated_jpeg", "corrupt_png"])
def test_bad_file_raises_image_read_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = bad_image_files(tmp_path)[kind]
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err)
    assert err.reason  # a reason a person can act on, not an empty string
    if kind == "empty":
        assert "empty" in err.reason
    if kind == "truncated_jpeg":
        assert "truncated" in err.reason


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="No such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def test_decompression_bomb_refused_before_decoding() -> None:
    side = 20000
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageReadError, match="pixel limit") as info:
        decode_image(data, "bomb.png")
    assert info.value.path == "bomb.png"


def test_image_read_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageReadError("a b.jpg", "corrupt")))
    assert (err.path, err.reason) == ("a b.jpg", "corrupt")
    assert "a b.jpg" in str(err)


# ------------------------------------------------------------------ resizing


def test_resize_uses_area_when_shrinking_and_linear_when_growing() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    small = resize_image(img, (16, 12))
    # INTER_AREA at an integer factor is the exact block mean (rounded).
    block_mean = img.reshape(16, 4, 12, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(small, block_mean, atol=0.51)
    big = resize_image(img, (128, 96))
    np.testing.assert_array_equal(big, cv2.resize(img, (96, 128), interpolation=cv2.INTER_LINEAR))
    assert resize_image(img, (64, 48)) is img
