"""Tests for gapsvm.core.scan: class folders and flat folders, what is skipped, errors.
The hostile-input corpus's scan report is in ``test_reliability_reading.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_rgb

from gapsvm.core.decode import read_image
from gapsvm.core.scan import ScanProblem, list_images, load_directory


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


def test_rarer_jpeg_endings_and_jpeg2000_are_scanned_and_exr_is_reported(tmp_path: Path) -> None:
    for name in ("a.jfif", "b.JPE", "c.jp2", "d.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e.exr").write_bytes(b"v/1\x01")
    problems: list[ScanProblem] = []
    paths = list_images(tmp_path, problems)
    assert [Path(p).name for p in paths] == ["a.jfif", "b.JPE", "c.jp2", "d.jpg"]
    assert [(Path(p.path).name, p.reason.split(" (")[0]) for p in problems] == [
        ("e.exr", "unsupported image format .exr")
    ]
    assert "OpenEXR" in problems[0].reason and "16-bit PNG or TIFF" in problems[0].reason


@pytest.mark.parametrize("pass_problems", [True, False])
def test_folder_of_only_unsupported_files_names_each_file_and_reason(
    tmp_path: Path, pass_problems: bool
) -> None:
    names = ("phone.heic", "render.exr", "scan.psd")
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    problems: list[ScanProblem] | None = [] if pass_problems else None
    with pytest.raises(ValueError) as info:
        load_directory(tmp_path, problems)
    msg = str(info.value)
    assert msg.startswith(f"no images found in {str(tmp_path)!r}")
    assert "3 file(s) could not be used:" in msg
    lines = msg.splitlines()[1:]
    assert len(lines) == 3
    for name, line in zip(names, lines, strict=True):
        ext = Path(name).suffix
        assert line.startswith(f"  {tmp_path / name}: unsupported image format {ext}"), line


def test_a_stray_image_beside_class_folders_is_refused_naming_it(tmp_path: Path) -> None:
    # Before: the stray file made the folder flat, so 5 labelled images lost their labels.
    img = np.zeros((8, 8, 3), np.uint8)
    for cls, n in (("cat", 3), ("dog", 2)):
        for i in range(n):
            write_rgb(tmp_path / "data" / cls / f"{cls}{i}.png", img)
    (tmp_path / "data" / "README.txt").write_text("not an image: no problem")
    _, labels, classes = load_directory(tmp_path / "data")
    assert classes == ["cat", "dog"] and labels.tolist() == ["cat"] * 3 + ["dog"] * 2
    write_rgb(tmp_path / "data" / "stray.png", img)
    with pytest.raises(ValueError) as info:
        load_directory(tmp_path / "data", [])
    msg = str(info.value)
    assert "stray.png" in msg and "class folders (cat, dog)" in msg
    assert "move each loose image into its class folder" in msg and "README" not in msg


def test_empty_sub_folders_do_not_make_a_flat_folder_ambiguous(tmp_path: Path) -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    for name in ("a.png", "b.png"):
        write_rgb(tmp_path / "flat" / name, img)
    (tmp_path / "flat" / "notes").mkdir()
    (tmp_path / "flat" / "notes" / "x.txt").write_text("no images here")
    paths, labels, classes = load_directory(tmp_path / "flat")
    assert labels is None and classes == [] and [Path(p).name for p in paths] == ["a.png", "b.png"]


def test_list_images_leaves_out_excluded_folders(tmp_path: Path) -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    write_rgb(tmp_path / "in" / "a.png", img)
    write_rgb(tmp_path / "in" / "sub" / "b.png", img)
    write_rgb(tmp_path / "in" / "cams" / "a.png.cam-x.png", img)
    (tmp_path / "in" / "cams" / "old.heic").write_bytes(b"x")
    problems: list[ScanProblem] = []
    # Spelled differently from the scanned folder: compared as real paths.
    cams = str(tmp_path / "in" / "sub" / ".." / "cams")
    got = list_images(tmp_path / "in", problems, exclude=[cams])
    assert [Path(p).relative_to(tmp_path / "in").as_posix() for p in got] == ["a.png", "sub/b.png"]
    assert problems == []
    assert len(list_images(tmp_path / "in")) == 3
