"""Tests for gapsvm.core.scan: class folders and flat folders, what is skipped, errors.
The hostile-input corpus's scan report is in ``test_reliability_reading.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_rgb

from gapsvm.core.decode import read_image
from gapsvm.core.scan import load_directory


def test_load_directory_class_folders_and_flat(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = [write_rgb(tmp_path / "src" / f"crop{i}.png", rng.integers(0, 256, (16, 8, 3), np.uint8))
           for i in range(3)]
    for cls in ("b_cls", "a_cls"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for p in src:
            shutil.copyfile(p, tmp_path / "tree" / cls / p.name)
    (tmp_path / "tree" / "a_cls" / "notes.txt").write_text("not an image")
    (tmp_path / "tree" / ".hidden").mkdir()
    paths, labels, classes = load_directory(tmp_path / "tree")
    assert classes == ["a_cls", "b_cls"]
    assert labels.tolist() == ["a_cls"] * 3 + ["b_cls"] * 3
    assert all(Path(p).suffix == ".png" for p in paths)
    assert [Path(p).parent.name for p in paths] == labels.tolist()

    flat = tmp_path / "flat"
    flat.mkdir()
    for p in src:
        shutil.copyfile(p, flat / p.name)
    paths, labels, classes = load_directory(flat)
    assert labels is None and classes == [] and len(paths) == 3


def test_load_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_directory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_directory(tmp_path / "empty")


def test_persons_fixture_has_800_labelled_crops(persons) -> None:
    paths, labels = persons
    assert len(paths) == 800
    assert sorted(set(labels.tolist())) == ["not_person", "person"]
    assert read_image(paths[0]).shape == (128, 64, 3)
