"""``gapsvm train`` (gapsvm/cli/train.py): k-fold accuracy printed, the model written, nested
``--classifier__PARAM`` flags, and one-line errors."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import _cli
import pytest
from _helpers import run_cli

from gapsvm import load_model
from gapsvm.network.features_file import read_features_file

work, dataset, features_file = _cli.work, _cli.dataset, _cli.features_file  # shared fixtures

pytestmark = pytest.mark.slow


def test_train_prints_kfold_accuracy_and_writes_the_model(capsys, features_file, work) -> None:
    out_model = work / "m2.skops"
    rc, out, _ = run_cli(capsys, "train", features_file, "--out", out_model, "--cv", "3")
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
    rc, _, err = run_cli(
        capsys, "train", features_file, "--out", out_model, "--cv", "0",
        "--classifier", "sklearn.linear_model.LogisticRegression",
        "--classifier__C", "0.5", "--classifier__max_iter=3000",
    )
    assert rc == 0, err
    model = load_model(out_model)
    from sklearn.linear_model import LogisticRegression

    assert isinstance(model.classifier, LogisticRegression)
    assert model.classifier.C == 0.5 and model.classifier.max_iter == 3000
    assert model.head_.classifier_.C == 0.5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classifier", "nonsense"], "argument --classifier: unknown classifier 'nonsense'"),
        (["--classifier", "sklearn.svm.NoSuchSVC"],
         "argument --classifier: cannot import classifier 'sklearn.svm.NoSuchSVC'"),
        (["--classifier", "os.path"], "argument --classifier: 'os.path' is a module, not a "
                                      "classifier class"),
        (["--classifier", "sklearn.cluster.KMeans"], "argument --classifier: "
         "'sklearn.cluster.KMeans' is not a classifier (scikit-learn says it is a clusterer)"),
        (["--classifier", "sklearn.pipeline.Pipeline"], "argument --classifier: cannot build "
         "classifier 'sklearn.pipeline.Pipeline' without arguments: "),
        (["--classifier", "os.getcwd"], "argument --classifier: 'os.getcwd' is a "
                                        "builtin_function_or_method, not a classifier class"),
        (["--cv", "-3"], "argument --cv: -3 folds: give 0 to skip cross-validation, or 2 or more"),
        (["--cv", "1"], "argument --cv: 1 folds: give 0 to skip cross-validation, or 2 or more"),
    ],
)
def test_train_usage_errors_exit_2_before_reading(capsys, tmp_path, argv, message) -> None:
    # The features file does not exist: a usage error is reported before it is opened.
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "train", tmp_path / "none.joblib", "--out", tmp_path / "x.skops", *argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("gapsvm train: error: " + message)
    assert not (tmp_path / "x.skops").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classifier__nonsense", "3"], "bad parameter for LinearSVC"),
        (["--foo", "1"], "unrecognized argument '--foo'"),
        (["--classifier__C"], "--classifier__C needs a value"),
    ],
)
def test_train_flag_errors(capsys, features_file, work, argv, message) -> None:
    rc, _, err = run_cli(capsys, "train", features_file, "--out", work / "x.skops", *argv)
    assert rc == 1 and message in err and "Traceback" not in err
    assert "gapsvm train: error: " in err


def test_train_on_a_flat_folder_features_file_errors_clearly(capsys, dataset, work) -> None:
    flat = work / "flat"
    flat.mkdir()
    for p in sorted((dataset / "person").iterdir())[:3]:
        shutil.copyfile(p, flat / p.name)
    feats = work / "flat.joblib"
    rc, _, _ = run_cli(capsys, "features", flat, "--out", feats, "--input-size", "128x64",
                       "--cache-dir", work / "cache", "-q")
    assert rc == 0 and read_features_file(feats)["y"] is None
    rc, _, err = run_cli(capsys, "train", feats, "--out", work / "flat.skops")
    assert rc == 1
    assert "has no labels" in err and "one sub-folder per class" in err
    assert not (work / "flat.skops").exists()


def test_help_lists_exactly_the_short_classifier_names(capsys) -> None:
    # cli/train.py spells them so that --help needs no scikit-learn: they must stay the same.
    from gapsvm.cli.main import build_parser
    from gapsvm.cli.train import SHORT_NAMES
    from gapsvm.workflows.training import CLASSIFIERS

    assert sorted(SHORT_NAMES) == sorted(CLASSIFIERS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "|".join(SHORT_NAMES) in capsys.readouterr().out


# -- detection: hard negatives and box supervision ------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give either a features file (from `gapsvm features`) or --from-boxes"),
        (["f.joblib", "--from-boxes", "b.csv", "--images", "."], ", not both"),
        (["--from-boxes", "b.csv"], "--from-boxes needs --images DIR"),
        (["f.joblib", "--images", "."], "--images needs --from-boxes"),
        (["f.joblib", "--input-size", "128x64"], "--input-size needs --from-boxes"),
        (["f.joblib", "--mining-rounds", "3"],
         "--mining-rounds needs --hard-negatives DIR or --from-boxes CSV"),
        (["f.joblib", "--target", "person"], "--target needs --hard-negatives DIR"),
        (["--from-boxes", "b.csv", "--images", ".", "--target", "person"],
         "--target needs --hard-negatives DIR (--from-boxes mines against the label"),
        (["--from-boxes", "b.csv", "--images", ".", "--hard-negatives", "."],
         "--hard-negatives mines against a features file's training vectors"),
        (["f.joblib", "--hard-negatives", ".", "--mining-scales", "2,-1"],
         "argument --mining-scales: scales must be positive"),
        (["f.joblib", "--hard-negatives", ".", "--mining-rounds", "0"],
         "--mining-rounds 0 mines nothing: leave out --hard-negatives"),
        (["--from-boxes", "b.csv", "--images", ".", "--mining-rounds", "-1"],
         "argument --mining-rounds: -1 is negative"),
        (["--from-boxes", "b.csv", "--images", ".", "--negatives-per-image", "-1"],
         "argument --negatives-per-image: -1 is negative"),
    ],
)
def test_features_or_boxes_usage_errors_exit_2(capsys, tmp_path, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "train", *argv, "--out", tmp_path / "x.skops")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("gapsvm train: error: ") and message in last, err
    assert not (tmp_path / "x.skops").exists()


def test_hard_negatives_mine_person_free_crops_and_say_so(capsys, features_file, persons,
                                                          work) -> None:
    paths, labels = persons
    negs = work / "negatives"
    negs.mkdir()
    for p in [p for p, lab in zip(paths, labels, strict=True) if lab == "not_person"][-4:]:
        shutil.copyfile(p, negs / Path(p).name)  # not among the training crops
    out_model = work / "mined.skops"
    rc, out, err = run_cli(capsys, "train", features_file, "--out", out_model, "--cv", "0",
                           "--hard-negatives", negs, "--mining-rounds", "2",
                           "--mining-scales", "2,3", "--cache-dir", work / "cache")
    assert rc == 0, err
    assert "mining round 1:" in out
    model = load_model(out_model)
    info = model.training_info_["hard_negatives"]
    assert info["source"] == str(negs) and info["n_images"] == 4
    assert info["target"] == "person" and info["negative_label"] == "not_person"
    assert info["scales"] == "x2,x3" and info["windows"] == "8x4"
    assert info["n_added"] == sum(info["added_per_round"]) and info["n_added"] > 0
    assert model.training_info_["n_images"] == 12  # the features file's crops, as before


def test_from_boxes_trains_a_box_supervised_model(capsys, shared_data, imagenet_ready,
                                                  tmp_path) -> None:
    src = shared_data / "boxes"
    with open(src / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["filename"] for r in rows})[:3]
    boxes_csv = tmp_path / "three.csv"
    with open(boxes_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["filename"] in names)
    n_boxes = sum(r["filename"] in names for r in rows)
    out_model = tmp_path / "boxes.skops"
    rc, out, err = run_cli(capsys, "train", "--from-boxes", boxes_csv, "--images",
                           src / "images", "--negatives-per-image", "4", "--out", out_model,
                           "--mining-rounds", "1", "--mining-scales", "1",
                           "--cache-dir", tmp_path / "cache")
    assert rc == 0, err
    assert f"3 photo(s): {n_boxes} box crop(s), 12 negative crop(s)" in out
    model = load_model(out_model)
    assert model.classes_.tolist() == ["not_person", "person"]
    assert model.input_size == (128, 64) and model.weights == "imagenet"
    info = model.training_info_
    assert info["supervision"].startswith("box-supervised")
    assert (info["n_photos"], info["n_positives"], info["n_negatives"]) == (3, n_boxes, 12)
    # Then the photos' own box-free windows were mined, once, at the photos' size.
    assert "mining round 1:" in out
    mined = info["hard_negatives"]
    assert (mined["n_images"], mined["scales"], mined["rounds_asked"]) == (3, "x1", 1)
    assert mined["windows"] == "8x4" and mined["target"] == "person"
