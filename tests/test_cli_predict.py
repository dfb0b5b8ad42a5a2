"""``gapsvm predict`` and ``gapsvm cam`` (gapsvm/cli/predict.py): labels and scores as the
Python API gives them, overlays as the API draws them, raw maps, and bad inputs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import _cli
import cv2
import numpy as np
import pytest
from _helpers import run_cli

from gapsvm import load_model, overlay
from gapsvm.core.decode import read_image

work, dataset, features_file, model_file, dirty_dataset = (
    _cli.work, _cli.dataset, _cli.features_file, _cli.model_file, _cli.dirty_dataset)

pytestmark = pytest.mark.slow


def test_predict_csv_parses_and_matches_the_api(capsys, model_file, dataset, work) -> None:
    rc, out, _ = run_cli(capsys, "predict", model_file, dataset, "--csv",
                         "--cache-dir", work / "cache", "-q")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12 and set(rows[0]) == {"path", "label", "score"}
    model = load_model(model_file).set_params(cache_dir=str(work / "cache"))
    paths = [r["path"] for r in rows]
    assert [r["label"] for r in rows] == model.predict(paths).tolist()
    d = model.decision_function(paths)
    np.testing.assert_allclose([float(r["score"]) for r in rows], np.abs(d), rtol=1e-5)
    # Most crops are labelled as the folder they came from.
    right = sum(Path(r["path"]).parent.name == r["label"] for r in rows)
    assert right >= 10


def test_cam_writes_readable_rgb_overlays(capsys, model_file, dataset, work) -> None:
    out_dir = work / "cams"
    rc, out, _ = run_cli(capsys, "cam", model_file, dataset, "--out", out_dir, "--target",
                         "person", "--alpha", "0.6", "--cache-dir", work / "cache", "-q")
    assert rc == 0 and "12 overlay(s)" in out
    pngs = sorted(out_dir.rglob("*.png"))
    assert len(pngs) == 12 and all(p.name.endswith(".cam-person.png") for p in pngs)
    model = load_model(model_file).set_params(cache_dir=str(work / "cache"))
    for png in pngs[:2] + pngs[-2:]:
        bgr = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3
        rel = png.relative_to(out_dir).as_posix().replace(".cam-person.png", ".png")
        src = dataset / rel
        img = read_image(src)
        assert bgr.shape == img.shape
        # What the API draws for that image, written BGR on disk as OpenCV expects.
        heat = model.cam([str(src)], target="person")[0]
        want = overlay(img, heat, 0.6, normalize=False)
        np.testing.assert_array_equal(bgr[..., ::-1], want)


def test_cam_save_npy_writes_the_feature_maps_atomically(capsys, model_file, dataset, work):
    out_dir = work / "cams_npy"
    one = sorted((dataset / "person").iterdir())[0]
    npy = out_dir / f"{one.stem}.cam-person.npy"
    npy.parent.mkdir(parents=True)
    npy.write_bytes(b"an older, longer file " * 1000)  # replaced whole
    rc, _, err = run_cli(capsys, "cam", model_file, one, "--out", out_dir, "--target",
                         "person", "--save-npy", "--cache-dir", work / "cache", "-q")
    assert rc == 0, err
    model = load_model(model_file).set_params(cache_dir=str(work / "cache"))
    want = model.explain([str(one)], target="person").cams[0]
    got = np.load(npy)
    assert got.shape == want.shape and got.shape[:2] == (8, 4)  # 128x64 at stride 16
    np.testing.assert_array_equal(got, want)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [npy.name, f"{one.stem}.cam-person.png"])  # no temporary file left


def test_cam_refuses_unknown_target(capsys, model_file, dataset, work) -> None:
    rc, _, err = run_cli(capsys, "cam", model_file, dataset / "person", "--out", work / "c2",
                         "--target", "cat", "--cache-dir", work / "cache", "-q")
    assert rc == 1 and "unknown --target 'cat'" in err and "'person'" in err


def test_predict_skips_bad_files_and_strict_fails(capsys, model_file, dirty_dataset, work):
    argv = ["predict", model_file, dirty_dataset, "--csv", "--cache-dir", work / "cache", "-q"]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0 and "zz_broken.jpg" in err
    assert len(list(csv.DictReader(io.StringIO(out)))) == 12
    rc, _, _ = run_cli(capsys, *argv, "--strict")
    assert rc == 1


def test_cam_on_a_non_linear_model_fails_before_reading(capsys, features_file, dataset, work):
    tree = work / "tree.skops"
    rc, _, err = run_cli(capsys, "train", features_file, "--out", tree, "--cv", "0",
                         "--classifier", "sklearn.tree.DecisionTreeClassifier")
    assert rc == 0, err
    argv = ["cam", tree, dataset, "--out", work / "c3", "--cache-dir", work / "cache", "-q"]
    # A tree's node storage is a type skops does not trust by default; the user may vouch.
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 1 and "sklearn.tree._tree.Tree" in err and "--trusted" in err
    rc, _, err = run_cli(capsys, *argv, "--trusted")
    assert rc == 1 and "DecisionTreeClassifier has no coef_" in err
    assert not list((work / "c3").glob("*.png"))
    rc, out, _ = run_cli(capsys, "predict", tree, dataset, "--trusted", "--cache-dir",
                         work / "cache", "-q")
    assert rc == 0 and len(out.splitlines()) == 12


def test_missing_model_file_is_a_one_line_error(capsys, dataset, work) -> None:
    rc, _, err = run_cli(capsys, "predict", work / "nope.skops", dataset)
    assert rc == 1 and "does not exist" in err and "Traceback" not in err
