"""``gapsvm features`` (gapsvm/cli/features.py): vectors, labels, paths and metadata in one
file; the cache; unreadable files reported, skipped and listed in ``--errors``."""

from __future__ import annotations

import csv
import os
import re
import subprocess

import _cli
import numpy as np
import pytest
from _helpers import run_cli, tool, write_rgb

from gapsvm import GapFeaturizer
from gapsvm.cli import features as features_cli
from gapsvm.cli.features import precision_hint, write_errors_csv
from gapsvm.network.features_file import image_keys, read_features_file

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
    # Each image's content key, as hashed for the cache: train need not read them again.
    assert d["keys"] == image_keys(files) and None not in d["keys"]
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


# -- what a user sees on standard error (issue 15, items 1 and 8) -------------------------
def _fake_cpuinfo(tmp_path, flags: str):
    path = tmp_path / f"cpuinfo-{len(flags)}"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("flags, precision, hardware", [
    ("amx_bf16 amx_tile avx512_bf16", "float32", "amx_bf16"),
    ("avx512f avx512_bf16", "float32", "avx512_bf16"),
    ("avx512f", "float32", None),
    ("amx_bf16 avx512_bf16", "bfloat16", None),  # already the fast choice
])
def test_precision_hint_follows_the_cpu(tmp_path, flags, precision, hardware) -> None:
    hint = precision_hint(precision, _fake_cpuinfo(tmp_path, flags))
    if hardware is None:
        assert hint is None
    else:
        assert hardware in hint and hint.endswith("--precision bfloat16")
        assert "benchmarks/README.md" in hint and not re.search(r"\d+(\.\d+)?x", hint)


@pytest.mark.slow
@pytest.mark.parametrize("flags, quiet, n_hints",
                         [("avx512_bf16", [], 1), ("avx2", [], 0), ("avx512_bf16", ["-q"], 0)])
def test_hint_is_printed_once_per_run(capsys, monkeypatch, tmp_path, dataset, features_file,
                                      work, flags, quiet, n_hints) -> None:
    # -q asks for errors only: no hint either
    monkeypatch.setattr(features_cli, "CPUINFO", str(_fake_cpuinfo(tmp_path, flags)))
    rc, _, err = run_cli(capsys, "features", dataset, "--out", tmp_path / "f.joblib",
                         "--input-size", "128x64", "--cache-dir", work / "cache", *quiet,
                         "--batch-size", "4")
    assert rc == 0
    assert err.count("--precision bfloat16") == n_hints


def _stderr_lines(argv: list[str], env_home) -> list[str]:
    env = {**os.environ, "GAPSVM_HOME": str(env_home)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has
    res = subprocess.run([tool("gapsvm"), *argv], capture_output=True, text=True, env=env,
                         timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    return res.stderr.splitlines()


@pytest.mark.slow
def test_stderr_holds_only_gapsvm_lines_unless_verbose(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        write_rgb(tmp_path / "imgs" / f"{i}.png", rng.integers(0, 256, (48, 40, 3), np.uint8))
    argv = ["features", str(tmp_path / "imgs"), "--weights", "none", "--input-size", "64x64",
            "--out", str(tmp_path / "f.joblib")]
    lines = _stderr_lines([*argv, "--cache-dir", str(tmp_path / "c1")], tmp_path / "home")
    # The only line: the bfloat16 hint, on a CPU where it applies (this machine's own flags).
    hint = precision_hint("float32")
    assert lines == ([f"gapsvm features: {hint}"] if hint else [])
    # -v lets TensorFlow's start-up log through: there is one to hide.
    verbose = _stderr_lines([*argv, "--cache-dir", str(tmp_path / "c2"), "-v"], tmp_path / "home")
    assert len(verbose) > len(lines)
