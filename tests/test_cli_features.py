"""``gapsvm features`` (gapsvm/cli/features.py): vectors, labels, paths and metadata in one
file; the cache; unreadable files reported, skipped and listed in ``--errors``."""

from __future__ import annotations

import csv
import re

import _cli
import numpy as np
import pytest
from _helpers import run_cli

from gapsvm import GapFeaturizer
from gapsvm.cli.features import write_errors_csv
from gapsvm.network.features_file import read_features_file

work, dataset, features_file, dirty_dataset = (
    _cli.work, _cli.dataset, _cli.features_file, _cli.dirty_dataset)  # shared fixtures


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
    rc, out, _ = run_cli(capsys, "features", dataset, "--out", work / "again.joblib",
                         "--input-size", "128x64", "--cache-dir", work / "cache", "-q")
    assert rc == 0
    assert "12 images" in out and "0 computed, 12 from cache" in out
    assert "not_person (6), person (6)" in out


@pytest.mark.slow
def test_bad_file_is_reported_and_skipped(capsys, dirty_dataset, work, tmp_path) -> None:
    feats = tmp_path / "f.joblib"
    errors_csv = tmp_path / "errors.csv"
    # A longer file from an earlier run is replaced whole, not overwritten in place.
    errors_csv.write_text("path,reason\n" + "old/x.png,old reason\n" * 50, encoding="utf-8")
    argv = ["features", dirty_dataset, "--out", feats, "--input-size", "128x64",
            "--cache-dir", work / "cache", "--errors", errors_csv, "-q"]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 0
    assert "1 file(s) skipped" in err and "person/zz_broken.jpg" in err
    d = read_features_file(feats)
    assert d["X"].shape == (12, 512) and "person/zz_broken.jpg" not in d["paths"]
    assert d["errors"][0]["path"] == "person/zz_broken.jpg"
    with open(errors_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == ["person/zz_broken.jpg"] and rows[0]["reason"]
    assert not list(tmp_path.glob(".tmp*"))
    # --strict: the same work is done and written, but the exit status says something failed.
    feats.unlink()
    rc, _, _ = run_cli(capsys, *argv, "--strict")
    assert rc == 1 and feats.is_file()


def test_errors_csv_is_written_atomically(tmp_path) -> None:
    path = tmp_path / "errors.csv"
    write_errors_csv(path, [{"path": "a/b.png", "reason": "cannot decode"}])
    before = path.read_bytes()
    assert before.decode("utf-8").splitlines() == ["path,reason", "a/b.png,cannot decode"]
    # A write that fails half-way (here: a row with an unknown column) leaves the old file.
    with pytest.raises(ValueError):
        write_errors_csv(path, [{"path": "c.png", "reason": "x"}, {"path": "d", "oops": 1}])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.csv"]
    # No error at all: a header only, so a script can tell "none" from "did not run".
    write_errors_csv(path, [])
    assert path.read_text(encoding="utf-8").splitlines() == ["path,reason"]
