"""Fixtures the ``test_cli_*`` modules share: one tiny folder-per-class data set (6 real
INRIA crops per class, copied into a temporary folder), its features file and a model trained
on it, all made through the command line. Every command gets ``--cache-dir`` so nothing is
written into the shared GAPSVM_HOME.

A module binds the fixtures it uses (``dataset = _cli.dataset``); they are module-scoped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gapsvm.cli.main import main


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


@pytest.fixture
def dirty_dataset(dataset, tmp_path) -> Path:
    """The data set plus one broken JPEG in ``person/``."""
    root = tmp_path / "dirty"
    shutil.copytree(dataset, root)
    (root / "person" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    return root
