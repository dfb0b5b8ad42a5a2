"""Tests for gapsvm.estimator.persist: safe .skops round trips, files saved by gapsvm 0.1, and
every refusal a user could meet."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _helpers import fresh_python, head_only_model, imagenet_weights_file
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from gapsvm import GapClassifier, GapFeaturizer, GapHead, ModelLoadError, load_model, save_model
from gapsvm.estimator.persist import GAPSVM_TYPES, trusted_types, untrusted_types_of

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_pickle_files_need_trusted(fitted, data, tmp_path) -> None:
    _, _, new = data
    path = save_model(fitted, tmp_path / "m.joblib")
    with pytest.raises(ModelLoadError, match=r"can run arbitrary code.*trusted=True"):
        load_model(path)
    loaded = load_model(path, trusted=True)
    np.testing.assert_array_equal(loaded.predict(new), fitted.predict(new))


@pytest.mark.slow
def test_custom_class_in_skops_file_is_refused_by_name(data, model_cache, tmp_path) -> None:
    X, y, _ = data
    clf = GapClassifier(make_pipeline(HomeMadeScaler(), LinearSVC()), input_size=SIZE,
                        cache_dir=model_cache).fit(X, y)
    path = save_model(clf, tmp_path / "custom.skops")
    with pytest.raises(ModelLoadError, match=r"does not trust: \S*HomeMadeScaler; refusing"):
        load_model(path)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_newer_gapsvm_version_is_refused(fitted, tmp_path) -> None:
    meta = fitted.feature_meta_
    try:
        fitted.feature_meta_ = {**meta, "gapsvm_version": "99.1.0"}
        path = save_model(fitted, tmp_path / "future.skops")
    finally:
        fitted.feature_meta_ = meta
    with pytest.raises(ModelLoadError, match=r"written by gapsvm 99\.1\.0, newer than"):
        load_model(path)


@pytest.mark.slow
def test_weights_hash_mismatch_on_load(data, model_cache, tmp_path, imagenet_ready) -> None:
    X, y, new = data
    clf = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=SIZE,
                        cache_dir=model_cache).fit(X, y)
    other = imagenet_weights_file()
    # As if the model pointed at a weights file that has since been replaced.
    clf.set_params(weights=str(other))
    path = save_model(clf, tmp_path / "w.skops")
    with pytest.raises(ModelLoadError, match=r"was trained on weights .*random\(seed=0\)"):
        load_model(path)
    # Opting out of the check loads it, and using it then still refuses the wrong weights.
    loaded = load_model(path, check_weights=False)
    with pytest.raises(ValueError, match="use the same weights"):
        loaded.predict(new[:1])


@pytest.mark.slow
def test_loading_checks_the_weights_without_loading_tensorflow(fitted, tmp_path) -> None:
    # Fitting built the network and recorded the ImageNet weights' identity (keyed by the
    # file's bytes): a fresh process checks the hash from that record, TensorFlow unloaded.
    path = save_model(fitted, tmp_path / "m.skops")
    code = ("import sys\nfrom gapsvm import load_model\nm = load_model(sys.argv[1])\n"
            "print(m.featurizer().weights_id_['sha256'], 'tensorflow' in sys.modules)")
    res = fresh_python(code, str(path))
    assert res.stdout.split() == [fitted.feature_meta_["weights"]["sha256"], "False"]


@pytest.mark.slow
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


def test_gapsvm_types_are_named_without_importing_them() -> None:
    # Each name resolves to gapsvm's class (the 0.1 names through gapsvm._legacy), and each
    # class's current name is there: a class moved without updating the list would fail here.
    classes = (GapClassifier, GapFeaturizer, GapHead)
    for name in GAPSVM_TYPES:
        module, _, attr = name.rpartition(".")
        assert getattr(importlib.import_module(module), attr) in classes, name
    for cls in classes:
        assert f"{cls.__module__}.{cls.__qualname__}" in GAPSVM_TYPES
    assert set(GAPSVM_TYPES) <= trusted_types()
    assert {"gapsvm.estimator.GapClassifier", "gapsvm.featurizer.GapFeaturizer",
            "gapsvm.head.GapHead"} <= set(GAPSVM_TYPES)


#: gapsvm 0.1's flat module for each class's current module.
OLD_MODULES = {
    "gapsvm.estimator.classifier": "gapsvm.estimator",
    "gapsvm.network.featurizer": "gapsvm.featurizer",
    "gapsvm.core.head": "gapsvm.head",
}


def _as_saved_by_gapsvm_01(path: Path, out: Path) -> set[str]:
    """Rewrite a .skops file's schema with 0.1's module names; return the names replaced."""
    replaced: set[str] = set()

    def rename(node):
        if isinstance(node, dict):
            if node.get("__module__") in OLD_MODULES:
                replaced.add(f"{node['__module__']}.{node['__class__']}")
                node = {**node, "__module__": OLD_MODULES[node["__module__"]]}
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        return node

    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "schema.json":
                data = json.dumps(rename(json.loads(data))).encode()
            zout.writestr(item, data)
    return replaced


@pytest.mark.slow
def test_model_saved_under_the_old_type_names_still_loads(fitted, data, tmp_path) -> None:
    import skops.io as sio

    _, _, new = data
    path = save_model(fitted, tmp_path / "now.skops")
    old = tmp_path / "saved by 0.1.skops"
    replaced = _as_saved_by_gapsvm_01(path, old)
    assert "gapsvm.estimator.classifier.GapClassifier" in replaced
    found = set(sio.get_untrusted_types(file=old))
    assert "gapsvm.estimator.GapClassifier" in found
    assert not {t for t in found if t.startswith("gapsvm.")} & replaced  # no new name left
    loaded = load_model(old)
    assert type(loaded) is GapClassifier and loaded.feature_meta_ == fitted.feature_meta_
    np.testing.assert_array_equal(loaded.decision_function(new), fitted.decision_function(new))


def test_skops_file_renamed_joblib_is_read_the_safe_way(tmp_path) -> None:
    model = head_only_model()
    renamed = tmp_path / "m.joblib"
    save_model(model, tmp_path / "m.skops").rename(renamed)
    for trusted in (False, True):
        loaded = load_model(renamed, trusted=trusted, check_weights=False)
        np.testing.assert_array_equal(loaded.head_.classifier_.coef_,
                                      model.head_.classifier_.coef_)


def test_skops_file_renamed_joblib_keeps_refusing_untrusted_types(tmp_path) -> None:
    model = head_only_model(make_pipeline(HomeMadeScaler(), LinearSVC()))
    renamed = tmp_path / "m.joblib"
    save_model(model, tmp_path / "m.skops").rename(renamed)
    with pytest.raises(ModelLoadError, match=r"HomeMadeScaler; refusing to load it"):
        load_model(renamed, check_weights=False)


@pytest.mark.parametrize("content", [b"garbage\n", b"PK\x03\x04 cut zip", b""])
def test_unreadable_joblib_with_trusted_is_a_one_line_model_error(tmp_path, content) -> None:
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_model(bad, trusted=True, check_weights=False)
    msg = str(info.value)
    assert msg.startswith(f"{bad} is neither a .skops model nor a readable joblib/pickle file: ")
    assert "\n" not in msg


def test_model_file_of_another_name_must_be_a_skops_zip(tmp_path) -> None:
    other = tmp_path / "m.model"
    other.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelLoadError, match=r"m\.model is not a readable \.skops model \(not "
                                             r"a zip archive\); a pickle-based model must be "
                                             r"named \.joblib or \.pkl or \.pickle"):
        load_model(other, trusted=True, check_weights=False)


def test_a_model_that_would_load_only_when_trusted_is_not_written_on_request(tmp_path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    forest = head_only_model(RandomForestClassifier(n_estimators=3, random_state=0))
    assert untrusted_types_of(forest) == ["sklearn.tree._tree.Tree"]
    with pytest.raises(ValueError) as info:
        save_model(forest, tmp_path / "rf.skops", require_safe_load=True)
    assert str(info.value).startswith(
        f"not writing {tmp_path / 'rf.skops'}: the RandomForestClassifier head holds "
        "sklearn.tree._tree.Tree, which a .skops file loads only with --trusted")
    assert list(tmp_path.iterdir()) == []
    # What the refusal says to do works: a .joblib file, loaded by a user who trusts it.
    path = save_model(forest, tmp_path / "rf.joblib", require_safe_load=True)
    loaded = load_model(path, trusted=True, check_weights=False)
    X = np.abs(np.random.default_rng(1).normal(size=(5, 8))).astype(np.float32)
    np.testing.assert_array_equal(loaded.head_.predict_proba(X), forest.head_.predict_proba(X))
    # A linear head holds nothing untrusted, and without the request nothing is checked.
    assert untrusted_types_of(head_only_model()) == []
    save_model(head_only_model(), tmp_path / "linear.skops", require_safe_load=True)
    save_model(forest, tmp_path / "api.skops")
    with pytest.raises(ModelLoadError, match=r"sklearn\.tree\._tree\.Tree"):
        load_model(tmp_path / "api.skops", check_weights=False)
