"""``gapsvm predict`` and ``gapsvm cam`` (gapsvm/cli/predict.py): labels and scores as the
Python API gives them, overlays as the API draws them, raw maps, and bad inputs."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import _cli
import cv2
import numpy as np
import pytest
from _helpers import run_cli, run_cli_fresh

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
        rel = png.relative_to(out_dir).as_posix().removesuffix(".cam-person.png")
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
    npy = out_dir / f"{one.name}.cam-person.npy"
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
        [npy.name, f"{one.name}.cam-person.png"])  # no temporary file left


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _cam(capsys, model_file, work, *argv) -> tuple[int, str, str]:
    return run_cli(capsys, "cam", model_file, *argv, "--target", "person",
                   "--cache-dir", work / "cache", "-q")


def test_cam_writes_one_overlay_per_image_and_counts_the_files(capsys, model_file, dataset,
                                                               tmp_path, work) -> None:
    # Before: x.jpg and x.png gave one file while "2 overlay(s)" was printed, and
    # a/x.png b/x.png c/x-2.png were written as x, x-2, x-2-2 (c/x-2.png under b's name).
    src = sorted((dataset / "person").iterdir())[0]
    for name in ("one/x.png", "a/x.png", "b/x.png", "c/x-2.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp_path / name)
    cv2.imwrite(str(tmp_path / "one" / "x.jpg"), cv2.imread(str(src)))
    rc, out, err = _cam(capsys, model_file, work, tmp_path / "one", "--out", tmp_path / "o1")
    assert rc == 0, err
    assert _files(tmp_path / "o1") == ["x.jpg.cam-person.png", "x.png.cam-person.png"]
    assert "2 overlay(s)" in out
    files = [tmp_path / n for n in ("a/x.png", "b/x.png", "c/x-2.png")]
    rc, out, err = _cam(capsys, model_file, work, *files, "--out", tmp_path / "o2",
                        "--save-npy")
    assert rc == 0, err
    assert _files(tmp_path / "o2") == [
        f"{d}/{n}.cam-person.{e}" for d, n in (("a", "x.png"), ("b", "x.png"), ("c", "x-2.png"))
        for e in ("npy", "png")
    ]
    assert "3 overlay(s)" in out


def test_cam_writes_the_others_when_one_overlay_cannot_be_written(capsys, model_file, dataset,
                                                                  tmp_path, work) -> None:
    src = sorted((dataset / "person").iterdir())[0]
    long = "L" * 246 + ".png"  # a legal input name; its overlay name once was too long
    (tmp_path / "in").mkdir()
    for name in ("ok.png", "blocked.png", long):
        shutil.copyfile(src, tmp_path / "in" / name)
    out_dir = tmp_path / "out"
    (out_dir / "blocked.png.cam-person.png").mkdir(parents=True)  # in the way of one overlay
    rc, out, err = _cam(capsys, model_file, work, tmp_path / "in", "--out", out_dir)
    assert rc == 1  # an overlay that cannot be written fails the run, after the others
    assert f"{tmp_path / 'in' / 'blocked.png'}: overlay not written" in err
    assert "Is a directory" in err and "1 overlay(s) could not be written" in err
    written = [f for f in _files(out_dir) if f != "blocked.png.cam-person.png"]
    assert "2 overlay(s)" in out and len(written) == 2 and "ok.png.cam-person.png" in written
    shortened = next(f for f in written if f.startswith("LLL"))
    assert len(shortened) <= 255 and shortened.endswith(".cam-person.png")
    assert cv2.imread(str(out_dir / shortened)).shape == (128, 64, 3)


def test_cam_does_not_read_its_own_overlays_back(capsys, model_file, dataset, tmp_path,
                                                 work) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset / "person", data)
    n = len(list(data.iterdir()))
    for _ in range(2):  # before: the second run also drew overlays of the first run's overlays
        rc, out, err = _cam(capsys, model_file, work, data, "--out", data / "cams")
        assert rc == 0, err
        assert f"{n} overlay(s)" in out and len(_files(data / "cams")) == n
    rc, _, err = _cam(capsys, model_file, work, data, "--out", data)
    assert rc == 1 and "is the input folder" in err and "a sub-folder of it is fine" in err


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
    # A tree's node storage is a type skops does not trust: train refuses a .skops file that
    # every later command would refuse, and says to save a .joblib the user vouches for.
    rc, _, err = run_cli(capsys, "train", features_file, "--out", work / "tree.skops", "--cv",
                         "0", "--classifier", "sklearn.tree.DecisionTreeClassifier")
    assert rc == 1 and "sklearn.tree._tree.Tree" in err and "save it as .joblib" in err
    assert not (work / "tree.skops").exists()
    tree = work / "tree.joblib"
    rc, _, err = run_cli(capsys, "train", features_file, "--out", tree, "--cv", "0",
                         "--classifier", "sklearn.tree.DecisionTreeClassifier")
    assert rc == 0, err
    argv = ["cam", tree, dataset, "--out", work / "c3", "--cache-dir", work / "cache", "-q"]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 1 and "pickle-based" in err and "--trusted" in err
    rc, _, err = run_cli(capsys, *argv, "--trusted")
    assert rc == 1 and "DecisionTreeClassifier has no coef_" in err
    assert not list((work / "c3").glob("*.png"))
    rc, out, _ = run_cli(capsys, "predict", tree, dataset, "--trusted", "--cache-dir",
                         work / "cache", "-q")
    assert rc == 0 and len(out.splitlines()) == 12


def test_forest_scores_are_the_probability_of_the_predicted_class(capsys, features_file,
                                                                   dataset, work) -> None:
    forest = work / "forest.joblib"
    rc, _, err = run_cli(capsys, "train", features_file, "--out", forest, "--cv", "0",
                         "--classifier", "sklearn.ensemble.RandomForestClassifier",
                         "--classifier__n_estimators", "9", "--classifier__random_state", "0")
    assert rc == 0, err
    rc, out, _ = run_cli(capsys, "predict", forest, dataset, "--trusted", "--csv",
                         "--cache-dir", work / "cache", "-q")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    model = load_model(forest, trusted=True)
    proba = model.predict_proba([r["path"] for r in rows])
    column = {c: i for i, c in enumerate(model.classes_.tolist())}
    want = [proba[i, column[r["label"]]] for i, r in enumerate(rows)]
    np.testing.assert_allclose([float(r["score"]) for r in rows], want, rtol=1e-5)
    assert all(0.5 <= w <= 1 for w in want)  # two classes: the winner's share of the trees


def test_batch_size_sets_the_network_batch(capsys, model_file, dataset, work, monkeypatch):
    from gapsvm.network.backbone.build import Backbone

    seen: list[int] = []
    run = Backbone.__call__

    def spy(self, images):
        seen.append(len(images))
        return run(self, images)

    monkeypatch.setattr(Backbone, "__call__", spy)
    for command, extra in (("predict", []), ("cam", ["--out", work / "bs"]),
                           ("report", ["--out", work / "bs-report"])):
        seen.clear()
        # A fresh cache folder, so every image reaches the network.
        rc, _, err = run_cli(capsys, command, model_file, dataset, "--batch-size", "5",
                             "--cache-dir", work / f"bs-cache-{command}", "-q", *extra)
        assert rc == 0, err
        assert seen == [5, 5, 2], (command, seen)  # 12 images


@pytest.mark.parametrize(
    "argv, message",
    [(["--batch-size", "0"], "argument --batch-size: 0 is too small: give 1 or more"),
     (["--batch-size", "-4"], "argument --batch-size: -4 is too small: give 1 or more"),
     (["--batch-size", "x"], "argument --batch-size: not a whole number: 'x'"),
     # Empty once meant native size, silently.
     (["--input-size="], "argument --input-size: input size is empty; use one of: ")],
)
def test_bad_option_values_are_usage_errors(capsys, tmp_path, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "predict", tmp_path / "m.skops", tmp_path, *argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.splitlines()[-1].startswith(f"gapsvm predict: error: {message}")


def test_missing_model_file_is_a_one_line_error(capsys, dataset, work) -> None:
    rc, _, err = run_cli(capsys, "predict", work / "nope.skops", dataset)
    assert rc == 1 and "does not exist" in err and "Traceback" not in err


def test_predict_tsv_and_csv_share_one_column_order(capsys, model_file, dataset, work) -> None:
    common = ["predict", model_file, dataset, "--cache-dir", work / "cache", "-q"]
    rc, tsv, _ = run_cli(capsys, *common)
    assert rc == 0
    rc, out, _ = run_cli(capsys, *common, "--csv")
    assert rc == 0
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header == ["label", "score", "path"]
    tsv_rows = [line.split("\t") for line in tsv.splitlines()]
    assert [r[0] for r in tsv_rows] == [r[0] for r in rows]
    assert [r[2] for r in tsv_rows] == [r[2] for r in rows]
    np.testing.assert_allclose([float(r[1]) for r in tsv_rows], [float(r[1]) for r in rows],
                               atol=1e-4)


def test_predict_help_says_what_the_score_is(capsys) -> None:
    from gapsvm.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "label, score and path" in text and "|decision_function|" in text
    assert "not a probability" in text and "the predicted class's probability" in text



def test_predict_loads_tensorflow_only_for_images_the_cache_lacks(capsys, model_file, dataset,
                                                                   work, tmp_path) -> None:
    argv = ["predict", model_file, "--csv", "--cache-dir", work / "cache", "-q"]
    rc, want, _ = run_cli(capsys, *argv, dataset)
    assert rc == 0
    # Every image cached, the ImageNet weights' identity on record: no TensorFlow at all.
    rc, printed, tensorflow = run_cli_fresh(*argv, dataset)
    assert (rc, tensorflow) == (0, False)
    assert printed.splitlines() == want.splitlines()  # the same rows as in this process
    # One image the cache has not seen (flipped): the network is built for it.
    new = tmp_path / "flipped.png"
    first = sorted((dataset / "person").iterdir())[0]
    assert cv2.imwrite(str(new), cv2.imread(str(first))[:, ::-1])
    rc, printed, tensorflow = run_cli_fresh(*argv, dataset, new)
    assert (rc, tensorflow) == (0, True)
    rows = printed.splitlines()
    assert len(rows) == 14 and str(new) in rows[-1]


def test_cam_boxes_draws_the_box_at_the_models_calibrated_threshold_and_inputs(
        capsys, model_file, dataset, work) -> None:
    from gapsvm.core.overlay import PRED_COLOR, draw_overlay
    from gapsvm.estimator.box_settings import record_box_calibration

    model = load_model(model_file).set_params(cache_dir=str(work / "cache"))
    # Two recorded inputs: the boxes come from their fused maps, not the overlay's one map.
    record_box_calibration(model, 0.6, [model.input_size, 1.5], "calibrated on c.csv (2 images)")
    model.save(work / "calibrated.skops")
    out_dir = work / "cams-boxes"
    rc, out, _ = run_cli(capsys, "cam", work / "calibrated.skops", dataset, "--out", out_dir,
                         "--target", "person", "--boxes", "--cache-dir", work / "cache", "-q")
    assert rc == 0 and "12 overlay(s)" in out
    boxed = 0
    for png in sorted(out_dir.rglob("*.png")):
        src = dataset / png.relative_to(out_dir).as_posix().removesuffix(".cam-person.png")
        img = read_image(src)
        cam = model.cam([str(src)], "person", size="features", normalize=False)[0]
        boxes = model.boxes([str(src)], "person")[0]  # recorded 0.6 and inputs, as in the API
        got = cv2.imread(str(png))[..., ::-1]
        np.testing.assert_array_equal(got, draw_overlay(img, cam, alpha=0.5, pred_boxes=boxes))
        if boxes and model.boxes([str(src)], "person", threshold=0.2)[0] != boxes:
            boxed += 1
            assert (got == PRED_COLOR).all(axis=2).any()
    assert boxed >= 3  # the recorded threshold, not 0.2, drew them
