"""Tests for gapsvm.core.decode: decoding real files exactly as Keras/PIL do, clear errors,
the pixel limit, and resizing. The hostile-input corpus is ``test_reliability_reading.py``."""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from _corpus import bad_image_files, encode, garbled_jpeg, smooth_image
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


# ------------------------------------------------------------------ pixel values keep their meaning


def _float_tiff(rgb: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".tiff", rgb[..., ::-1] if rgb.ndim == 3 else rgb)  # OpenCV: BGR
    assert ok
    return enc.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_tiff_values_are_intensities_in_0_1_not_stretched(dtype) -> None:
    # A constant mid-grey image stays mid-grey (a min-max stretch made it black).
    flat = decode_image(_float_tiff(np.full((6, 8, 3), 0.5, dtype)), "flat.tif")
    assert flat.dtype == np.uint8 and flat.shape == (6, 8, 3)
    assert (flat == 128).all()
    # Values outside [0, 1] are clipped, never rescaled: the rest keep their values.
    rng = np.random.default_rng(3)
    vals = rng.uniform(-0.5, 1.5, (6, 8, 3)).astype(dtype)
    want = np.floor(np.clip(vals, 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(_float_tiff(vals), "v.tif"), want)
    # Single-channel float TIFFs (which OpenCV's colour conversion refuses) read too.
    gray = rng.uniform(0, 1, (5, 7)).astype(dtype)
    np.testing.assert_array_equal(
        decode_image(_float_tiff(gray), "g.tif"),
        np.dstack([np.floor(gray * 255 + 0.5).astype(np.uint8)] * 3),
    )


def test_float_tiff_with_a_nan_pixel_is_a_named_error() -> None:
    img = np.full((6, 8, 3), 0.5, np.float32)
    img[2, 3, 1] = np.nan
    with pytest.raises(ImageReadError, match="floating-point image holds NaN pixels") as info:
        decode_image(_float_tiff(img), "nan.tif")
    assert info.value.path == "nan.tif"


def _pnm(magic: str, samples: np.ndarray, maxval: int) -> bytes:
    h, w = samples.shape[:2]
    header = f"{magic}\n# written by hand\n{w} {h}\n{maxval}\n".encode()
    if magic in ("P2", "P3"):
        return header + " ".join(str(v) for v in samples.ravel()).encode() + b"\n"
    return header + samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()


@pytest.mark.parametrize("maxval", [1, 100, 255, 1000, 4095, 65535])
@pytest.mark.parametrize("magic", ["P2", "P3", "P5", "P6"])
def test_pgm_ppm_samples_are_scaled_by_the_files_own_maxval(magic: str, maxval: int) -> None:
    rng = np.random.default_rng(maxval)
    shape = (5, 6, 3) if magic in ("P3", "P6") else (5, 6)
    samples = rng.integers(0, maxval + 1, shape)
    samples.flat[0], samples.flat[1] = 0, maxval  # both ends of the range
    got = decode_image(_pnm(magic, samples, maxval), f"x.{magic}")
    # Round half up of v * 255 / maxval, computed exactly in integers.
    want = ((samples * 510 + maxval) // (2 * maxval)).astype(np.uint8)
    want = want if want.ndim == 3 else np.dstack([want] * 3)
    # OpenCV scales ASCII files with a maximum under 255 itself, rounding down.
    atol = 1 if magic in ("P2", "P3") and maxval < 255 else 0
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=atol, rtol=0)
    assert got.max() == 255  # full scale is white whatever the file's maximum


# ------------------------------------------------------------------ corrupt JPEG data


def test_jpeg_with_corrupt_compressed_data_is_a_named_error(tmp_path: Path, capfd) -> None:
    path = tmp_path / "garbled photo.jpg"
    path.write_bytes(garbled_jpeg(np.random.default_rng(8)))
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.path == str(path)
    assert info.value.reason.startswith("not a decodable image (corrupt JPEG data; libjpeg: ")
    # libjpeg's own line, naming no file, no longer reaches stderr: the error replaces it.
    assert "Corrupt JPEG data" not in capfd.readouterr().err
    # The same JPEG before it was damaged reads fine.
    good = encode(smooth_image(np.random.default_rng(8), 96, 128), "JPEG", quality=90)
    assert decode_image(good, "good.jpg").shape == (96, 128, 3)


def test_corrupt_jpeg_warnings_go_to_the_right_file_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    bad = [garbled_jpeg(np.random.default_rng(8)), garbled_jpeg(np.random.default_rng(9))]
    good = [encode(smooth_image(rng, 96, 128), "JPEG", quality=90) for _ in range(2)]
    jobs = [(f"bad{i}", b) for i, b in enumerate(bad)] + [(f"good{i}", g) for i, g in
                                                          enumerate(good)]
    jobs *= 25

    def outcome(job: tuple[str, bytes]) -> str:
        try:
            decode_image(job[1], job[0])
            return "ok"
        except ImageReadError as exc:
            return exc.path

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(outcome, jobs))
    assert got == [name if name.startswith("bad") else "ok" for name, _ in jobs]


def test_other_output_on_stderr_during_a_decode_is_kept(capfd) -> None:
    from gapsvm.core._fd2 import call_capturing_fd2

    def noisy() -> int:
        os.write(2, b"another thread's line\nCorrupt JPEG data: bad Huffman code\n")
        return 7

    result, kept = call_capturing_fd2(noisy, lambda line: line.startswith("Corrupt"))
    assert (result, kept) == (7, ["Corrupt JPEG data: bad Huffman code"])
    assert capfd.readouterr().err == "another thread's line\n"

    def fails() -> None:
        os.write(2, b"Corrupt JPEG data: from a call that raised\n")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        call_capturing_fd2(fails, lambda line: True)
    assert "from a call that raised" in capfd.readouterr().err  # replayed, not swallowed
    assert call_capturing_fd2(lambda: None, lambda line: True) == (None, [])  # nothing stale


# ------------------------------------------------------------------ other endings and formats


def test_jfif_jpe_and_jpeg2000_files_are_read(tmp_path: Path) -> None:
    img = smooth_image(np.random.default_rng(4), 40, 48)
    jpeg = encode(img, "JPEG", quality=95)
    for name in ("a.jfif", "a.jpe"):
        (tmp_path / name).write_bytes(jpeg)
        np.testing.assert_array_equal(read_image(tmp_path / name), decode_image(jpeg))
    (tmp_path / "a.jp2").write_bytes(encode(img, "JPEG2000", irreversible=False))  # lossless
    np.testing.assert_array_equal(read_image(tmp_path / "a.jp2"), img)


def test_exr_read_directly_says_it_is_unsupported(tmp_path: Path) -> None:
    (tmp_path / "hdr.exr").write_bytes(b"v/1\x01\x02\x00\x00\x00" + bytes(120))
    with pytest.raises(ImageReadError, match=r"unsupported format \(OpenEXR\)"):
        read_image(tmp_path / "hdr.exr")


# -- the decompression-bomb guard counts bytes, not pixels (MEMORY helper) -----------------
def _png_header(side: int, depth: int, colour: int) -> bytes:
    """A PNG that is all header: the guard must answer from it alone."""
    ihdr = struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


@pytest.mark.parametrize(
    "data",
    [
        _png_header(16000, 16, 2),  # 16-bit RGB: 6 bytes a pixel once decoded
        _png_header(16000, 16, 0),  # 16-bit grey: decoded to 16-bit RGB all the same
        b"P6\n16000 16000\n65535\n",  # a 16-bit PPM
    ],
    ids=["png16 rgb", "png16 grey", "ppm16"],
)
def test_sixteen_bit_images_are_held_to_the_same_memory_as_eight_bit(data: bytes) -> None:
    # 16000x16000 is under MAX_PIXELS, so an 8-bit image passes; at 16 bits the decoded
    # image takes twice the bytes, which is over the budget (it was OOM-killed before).
    assert 16000 * 16000 <= MAX_PIXELS
    with pytest.raises(ImageReadError) as info:
        decode_image(data, "deep.png")
    assert info.value.path == "deep.png"
    assert info.value.reason.startswith(
        f"image is 16000x16000 pixels, over the {MAX_PIXELS // 2:,}-pixel limit for 16-bit"
    ), info.value.reason
    assert "1.4 GiB" in info.value.reason
    # The same header at 8 bits is within the budget: refused later, for what it is.
    with pytest.raises(ImageReadError) as info:
        decode_image(_png_header(16000, 8, 2), "flat.png")
    assert "limit" not in info.value.reason


def test_sixteen_bit_samples_round_to_the_nearest_eight_bit_value() -> None:
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    bgr = np.dstack([v, v[::-1], v.T])
    img = decode_image(cv2.imencode(".png", bgr)[1].tobytes())
    want = (bgr.astype(np.int64) * 2 + 257) // 514  # round(v / 257), in integers
    assert img.dtype == np.uint8 and np.array_equal(img, want[..., ::-1])


def test_sixteen_bit_decoding_makes_no_float_copy() -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    data = cv2.imencode(".png", rng.integers(0, 65536, (500, 800, 3), dtype=np.uint16))[1]
    data, n = data.tobytes(), 500 * 800
    tracemalloc.start()  # NumPy (and OpenCV's arrays, which NumPy allocates) report here
    try:
        decode_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The 16-bit decode (6 bytes a pixel) and 8-bit RGB (3) are needed; a float32 copy
    # would add 12 more.
    assert peak < 11 * n, f"{peak / n:.1f} bytes per pixel"


# ------------------------------------------------------------------ reduced-scale JPEG decoding


def test_large_jpegs_decode_at_reduced_scale_for_a_small_input(tmp_path: Path) -> None:
    from gapsvm.core.decode import decode_for_input

    rng = np.random.default_rng(12)
    # Photo-like: detail at 30 px, not at the 8-px scale where the two paths' anti-aliasing
    # differ most.
    small = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    img = cv2.resize(small, (720, 480), interpolation=cv2.INTER_CUBIC)
    jpeg = encode(img, "JPEG", quality=92)
    full = decode_image(jpeg, "p.jpg")
    for size, want_hw in [((224, 224), (240, 360)), ((100, 50), (120, 180)),
                          ((56, 56), (60, 90)), ((241, 100), (480, 720)), (None, (480, 720))]:
        got, hw = decode_for_input(jpeg, "p.jpg", size)
        assert hw == (480, 720) and got.shape[:2] == want_hw, (size, got.shape)
        if size is not None:  # what reaches the network: close to full decode + area resize
            diff = resize_image(got, size).astype(int) - resize_image(full, size).astype(int)
            assert np.abs(diff).mean() < 2.5, (size, np.abs(diff).mean())  # a swap: ~50
    # EXIF-rotated: the full size is reported after orientation, as read_image gives it.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(img, "JPEG", quality=92, exif=exif)
    got, hw = decode_for_input(rotated, "r.jpg", (112, 112))
    assert hw == read_image_bytes_shape(rotated) == (720, 480) and got.shape[:2] == (180, 120)
    # Other formats are always decoded in full.
    png = encode(img, "PNG")
    got, hw = decode_for_input(png, "p.png", (56, 56))
    assert hw == (480, 720) and got.shape[:2] == (480, 720)


def read_image_bytes_shape(data: bytes) -> tuple[int, int]:
    return decode_image(data).shape[:2]
