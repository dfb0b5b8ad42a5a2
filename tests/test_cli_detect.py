"""``gapsvm detect`` (gapsvm/cli/detect.py): the CSV's columns and rows as the Python API
gives them, one overlay per image, unreadable images named and skipped, and three real meeting
photos end to end. A seeded random VGG16 (``weights=None``) keeps the network cheap."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from _helpers import run_cli, write_rgb
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier, load_model
from gapsvm.core.decode import read_image

pytestmark = pytest.mark.slow

COLUMNS = ["filename", "label", "score", "x_min", "y_min", "x_max", "y_max"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(model file trained at 64x32 on synthetic crops, folder of 3 photos with a sub-folder,
    cache folder)."""
    d = tmp_path_factory.mktemp("detect")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (64, 32, 3), dtype=np.uint8) for _ in range(8)]
    for k in range(4, 8):  # class "obj": a bright upright bar
        crops[k][8:56, 8:24] = 255
    model = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=(64, 32),
                          cache_dir=str(d / "cache"))
    model.fit(crops, ["bg"] * 4 + ["obj"] * 4)
    model.save(d / "m.skops")
    for name, x in (("a.png", 10), ("b.png", 40), ("sub/c.png", 70)):
        photo = rng.integers(0, 120, (64, 112, 3), dtype=np.uint8)
        photo[8:56, x : x + 16] = 255
        write_rgb(d / "imgs" / name, photo)
    return d / "m.skops", d / "imgs", d / "cache"


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_csv_has_the_columns_and_the_apis_detections(capsys, tiny, tmp_path) -> None:
    model_file, imgs, cache = tiny
    out = tmp_path / "out"
    rc, printed, err = run_cli(capsys, "detect", model_file, imgs, "--target", "obj", "--out",
                               out, "--scales", "1,1.5", "--max-detections", "4",
                               "--cache-dir", cache, "-q")
    assert rc == 0, err
    header, rows = _rows(out / "detections.csv")
    assert header == COLUMNS
    # File names relative to the input folder, as a boxes CSV names them.
    assert sorted({r["filename"] for r in rows}) == ["a.png", "b.png", "sub/c.png"]
    model = load_model(model_file).set_params(cache_dir=str(cache))
    for name in ("a.png", "b.png", "sub/c.png"):
        [want] = model.detect([str(imgs / name)], "obj", scales=(1.0, 1.5), max_detections=4)
        got = [r for r in rows if r["filename"] == name]
        assert [r["label"] for r in got] == ["obj"] * len(want)
        assert [tuple(int(r[c]) for c in COLUMNS[3:]) for r in got] == [
            d.box.as_tuple() for d in want]
        # The command computed the maps, the API read them back from the cache (float16).
        np.testing.assert_allclose([float(r["score"]) for r in got],
                                   [d.score for d in want], rtol=0, atol=1e-2)
    assert f"{len(rows)} detection(s) of obj" in printed and "3 overlay(s)" in printed


def test_one_overlay_per_image_with_the_boxes_drawn(capsys, tiny, tmp_path) -> None:
    model_file, imgs, cache = tiny
    out = tmp_path / "out"
    argv = ["detect", model_file, imgs, "--target", "obj", "--scales", "1",
            "--max-detections", "1", "--cache-dir", cache, "-q"]
    rc, _, _ = run_cli(capsys, *argv, "--out", out)
    assert rc == 0
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == ["a.png.detect-obj.png", "b.png.detect-obj.png", "sub/c.png.detect-obj.png"]
    # The boxes (magenta, the predicted-box colour) are what differs from the plain overlay.
    _, rows = _rows(out / "detections.csv")
    for png in pngs:
        rgb = cv2.imread(str(out / png))[..., ::-1]
        src = png.removesuffix(".detect-obj.png")
        assert rgb.shape == read_image(imgs / src).shape
        [row] = [r for r in rows if r["filename"] == src]
        x0, y0 = int(row["x_min"]), int(row["y_min"])
        np.testing.assert_array_equal(rgb[y0 + 20, x0], (255, 0, 255))  # its left edge
    # With no detection left, the overlay is the CAM alone and the CSV only its header.
    rc, printed, _ = run_cli(capsys, *argv, "--score-threshold", "1e9", "--out",
                             tmp_path / "none")
    assert rc == 0 and "0 detection(s)" in printed and "3 overlay(s)" in printed
    assert _rows(tmp_path / "none" / "detections.csv") == (COLUMNS, [])


def test_an_unreadable_image_is_named_and_skipped(capsys, tiny, tmp_path) -> None:
    model_file, imgs, cache = tiny
    dirty = tmp_path / "dirty"
    shutil.copytree(imgs, dirty)
    (dirty / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    argv = ["detect", model_file, dirty, "--target", "obj", "--scales", "1",
            "--cache-dir", cache, "-q"]
    rc, _, err = run_cli(capsys, *argv, "--out", tmp_path / "o1")
    assert rc == 0 and "zz_broken.png" in err  # skipped, as `cam` skips it
    _, rows = _rows(tmp_path / "o1" / "detections.csv")
    assert {r["filename"] for r in rows} == {"a.png", "b.png", "sub/c.png"}
    assert len(list((tmp_path / "o1").rglob("*.png"))) == 3
    # --strict: the same files written, then exit 1.
    rc, _, err = run_cli(capsys, *argv, "--strict", "--out", tmp_path / "o2")
    assert rc == 1 and "zz_broken.png" in err
    assert _rows(tmp_path / "o2" / "detections.csv")[1] == rows
    assert len(list((tmp_path / "o2").rglob("*.png"))) == 3


def test_user_errors_are_one_line(capsys, tiny, tmp_path) -> None:
    model_file, imgs, cache = tiny
    base = ["detect", model_file, imgs, "--out", tmp_path / "o", "--cache-dir", cache, "-q"]
    rc, _, err = run_cli(capsys, *base, "--target", "cat")
    assert rc == 1 and "unknown --target 'cat'" in err and "'obj'" in err
    # A window larger than every map finds nothing: not an error.
    rc, printed, _ = run_cli(capsys, *base, "--target", "obj", "--window", "50x50")
    assert rc == 0 and "0 detection(s)" in printed
    rc, _, err = run_cli(capsys, "detect", model_file, imgs, "--target", "obj", "--out", imgs,
                         "--cache-dir", cache, "-q")
    assert rc == 1 and "is the input folder" in err


def test_a_model_without_a_training_size_asks_for_window(capsys, tiny, tmp_path) -> None:
    model_file, imgs, cache = tiny
    native = load_model(model_file)
    native.feature_meta_ = {**native.feature_meta_, "input_size": "native"}
    native.set_params(input_size=None).save(tmp_path / "native.skops")
    rc, _, err = run_cli(capsys, "detect", tmp_path / "native.skops", imgs, "--target", "obj",
                         "--out", tmp_path / "o", "--cache-dir", cache, "-q")
    assert rc == 1 and "window" in err
    assert not (tmp_path / "o" / "detections.csv").exists()


def test_three_meeting_photos_end_to_end(capsys, shared_data, tiny, tmp_path) -> None:
    # The real photos through the whole command: boxes inside each photo, one overlay each.
    model_file, _, cache = tiny
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(p.name for p in (shared_data / "boxes" / "images").glob("*.jpg"))[:3]
    for name in names:
        shutil.copyfile(shared_data / "boxes" / "images" / name, photos / name)
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, "detect", model_file, photos, "--target", "obj", "--out", out,
                         "--scales", "1", "--max-detections", "10", "--cache-dir", cache, "-q")
    assert rc == 0, err
    _, rows = _rows(out / "detections.csv")
    assert sorted({r["filename"] for r in rows}) == names
    for name in names:
        h, w = read_image(photos / name).shape[:2]
        mine = [r for r in rows if r["filename"] == name]
        assert 1 <= len(mine) <= 10
        scores = [float(r["score"]) for r in mine]
        assert scores == sorted(scores, reverse=True)
        for r in mine:
            x0, y0, x1, y1 = (int(r[c]) for c in COLUMNS[3:])
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert (out / f"{name}.detect-obj.png").is_file()
