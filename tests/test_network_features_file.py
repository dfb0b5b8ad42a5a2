"""Tests for gapsvm.network.features_file: the file ``gapsvm features`` writes and
``gapsvm train`` reads."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from _network import fitted_featurizer

from gapsvm.network.features_file import read_features_file, write_features_file


@pytest.mark.slow
def test_features_file_round_trip(tmp_path, persons_slice, imagenet_ready) -> None:
    fz = fitted_featurizer()
    X = fz.transform(list(persons_slice[0][:3]))  # the first three of `eight` elsewhere
    payload = {
        "X": X, "y": np.array(["a", "b", "a"]), "class_names": ["a", "b"],
        "paths": ["a/1.png", "b/2.png", "a/3.png"], "data_dir": str(tmp_path),
        "errors": [{"path": "x.jpg", "reason": "empty file (0 bytes)"}],
        "meta": fz.metadata(),
    }
    f = tmp_path / "sub dir" / "feats.joblib"
    write_features_file(f, payload)
    d = read_features_file(f)
    np.testing.assert_array_equal(d["X"], X)
    assert d["y"].tolist() == ["a", "b", "a"] and d["paths"] == payload["paths"]
    assert d["meta"]["input_size"] == "128x64" and d["meta"]["weights"]["name"] == "imagenet"
    assert d["meta"]["preprocess_version"] >= 1 and "gapsvm_version" in d["meta"]
    assert [p.name for p in f.parent.iterdir()] == ["feats.joblib"]  # no temporary left


def test_features_file_errors(tmp_path) -> None:
    joblib.dump({"something": 1}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="is not a gapsvm features file"):
        read_features_file(tmp_path / "other.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable gapsvm features file"):
        read_features_file(tmp_path / "junk.joblib")
    joblib.dump({"format": 99, "X": np.zeros((1, 2)), "meta": {}}, tmp_path / "new.joblib")
    with pytest.raises(ValueError, match="upgrade gapsvm"):
        read_features_file(tmp_path / "new.joblib")
    with pytest.raises(FileNotFoundError):
        read_features_file(tmp_path / "missing.joblib")


def _meta() -> dict:
    return {"backbone": "vgg16", "layer": "block5_conv3", "stride": 16, "input_size": "32x32",
            "precision": "float32", "weights": {"name": "imagenet", "sha256": "ab" * 32}}


def _dump(path, y=None, meta=None):
    joblib.dump({"format": 1, "X": np.zeros((4, 3), np.float32), "y": y,
                 "paths": [f"{i}.png" for i in range(4)], "meta": meta or _meta()}, path)
    return path


@pytest.mark.parametrize(
    "drop, named",
    [(("backbone",), "backbone"), (("layer", "precision"), "layer, precision"),
     (("weights",), "weights")],
)
def test_missing_metadata_keys_are_named(tmp_path, drop, named) -> None:
    meta = {k: v for k, v in _meta().items() if k not in drop}
    f = _dump(tmp_path / "f.joblib", meta=meta)
    with pytest.raises(ValueError) as info:
        read_features_file(f)
    assert str(info.value) == (f"{str(f)!r} is damaged: its metadata lacks {named}; write it "
                               "again with gapsvm features")


def test_weights_without_hash_are_named(tmp_path) -> None:
    f = _dump(tmp_path / "f.joblib", meta={**_meta(), "weights": {"name": "imagenet"}})
    with pytest.raises(ValueError, match=r"its metadata lacks weights\.sha256;"):
        read_features_file(f)


def test_labels_mixing_text_and_numbers_are_refused(tmp_path) -> None:
    f = _dump(tmp_path / "f.joblib", y=np.array(["cat", 1, "dog", 2], dtype=object))
    with pytest.raises(ValueError) as info:
        read_features_file(f)
    assert str(info.value) == (f"{str(f)!r} has labels that mix text and numbers (e.g. 'cat' "
                               "and 1); classes must be all text or all numbers")
    g = _dump(tmp_path / "g.joblib", y=np.array(["cat", None, "dog", "cat"], dtype=object))
    with pytest.raises(ValueError, match="a label is NoneType None; labels must be text or "):
        read_features_file(g)


@pytest.mark.parametrize(
    "y", [np.array(["a", "b", "a", "b"]), np.array([0, 1, 0, 1]),
          np.array(["a", "b", "a", "b"], dtype=object), np.array([0, 1.5, 0, 1.5], dtype=object)],
)
def test_labels_all_text_or_all_numbers_are_read(tmp_path, y) -> None:
    d = read_features_file(_dump(tmp_path / "f.joblib", y=y))
    assert d["y"].tolist() == y.tolist()


def test_a_key_per_row_or_the_file_is_damaged(tmp_path) -> None:
    f = tmp_path / "f.joblib"
    joblib.dump({"format": 1, "X": np.zeros((4, 3), np.float32), "y": None,
                 "keys": ["ab" * 10] * 3, "meta": _meta()}, f)
    with pytest.raises(ValueError, match=r"is damaged: 3 keys for 4 feature rows"):
        read_features_file(f)
