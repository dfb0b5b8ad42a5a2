"""Tests for the ``gapsvm`` command line, run in-process through ``gapsvm.cli.main``.

One tiny folder-per-class data set (6 real INRIA crops per class, copied into a temporary
folder) goes through features -> train -> predict -> cam. Every command gets ``--cache-dir``
so nothing is written into the shared GAPSVM_HOME. One subprocess checks the installed
console script.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gapsvm import GapFeaturizer, load_model, overlay
from gapsvm.cli.main import main
from gapsvm.core.decode import read_image
from gapsvm.network.features_file import read_features_file


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def dataset(persons, work) -> Path:
    paths, labels = persons
    root = work / "data set"
    for cls in ("not_person", "person"):
        (root / cls).mkdir(parents=True)
        picked = [p for p, lab in zip(paths, labels, strict=True) if lab == cls][:6]
        for p in picked:
            shutil.copyfile(p, root / cls / Path(p).name)
    return root


@pytest.fixture(scope="module")
def features_file(dataset, work, imagenet_ready) -> Path:
    out = work / "features.joblib"
    rc = main(["features", str(dataset), "--out", str(out), "--input-size", "128x64",
               "--cache-dir", str(work / "cache"), "-q"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def model_file(features_file, work) -> Path:
    out = work / "model.skops"
    assert main(["train", str(features_file), "--out", str(out), "--cv", "3", "--seed", "1"]) == 0
    return out


def _run(capsys, argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_features_writes_vectors_labels_paths_and_meta(features_file, dataset, work) -> None:
    d = read_features_file(features_file)
    assert d["X"].shape == (12, 512) and d["X"].dtype == np.float32
    assert d["y"].tolist() == ["not_person"] * 6 + ["person"] * 6
    assert d["class_names"] == ["not_person", "person"]
    assert all(re.fullmatch(r"(not_person|person)/[^/]+\.png", p) for p in d["paths"])
    assert d["errors"] == []
    meta = d["meta"]
    assert meta["input_size"] == "128x64" and meta["weights"]["name"] == "imagenet"
    assert meta["backbone"] == "vgg16" and meta["layer"] == "block5_conv3"
    # The same vectors the Python API gives for those files.
    files = [str(dataset / p) for p in d["paths"]]
    want = GapFeaturizer(input_size=(128, 64), cache_dir=None, verbose=0).fit().transform(files)
    np.testing.assert_allclose(d["X"], want, rtol=1e-5, atol=1e-6)


def test_features_reports_cache_use(capsys, dataset, features_file, work) -> None:
    rc, out, _ = _run(capsys, ["features", dataset, "--out", work / "again.joblib",
                               "--input-size", "128x64", "--cache-dir", work / "cache", "-q"])
    assert rc == 0
    assert "12 images" in out and "0 computed, 12 from cache" in out
    assert "not_person (6), person (6)" in out


def test_train_prints_kfold_accuracy_and_writes_the_model(capsys, features_file, work) -> None:
    out_model = work / "m2.skops"
    rc, out, _ = _run(capsys, ["train", features_file, "--out", out_model, "--cv", "3"])
    assert rc == 0
    m = re.search(r"3-fold accuracy: ([0-9.]+) \+- ([0-9.]+)", out)
    assert m, out
    assert float(m.group(1)) >= 0.8  # 12 clear-cut INRIA crops, ImageNet features
    model = load_model(out_model)
    assert model.classes_.tolist() == ["not_person", "person"]
    assert model.input_size == (128, 64) and model.weights == "imagenet"
    assert model.training_info_["cv_folds"] == 3
    assert model.training_info_["cv_accuracy_mean"] == pytest.approx(float(m.group(1)), abs=1e-4)


def test_nested_classifier_flags_reach_the_estimator(capsys, features_file, work) -> None:
    out_model = work / "lr.skops"
    rc, _, err = _run(capsys, [
        "train", features_file, "--out", out_model, "--cv", "0",
        "--classifier", "sklearn.linear_model.LogisticRegression",
        "--classifier__C", "0.5", "--classifier__max_iter=3000",
    ])
    assert rc == 0, err
    model = load_model(out_model)
    from sklearn.linear_model import LogisticRegression

    assert isinstance(model.classifier, LogisticRegression)
    assert model.classifier.C == 0.5 and model.classifier.max_iter == 3000
    assert model.head_.classifier_.C == 0.5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classifier", "nonsense"], "unknown classifier 'nonsense'"),
        (["--classifier", "sklearn.svm.NoSuchSVC"], "cannot import classifier"),
        (["--classifier__nonsense", "3"], "bad parameter for LinearSVC"),
        (["--foo", "1"], "unrecognized argument '--foo'"),
    ],
)
def test_train_flag_errors(capsys, features_file, work, argv, message) -> None:
    rc, _, err = _run(capsys, ["train", features_file, "--out", work / "x.skops", *argv])
    assert rc == 1 and message in err and "Traceback" not in err


def test_train_on_a_flat_folder_features_file_errors_clearly(capsys, dataset, work) -> None:
    flat = work / "flat"
    flat.mkdir()
    for p in sorted((dataset / "person").iterdir())[:3]:
        shutil.copyfile(p, flat / p.name)
    feats = work / "flat.joblib"
    rc, _, _ = _run(capsys, ["features", flat, "--out", feats, "--input-size", "128x64",
                             "--cache-dir", work / "cache", "-q"])
    assert rc == 0 and read_features_file(feats)["y"] is None
    rc, _, err = _run(capsys, ["train", feats, "--out", work / "flat.skops"])
    assert rc == 1
    assert "has no labels" in err and "one sub-folder per class" in err
    assert not (work / "flat.skops").exists()


def test_predict_csv_parses_and_matches_the_api(capsys, model_file, dataset, work) -> None:
    rc, out, _ = _run(capsys, ["predict", model_file, dataset, "--csv",
                               "--cache-dir", work / "cache", "-q"])
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
    rc, out, _ = _run(capsys, ["cam", model_file, dataset, "--out", out_dir, "--target",
                               "person", "--alpha", "0.6", "--cache-dir", work / "cache", "-q"])
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


def test_cam_refuses_unknown_target(capsys, model_file, dataset, work) -> None:
    rc, _, err = _run(capsys, ["cam", model_file, dataset / "person", "--out", work / "c2",
                               "--target", "cat", "--cache-dir", work / "cache", "-q"])
    assert rc == 1 and "unknown --target 'cat'" in err and "'person'" in err


@pytest.fixture
def dirty_dataset(dataset, tmp_path) -> Path:
    root = tmp_path / "dirty"
    shutil.copytree(dataset, root)
    (root / "person" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    return root


def test_bad_file_is_reported_and_skipped(capsys, dirty_dataset, work, tmp_path) -> None:
    feats = tmp_path / "f.joblib"
    errors_csv = tmp_path / "errors.csv"
    argv = ["features", dirty_dataset, "--out", feats, "--input-size", "128x64",
            "--cache-dir", work / "cache", "--errors", errors_csv, "-q"]
    rc, _, err = _run(capsys, argv)
    assert rc == 0
    assert "1 file(s) skipped" in err and "person/zz_broken.jpg" in err
    d = read_features_file(feats)
    assert d["X"].shape == (12, 512) and "person/zz_broken.jpg" not in d["paths"]
    assert d["errors"][0]["path"] == "person/zz_broken.jpg"
    with open(errors_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == ["person/zz_broken.jpg"] and rows[0]["reason"]
    # --strict: the same work is done and written, but the exit status says something failed.
    feats.unlink()
    rc, _, _ = _run(capsys, [*argv, "--strict"])
    assert rc == 1 and feats.is_file()


def test_predict_skips_bad_files_and_strict_fails(capsys, model_file, dirty_dataset, work):
    argv = ["predict", model_file, dirty_dataset, "--csv", "--cache-dir", work / "cache", "-q"]
    rc, out, err = _run(capsys, argv)
    assert rc == 0 and "zz_broken.jpg" in err
    assert len(list(csv.DictReader(io.StringIO(out)))) == 12
    rc, _, _ = _run(capsys, [*argv, "--strict"])
    assert rc == 1


def test_cam_on_a_non_linear_model_fails_before_reading(capsys, features_file, dataset, work):
    tree = work / "tree.skops"
    rc, _, err = _run(capsys, ["train", features_file, "--out", tree, "--cv", "0",
                               "--classifier", "sklearn.tree.DecisionTreeClassifier"])
    assert rc == 0, err
    argv = ["cam", tree, dataset, "--out", work / "c3", "--cache-dir", work / "cache", "-q"]
    # A tree's node storage is a type skops does not trust by default; the user may vouch.
    rc, _, err = _run(capsys, argv)
    assert rc == 1 and "sklearn.tree._tree.Tree" in err and "--trusted" in err
    rc, _, err = _run(capsys, [*argv, "--trusted"])
    assert rc == 1 and "DecisionTreeClassifier has no coef_" in err
    assert not list((work / "c3").glob("*.png"))
    rc, out, _ = _run(capsys, ["predict", tree, dataset, "--trusted", "--cache-dir",
                               work / "cache", "-q"])
    assert rc == 0 and len(out.splitlines()) == 12


def test_weights_info_and_verify(capsys, imagenet_ready) -> None:
    rc, out, _ = _run(capsys, ["weights", "info"])
    assert rc == 0 and "present" in out and "block5_conv3" in out
    rc, out, _ = _run(capsys, ["weights", "verify"])
    assert rc == 0
    sha = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
    assert re.search(rf"verified\s+imagenet {sha}", out), out


def test_missing_model_file_is_a_one_line_error(capsys, dataset, work) -> None:
    rc, _, err = _run(capsys, ["predict", work / "nope.skops", dataset])
    assert rc == 1 and "does not exist" in err and "Traceback" not in err


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("gapsvm")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "gapsvm.cli"]
    res = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for sub in ("weights", "features", "train", "predict", "cam"):
        assert sub in res.stdout
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("gapsvm ")
