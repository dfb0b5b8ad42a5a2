"""Tests for gapsvm.persist: safe .skops round trips, and every refusal a user could meet."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from gapsvm import GapClassifier, ModelLoadError, load_model, save_model
from gapsvm.network.backbone.registry import get_spec
from gapsvm.network.backbone.weights import installed_weights_path, keras_cached_weights_path

SIZE = (128, 64)


class HomeMadeScaler(StandardScaler):
    """A class defined in this test module: nothing gapsvm can vouch for."""


@pytest.fixture(scope="module")
def data(persons_slice, imagenet_ready):
    paths, labels = persons_slice
    return list(paths[::4]), labels[::4], list(paths[1::8])


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("persist-cache")


@pytest.fixture(scope="module")
def fitted(data, model_cache, imagenet_ready) -> GapClassifier:
    X, y, _ = data
    clf = GapClassifier(
        make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)),
        input_size=SIZE, cache_dir=model_cache,
    )
    return clf.fit(X, y)


def test_skops_round_trip_gives_identical_results(fitted, data, tmp_path) -> None:
    _, _, new = data
    path = save_model(fitted, tmp_path / "models" / "m.skops")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["m.skops"]
    loaded = load_model(path)
    assert type(loaded) is GapClassifier and loaded is not fitted
    assert loaded.get_params()["classifier__logisticregression__C"] == 0.5
    assert loaded.input_size == SIZE and loaded.feature_meta_ == fitted.feature_meta_
    # A pathlib cache_dir is stored as text (PosixPath is not a trusted type); the saved
    # model itself is left untouched.
    assert isinstance(fitted.cache_dir, Path) and loaded.cache_dir == str(fitted.cache_dir)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    np.testing.assert_array_equal(loaded.predict(new), fitted.predict(new))
    np.testing.assert_array_equal(loaded.decision_function(new), fitted.decision_function(new))
    np.testing.assert_array_equal(loaded.predict_proba(new), fitted.predict_proba(new))
    np.testing.assert_array_equal(
        loaded.cam(new, target="person", normalize=False),
        fitted.cam(new, target="person", normalize=False),
    )
    # GapClassifier.save is the same thing.
    fitted.save(tmp_path / "again.skops")
    np.testing.assert_array_equal(load_model(tmp_path / "again.skops").predict(new),
                                  fitted.predict(new))


def test_pickle_files_need_trusted(fitted, data, tmp_path) -> None:
    _, _, new = data
    path = save_model(fitted, tmp_path / "m.joblib")
    with pytest.raises(ModelLoadError, match=r"can run arbitrary code.*trusted=True"):
        load_model(path)
    loaded = load_model(path, trusted=True)
    np.testing.assert_array_equal(loaded.predict(new), fitted.predict(new))


def test_custom_class_in_skops_file_is_refused_by_name(data, model_cache, tmp_path) -> None:
    X, y, _ = data
    clf = GapClassifier(make_pipeline(HomeMadeScaler(), LinearSVC()), input_size=SIZE,
                        cache_dir=model_cache).fit(X, y)
    path = save_model(clf, tmp_path / "custom.skops")
    with pytest.raises(ModelLoadError, match=r"does not trust: \S*HomeMadeScaler; refusing"):
        load_model(path)


def test_tree_head_needs_the_user_to_vouch(data, model_cache, tmp_path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y, new = data
    clf = GapClassifier(DecisionTreeClassifier(random_state=0), input_size=SIZE,
                        cache_dir=model_cache).fit(X, y)
    path = save_model(clf, tmp_path / "tree.skops")
    # skops leaves a tree's raw node storage untrusted on purpose (crafted indices can crash
    # predict), so it is refused by default and loads only when the user trusts the file.
    with pytest.raises(ModelLoadError, match=r"sklearn\.tree\._tree\.Tree.*trusted=True"):
        load_model(path)
    loaded = load_model(path, trusted=True)
    np.testing.assert_array_equal(loaded.predict(new), clf.predict(new))


def test_function_reference_in_skops_file_is_refused(fitted, tmp_path) -> None:
    # A file whose pipeline would call os.system on the data: refused before anything runs.
    evil = Pipeline([("run", FunctionTransformer(func=os.system)), ("svc", LinearSVC())])
    fitted_params = fitted.get_params()["classifier"]
    try:
        fitted.set_params(classifier=evil)
        path = save_model(fitted, tmp_path / "evil.skops")
    finally:
        fitted.set_params(classifier=fitted_params)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    msg = str(info.value)
    assert "does not trust" in msg and ".system" in msg, msg


def test_newer_gapsvm_version_is_refused(fitted, tmp_path) -> None:
    meta = fitted.feature_meta_
    try:
        fitted.feature_meta_ = {**meta, "gapsvm_version": "99.1.0"}
        path = save_model(fitted, tmp_path / "future.skops")
    finally:
        fitted.feature_meta_ = meta
    with pytest.raises(ModelLoadError, match=r"written by gapsvm 99\.1\.0, newer than"):
        load_model(path)


def test_weights_hash_mismatch_on_load(data, model_cache, tmp_path, imagenet_ready) -> None:
    X, y, new = data
    clf = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=SIZE,
                        cache_dir=model_cache).fit(X, y)
    spec = get_spec("vgg16")
    ours = installed_weights_path(spec)
    other = ours if ours.is_file() else keras_cached_weights_path(spec)
    # As if the model pointed at a weights file that has since been replaced.
    clf.set_params(weights=str(other))
    path = save_model(clf, tmp_path / "w.skops")
    with pytest.raises(ModelLoadError, match=r"was trained on weights .*random\(seed=0\)"):
        load_model(path)
    # Opting out of the check loads it, and using it then still refuses the wrong weights.
    loaded = load_model(path, check_weights=False)
    with pytest.raises(ValueError, match="use the same weights"):
        loaded.predict(new[:1])


def test_damaged_foreign_and_missing_files(fitted, tmp_path) -> None:
    path = save_model(fitted, tmp_path / "m.skops")
    cut = tmp_path / "cut.skops"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelLoadError, match=r"not a readable \.skops model"):
        load_model(cut)
    import skops.io as sio

    sio.dump(LinearSVC(), tmp_path / "svc.skops")
    with pytest.raises(ModelLoadError, match="holds a LinearSVC, not a GapClassifier"):
        load_model(tmp_path / "svc.skops")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelLoadError, match="holds a dict"):
        load_model(tmp_path / "plain.pkl", trusted=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing.skops")


def test_unfitted_model_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(NotFittedError):
        save_model(GapClassifier(), tmp_path / "m.skops")
    assert list(tmp_path.iterdir()) == []
