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
