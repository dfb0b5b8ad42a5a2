"""Tests for gapsvm.core.output: output names that stay inside their folder and never
collide, and the PNG and ``.npy`` files gapsvm writes (RGB in memory, BGR on disk, atomic)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapsvm.core import output
from gapsvm.core.output import (
    path_inside,
    safe_label,
    safe_relpath,
    unique_names,
    write_npy,
    write_png,
)

FAST = settings(max_examples=100)  # the profile in conftest.py sets the rest

#: Path parts as a crafted file or label might hold them.
PARTS = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b.png", "x y", "nön", "~", "/"]),
    st.text(min_size=1, max_size=8),
)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "label, want",
    [
        ("person", "person"),
        ("../../x", "_.._x"),
        ("a/b\\c", "a_b_c"),
        ("<img src=x onerror=alert(1)>", "_img src_x onerror_alert_1_"),
        ("nön é", "nön é"),  # letters of any script are kept
        ("", "_"),
        ("...", "_"),
        (3, "3"),
    ],
)
def test_safe_label(label, want) -> None:
    assert safe_label(label) == want


@FAST
@given(label=st.text(max_size=30))
def test_a_label_is_always_one_ordinary_file_name_part(label: str) -> None:
    name = safe_label(label)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")


def test_safe_relpath() -> None:
    root = os.path.join("data", "in")
    assert safe_relpath(os.path.join(root, "sub", "x.png"), root) == "sub/x.png"
    assert safe_relpath(os.path.join(root, "..", "..", "x.png"), root) == "x.png"
    assert safe_relpath(os.path.join("sub", "x.png"), None) == "x.png"
    assert safe_relpath(os.path.join("sub", "x.png"), "") == "x.png"
    assert safe_relpath("/etc/passwd", "/srv/in") == "etc/passwd"  # inside, wherever it came from


@FAST
@given(parts=st.lists(PARTS, max_size=6), name=st.sampled_from(["x.png", "..x.png", "a b.jpg"]))
def test_relative_names_never_leave_the_output_folder(tmp_path_factory, parts, name) -> None:
    # Inputs are image files: the path ends in a file name, whatever folders lead to it.
    out = tmp_path_factory.getbasetemp() / "out"
    rel = safe_relpath(os.path.join("in", *parts, name), "in")
    assert rel.endswith(name)
    assert ".." not in Path(rel).parts and not os.path.isabs(rel)
    if "\x00" not in rel:  # a NUL cannot be in a path on disk at all
        assert path_inside(out, rel).resolve().is_relative_to(out.resolve())


def test_path_inside_refuses_a_symbolic_link_out_of_the_folder(tmp_path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    assert path_inside(out, "sub/x.png") == out / "sub" / "x.png"
    with pytest.raises(ValueError, match=r"refusing to write .*x\.png: outside the output folder"):
        path_inside(out, "link/x.png")
    with pytest.raises(ValueError, match="outside the output folder"):
        path_inside(out, "../x.png")


def test_unique_names() -> None:
    assert unique_names(["x.png", "y.png", "x.png", "x.png"]) == [
        "x.png", "y.png", "x-2.png", "x-3.png"
    ]
    # An input already called x-2.png keeps its name; the repeat takes the next free one.
    assert unique_names(["x.png", "x-2.png", "x.png"]) == ["x.png", "x-2.png", "x-3.png"]
    assert unique_names(["x.png", "x.png", "x-2.png"]) == ["x.png", "x-2.png", "x-2-2.png"]
    assert unique_names(["a", "a"]) == ["a", "a-2"]
    assert unique_names([]) == []


@FAST
@given(names=st.lists(st.sampled_from(["x.png", "x-2.png", "x-3.png", "y", "y-2"]),
                      max_size=12))
def test_unique_names_are_distinct_and_firsts_keep_theirs(names: list[str]) -> None:
    got = unique_names(names)
    assert len(got) == len(names) and len(set(got)) == len(got)
    for i, name in enumerate(names):
        if name not in names[:i] and name not in got[:i]:
            assert got[i] == name


# ------------------------------------------------------------------ files


def test_png_is_bgr_on_disk_and_rgb_in_memory(tmp_path) -> None:
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 30  # R, G, B
    rgb[2, 3] = (1, 2, 3)
    path = tmp_path / "new" / "folder" / "x.png"
    write_png(path, rgb)
    on_disk = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # OpenCV reads BGR
    assert on_disk.shape == (5, 7, 3) and on_disk.dtype == np.uint8
    assert tuple(on_disk[0, 0]) == (30, 100, 200) and tuple(on_disk[2, 3]) == (3, 2, 1)
    np.testing.assert_array_equal(on_disk[..., ::-1], rgb)
    assert _files(tmp_path / "new" / "folder") == ["x.png"]


def test_png_of_a_grayscale_image(tmp_path) -> None:
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    write_png(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED), gray)


def test_a_png_that_cannot_be_encoded_leaves_no_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "x.png"
    write_png(path, np.full((4, 4, 3), 9, np.uint8))
    before = path.read_bytes()
    monkeypatch.setattr(output.cv2, "imencode", lambda ext, img: (False, None))
    with pytest.raises(OSError, match=r"cannot encode .*x\.png as PNG"):
        write_png(path, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(OSError, match="cannot encode"):
        write_png(tmp_path / "new.png", np.zeros((4, 4, 3), np.uint8))
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["x.png"]  # neither the new file nor a temporary one


def test_npy_keeps_its_name_and_its_array(tmp_path) -> None:
    a = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    write_npy(tmp_path / "m" / "cam.map", a)  # no ".npy" appended, unlike numpy.save
    back = np.load(tmp_path / "m" / "cam.map")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, a)
    assert _files(tmp_path / "m") == ["cam.map"]


def test_npy_refuses_objects_and_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "x.npy"
    write_npy(path, np.arange(3))
    before = path.read_bytes()
    with pytest.raises(ValueError):  # a pickle in an .npy could run code when read
        write_npy(path, np.array([{"a": 1}], dtype=object))
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["x.npy"]
