"""Tests for gapsvm.workflows.training (what ``gapsvm train`` runs): classifier resolution,
nested ``--classifier__PARAM`` values, the cross-validation and the trained model, on small
synthetic features files, so no network runs (``gapsvm train`` end to end on real features
is test_cli_train.py)."""

from __future__ import annotations

import hashlib
import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from gapsvm.network.features_file import write_features_file
from gapsvm.network.featurizer import features_metadata
from gapsvm.workflows.training import (
    CLASSIFIERS,
    cross_validate_head,
    nested_params,
    resolve_classifier,
    train_from_features,
)


def _meta(weights: str = "random(seed=0)", input_size=(32, 32)) -> dict:
    """Features metadata as ``gapsvm features`` writes it, for the given weights name."""
    backbone = {"backbone": "vgg16", "layer": "block5_conv3", "stride": 16,
                "weights": {"name": weights, "sha256": "cd" * 32}, "precision": "float32"}
    return features_metadata(backbone, input_size)


def _data(counts=(12, 12), seed=0, dim=16) -> tuple[np.ndarray, np.ndarray]:
    """GAP-like vectors: one cluster per class, overlapping enough that some folds err."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(loc=k * 0.8, size=(n, dim)) for k, n in enumerate(counts)])
    y = np.concatenate([[f"c{k}"] * n for k, n in enumerate(counts)])
    return np.abs(X).astype(np.float32), y


def _features_file(path: Path, X, y, meta=None) -> Path:
    write_features_file(path, {
        "X": X, "y": y, "class_names": None if y is None else sorted(set(y)),
        "paths": [f"img{i}.png" for i in range(len(X))], "data_dir": "data", "errors": [],
        "meta": meta or _meta(),
    })  # fmt: skip
    return path


# ------------------------------------------------------------------ classifiers


@pytest.mark.parametrize("short", sorted(CLASSIFIERS))
def test_every_short_name_builds_its_class(short: str) -> None:
    module, _, name = CLASSIFIERS[short].rpartition(".")
    est = resolve_classifier(short)
    assert type(est) is getattr(importlib.import_module(module), name)
    assert type(resolve_classifier(short.upper())) is type(est)  # any case


def test_short_names_converge_and_params_override_their_defaults() -> None:
    assert resolve_classifier("logreg").max_iter == 5000
    assert resolve_classifier("linearsvc").max_iter == 10000
    est = resolve_classifier("logreg", {"max_iter": 50, "C": 0.1})
    assert (est.max_iter, est.C) == (50, 0.1)


def test_dotted_class_names_are_imported_as_given() -> None:
    est = resolve_classifier("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    assert type(est) is LogisticRegression and est.C == 0.5
    assert est.max_iter == LogisticRegression().max_iter  # no short-name defaults
    assert type(resolve_classifier("sklearn.linear_model.RidgeClassifier")) is RidgeClassifier


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("nope", None, "unknown classifier 'nope': use one of linearsvc, logreg, sgd, ridge, "
                       "perceptron, lda or a dotted class name like "
                       "sklearn.linear_model.LogisticRegression"),
        ("sklearn.svm.NoSuchSVC", None, "cannot import classifier 'sklearn.svm.NoSuchSVC': "),
        ("no_such_module.Clf", None, "cannot import classifier 'no_such_module.Clf': "),
        ("linearsvc", {"nonsense": 3}, "bad parameter for LinearSVC: "),
    ],
)
def test_classifiers_that_cannot_be_built_are_value_errors(name, params, message) -> None:
    with pytest.raises(ValueError) as info:
        resolve_classifier(name, params)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "name, message",
    [
        ("os.path", "'os.path' is a module, not a classifier class; give a class like "
                    "sklearn.linear_model.LogisticRegression"),
        ("builtins.print", "'builtins.print' is a builtin_function_or_method, not a "
                           "classifier class"),
        ("os.getcwd", "'os.getcwd' is a builtin_function_or_method, not a classifier class"),
        ("sklearn.cluster.KMeans", "'sklearn.cluster.KMeans' is not a classifier (scikit-learn "
                                   "says it is a clusterer); use one of linearsvc, "),
        ("sklearn.linear_model.LinearRegression", "'sklearn.linear_model.LinearRegression' is "
         "not a classifier (scikit-learn says it is a regressor)"),
        ("sklearn.preprocessing.StandardScaler", "'sklearn.preprocessing.StandardScaler' is not "
                                                 "a classifier: it has no predict method"),
        ("collections.OrderedDict", "'collections.OrderedDict' is not a classifier: it has no "
                                    "fit or predict method"),
        ("sklearn.pipeline.Pipeline", "cannot build classifier 'sklearn.pipeline.Pipeline' "
                                      "without arguments: "),
        (f"{__name__}._FitPredict", f"'{__name__}._FitPredict' is not a classifier (it is no "
                                    "scikit-learn estimator: it declares no estimator type)"),
    ],
)
def test_names_that_are_no_classifier_class_are_one_line_value_errors(name, message) -> None:
    with pytest.raises(ValueError) as info:
        resolve_classifier(name)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


class _FitPredict:
    """fit and predict, but not a scikit-learn estimator (no tags, no get_params)."""

    def fit(self, X, y):
        return self

    def predict(self, X):
        return X


def test_any_scikit_learn_classifier_class_is_accepted() -> None:
    from sklearn.ensemble import RandomForestClassifier

    est = resolve_classifier("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 7})
    assert type(est) is RandomForestClassifier and est.n_estimators == 7


@pytest.mark.parametrize("cv", [-3, 1, 2.5, True, "5"])
def test_bad_fold_counts_are_refused_before_the_file_is_read(tmp_path, cv) -> None:
    with pytest.raises(ValueError, match="folds"):
        train_from_features(tmp_path / "missing.joblib", cv=cv, log=lambda s: None)


def test_nested_params_parse_literals_and_keep_text() -> None:
    tokens = ["--classifier__C", "0.5", "--classifier__class_weight=balanced",
              "--classifier__max_iter=3000", "--classifier__tol", "None",
              "--classifier__fit_intercept", "False", "--classifier__x=[1, 2]"]
    assert nested_params(tokens) == {"C": 0.5, "class_weight": "balanced", "max_iter": 3000,
                                     "tol": None, "fit_intercept": False, "x": [1, 2]}
    assert nested_params([]) == {}
    assert nested_params(["--head__alpha", "1e-3"], prefix="head__") == {"alpha": 0.001}
    # What the command line gives reaches the estimator.
    est = resolve_classifier("logreg", nested_params(tokens[:6]))
    assert (est.C, est.class_weight, est.max_iter, est.tol) == (0.5, "balanced", 3000, None)


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["--foo", "1"], "unrecognized argument '--foo'"),
        (["--classifier__C", "1", "stray"], "unrecognized argument 'stray'"),
        (["--classifier__C"], "--classifier__C needs a value"),
    ],
)
def test_nested_params_errors(tokens, message) -> None:
    with pytest.raises(ValueError, match=message):
        nested_params(tokens)


# ------------------------------------------------------------------ cross-validation


def test_cross_validation_matches_an_independent_fold_loop() -> None:
    X, y = _data(counts=(10, 14))
    pred, scores = cross_validate_head(LinearSVC(), X, y, folds=4, seed=3)
    want_pred = np.empty_like(y)
    want_scores = []
    for train, test in StratifiedKFold(4, shuffle=True, random_state=3).split(X, y):
        fold_pred = clone(LinearSVC()).fit(X[train], y[train]).predict(X[test])
        want_pred[test] = fold_pred
        want_scores.append(np.mean(fold_pred == y[test]))
    np.testing.assert_array_equal(pred, want_pred)
    np.testing.assert_allclose(scores, want_scores)
    assert scores.shape == (4,) and 0 < scores.min() and scores.max() <= 1
    again, _ = cross_validate_head(LinearSVC(), X, y, folds=4, seed=3)
    np.testing.assert_array_equal(again, pred)  # the seed fixes the folds


# ------------------------------------------------------------------ train_from_features


def test_training_records_the_run_and_fits_the_head_on_every_image(tmp_path) -> None:
    X, y = _data(counts=(12, 9, 15))
    f = _features_file(tmp_path / "feats.joblib", X, y)
    log: list[str] = []
    model = train_from_features(f, cv=5, seed=2, log=log.append)
    info = model.training_info_
    assert set(info) == {"n_images", "features_file", "classifier", "cv_folds",
                         "cv_accuracy_mean", "cv_accuracy_std", "cv_scores", "train_keys",
                         "train_keys_preprocess_version"}
    assert (info["n_images"], info["features_file"]) == (36, "feats.joblib")
    assert info["classifier"] == "LinearSVC(max_iter=10000)"
    _, scores = cross_validate_head(LinearSVC(max_iter=10000), X, y, 5, 2)
    assert info["cv_folds"] == 5 and info["cv_scores"] == pytest.approx(list(scores))
    assert info["cv_accuracy_mean"] == pytest.approx(np.mean(scores))
    assert info["cv_accuracy_std"] == pytest.approx(np.std(scores))
    assert log[0] == "36 images, classes {'c0': 12, 'c1': 9, 'c2': 15}"
    assert log[1] == "features: vgg16 block5_conv3, input 32x32, weights random(seed=0)"
    assert log[2] == "classifier: LinearSVC(max_iter=10000)"
    assert log[3].startswith(f"5-fold accuracy: {np.mean(scores):.4f} +- ")
    assert "precision" in log[4] and "c2" in log[4]  # the classification report
    # The final head: fitted on every image, as an independent fit is.
    want = LinearSVC(max_iter=10000).fit(X, y)
    np.testing.assert_allclose(model.head_.classifier_.coef_, want.coef_, rtol=1e-4, atol=1e-6)
    assert model.classes_.tolist() == ["c0", "c1", "c2"]
    assert (model.backbone, model.weights, model.input_size, model.precision) == (
        "vgg16", None, (32, 32), "float32")
    assert model.feature_meta_ == _meta()


def test_other_classifiers_and_their_params(tmp_path) -> None:
    X, y = _data()
    f = _features_file(tmp_path / "f.joblib", X, y)
    model = train_from_features(f, classifier="sklearn.linear_model.LogisticRegression",
                                params={"C": 0.25}, cv=0, log=lambda s: None)
    assert type(model.classifier) is LogisticRegression and model.classifier.C == 0.25
    assert model.training_info_["classifier"] == "LogisticRegression(C=0.25)"
    with pytest.raises(ValueError, match="unknown classifier 'nope'"):
        train_from_features(f, classifier="nope", log=lambda s: None)


@pytest.mark.parametrize(
    "counts, cv, folds, said",
    [
        ((12, 12), 0, None, None),  # 0: no cross-validation asked for
        ((12, 3), 5, 3, None),  # no more folds than the smallest class has images
        ((12, 1), 5, None, "cross-validation skipped: the smallest class has 1 image(s)"),
    ],
)
def test_folds_follow_the_smallest_class(tmp_path, counts, cv, folds, said) -> None:
    X, y = _data(counts=counts)
    log: list[str] = []
    model = train_from_features(_features_file(tmp_path / "f.joblib", X, y), cv=cv,
                                log=log.append)
    info = model.training_info_
    if folds is None:
        assert not {k for k in info if k.startswith("cv_")}
        assert not any("fold accuracy" in line for line in log)
    else:
        assert info["cv_folds"] == folds and len(info["cv_scores"]) == folds
        assert log[3].startswith(f"{folds}-fold accuracy: ")
    assert (said in log) if said else not any("skipped" in line for line in log)
    assert model.classes_.tolist() == ["c0", "c1"]  # trained all the same


@pytest.mark.parametrize(
    "size, want",
    [((128, 64), (128, 64)), (2.0, 2.0), (None, None)],
)
def test_the_model_takes_the_input_size_of_its_features(tmp_path, size, want) -> None:
    X, y = _data()
    f = _features_file(tmp_path / "f.joblib", X, y, _meta(input_size=size))
    model = train_from_features(f, cv=0, log=lambda s: None)
    assert model.input_size == want


def test_weights_come_from_the_features_metadata(tmp_path) -> None:
    X, y = _data()
    quiet = {"cv": 0, "log": lambda s: None}
    f = _features_file(tmp_path / "in.joblib", X, y, _meta("imagenet"))
    assert train_from_features(f, **quiet).weights == "imagenet"
    with pytest.raises(ValueError, match="features were computed with weights 'imagenet', "
                                         "but this model has weights=None"):
        train_from_features(f, weights=None, **quiet)
    g = _features_file(tmp_path / "file.joblib", X, y, _meta("my_vgg.h5"))
    with pytest.raises(ValueError, match=r"the features were computed with the weights file "
                                         r"'my_vgg\.h5'; pass it with --weights PATH"):
        train_from_features(g, **quiet)
    assert train_from_features(g, weights="/w/my_vgg.h5", **quiet).weights == "/w/my_vgg.h5"


def test_features_without_labels_or_with_one_class_are_refused(tmp_path) -> None:
    X, _ = _data()
    flat = _features_file(tmp_path / "flat.joblib", X, None)
    with pytest.raises(ValueError, match=r"flat\.joblib has no labels \(its images were in a "
                                         r"flat folder\); train needs a folder with one "
                                         r"sub-folder per class"):
        train_from_features(flat, log=lambda s: None)
    one = _features_file(tmp_path / "one.joblib", X, np.array(["c0"] * len(X)))
    with pytest.raises(ValueError, match=r"one\.joblib has a single class \['c0'\]: need two "
                                         "or more"):
        train_from_features(one, log=lambda s: None)


def test_training_records_its_images_by_content_as_the_cache_keys_them(tmp_path) -> None:
    from gapsvm.core.cache import PREPROCESS_VERSION

    X, y = _data(counts=(3, 3))
    data = tmp_path / "data"
    contents = [f"image bytes {i}".encode() for i in range(6)]
    paths = [f"c{i % 2}/img {i}.png" for i in range(6)]
    for rel, content in zip(paths, contents, strict=True):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
    (data / paths[5]).unlink()  # moved away since the features were computed
    f = tmp_path / "f.joblib"
    write_features_file(f, {"X": X, "y": y, "class_names": ["c0", "c1"], "paths": paths,
                            "data_dir": str(data), "errors": [], "meta": _meta()})
    log: list[str] = []
    info = train_from_features(f, cv=0, log=log.append).training_info_
    # The feature cache's key of a file: sha256 over the preprocessing version and the bytes.
    want = sorted(hashlib.sha256(f"gapsvm-pp{PREPROCESS_VERSION}:".encode() + b"bytes:" + c)
                  .hexdigest()[:20] for c in contents[:5])
    assert info["train_keys"] == want
    assert info["train_keys_preprocess_version"] == PREPROCESS_VERSION
    assert log[-1] == (f"1 of 6 training image(s) could not be read again from {str(data)!r} "
                       "to record their content; gapsvm report will not recognise them")
    # A file that records the keys hashed for the cache: the images are not read again
    # (here they are all gone), and an older preprocessing's keys are not taken for today's.
    recorded = [f"{i:020x}" for i in range(6)]
    shutil.rmtree(data)
    write_features_file(f, {"X": X, "y": y, "class_names": ["c0", "c1"], "paths": paths,
                            "keys": recorded, "data_dir": str(data), "errors": [],
                            "meta": _meta()})
    log.clear()
    info = train_from_features(f, cv=0, log=log.append).training_info_
    assert info["train_keys"] == recorded and not any("read again" in m for m in log)
    old = {**_meta(), "preprocess_version": PREPROCESS_VERSION - 1}
    write_features_file(f, {"X": X, "y": y, "class_names": ["c0", "c1"], "paths": paths,
                            "keys": recorded, "data_dir": str(data), "errors": [], "meta": old})
    info = train_from_features(f, cv=0, log=log.append).training_info_
    assert info["train_keys"] == []  # read again: gone, so none recorded


def test_the_summary_is_shown_before_scikit_learn_is_imported(tmp_path) -> None:
    # Importing scikit-learn takes about a second: `gapsvm train` says what it read first.
    import ast
    import subprocess
    import sys

    X, y = _data()
    path = _features_file(tmp_path / "f.joblib", X, y)
    code = (
        "import sys\n"
        "from gapsvm.workflows.training import train_from_features\n"
        "seen = []\n"
        f"train_from_features({str(path)!r}, cv=2, "
        "log=lambda line: seen.append('sklearn' in sys.modules))\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    seen = ast.literal_eval(out)
    assert seen[:2] == [False, False] and seen[2:] and all(seen[2:])
