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
    MAX_NAME_BYTES,
    common_root,
    output_name,
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


@pytest.mark.parametrize(
    "path, root, want",
    [
        ("in/..", "in", "in"),  # was "..": one folder up
        ("in", "in", "in"),
        ("in/", "in/", "in"),  # was "": the output folder itself
        ("in/.", "in", "in"),
        ("/", "/", "_"),
        (".", None, "_"),  # was "."
        ("..", None, "_"),  # was ".."
        ("a/../..", "a", "a"),
    ],
)
def test_safe_relpath_never_names_a_folder_above_or_the_folder_itself(path, root, want) -> None:
    assert safe_relpath(path, root) == want


@FAST
@given(parts=st.lists(PARTS, max_size=6), root=st.sampled_from(["in", "in/", "", None, "/"]))
def test_any_relative_name_is_a_plain_path_below_the_output_folder(parts, root) -> None:
    # Not only image files: whatever path it is given, even one ending in ".." or "/".
    rel = safe_relpath(os.path.join("in", *parts), root)
    assert rel and not os.path.isabs(rel)
    assert not set(rel.split("/")) & {"", ".", ".."}


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


def test_unique_names_treat_names_differing_in_case_as_one_file() -> None:
    # One file on macOS and Windows: the second would overwrite the first there.
    assert unique_names(["X.png", "x.png", "x.PNG"]) == ["X.png", "x-2.png", "x-3.PNG"]


def test_unique_names_across_calls_share_the_names_taken() -> None:
    used: set[str] = set()
    assert unique_names(["a.png", "b.png"], used) == ["a.png", "b.png"]
    assert unique_names(["a.png", "c.png"], used) == ["a-2.png", "c.png"]  # a later chunk
    assert unique_names(["a.png"]) == ["a.png"]  # without ``used``: a fresh start


def test_common_root(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    for name in ("a/x.png", "b/x.png", "b/deep/y.png"):
        (tmp_path / name).write_bytes(b"")
    assert common_root([tmp_path / "a" / "x.png"]) == str(tmp_path / "a")  # a file: its folder
    assert common_root([tmp_path / "b"]) == str(tmp_path / "b")  # a folder: itself
    assert common_root([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"]) == str(tmp_path)
    assert common_root([tmp_path / "b", tmp_path / "b" / "deep" / "y.png"]) == str(tmp_path / "b")
    assert common_root([]) is None


def test_inputs_with_one_name_get_distinct_names_below_their_common_root(tmp_path) -> None:
    # The case: a/x.png b/x.png c/x-2.png once gave x, x-2, x-2-2.
    inputs = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "c" / "x-2.png"]
    root = common_root(inputs)
    rels = [safe_relpath(p, root) for p in inputs]
    assert rels == ["a/x.png", "b/x.png", "c/x-2.png"]
    assert [output_name(r, "cam-person") for r in rels] == [
        "a/x.png.cam-person.png", "b/x.png.cam-person.png", "c/x-2.png.cam-person.png"
    ]


def test_output_name_keeps_the_extension_and_folders() -> None:
    assert output_name("x.jpg", "cam-a") == "x.jpg.cam-a.png"
    assert output_name("x.png", "cam-a") == "x.png.cam-a.png"
    assert output_name("sub/x.png", "person", ".npy") == "sub/x.png.person.npy"
    assert output_name("../../x.png", "t") == "x.png.t.png"  # never above the output folder


def test_an_over_long_name_is_cut_with_a_hash_and_keeps_its_ending(tmp_path) -> None:
    a, b = "a" * 240 + "1.png", "a" * 240 + "2.png"
    name_a, name_b = output_name(a, "cam-person"), output_name(b, "cam-person")
    assert name_a != name_b and name_a == output_name(a, "cam-person")  # distinct, stable
    for name in (name_a, name_b):
        assert len(name.encode()) == MAX_NAME_BYTES and name.endswith(".cam-person.png")
        assert name.startswith("a" * 200) and "~" in name
    write_png(tmp_path / name_a, np.zeros((2, 2, 3), np.uint8))  # the file system takes it
    assert _files(tmp_path) == [name_a]
    # Multi-byte characters are cut whole; a long folder name is cut too.
    name = output_name("é" * 150 + "/" + "ü" * 150 + ".jpg", "cam-" + "p" * 300)
    folder, file = name.split("/")
    assert len(folder.encode()) <= MAX_NAME_BYTES and folder.startswith("é" * 100)
    assert len(file.encode()) <= MAX_NAME_BYTES and file.endswith(".png")
    write_png(tmp_path / name, np.zeros((2, 2, 3), np.uint8))
    # A name that fits is left alone, whatever its length in characters.
    fits = "é" * 100 + ".png"  # 204 bytes, plus ".t.png"
    assert output_name(fits, "t") == fits + ".t.png"


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


@pytest.mark.parametrize(
    "image, why",
    [
        (np.full((4, 4), 0.5), "pixels are float64, not uint8 or uint16"),  # was written black
        (np.full((4, 4, 3), 0.5, np.float32), "pixels are float32"),  # was cv2.error
        (np.full((4, 4, 3), 7, np.int64), "pixels are int64"),  # was cv2.error
        (np.zeros((4, 4), bool), "pixels are bool"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(4, 4, 4\) is not \(h, w\) or \(h, w, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
    ],
)
def test_png_refuses_pixels_it_would_write_wrong(tmp_path, image, why) -> None:
    with pytest.raises(ValueError, match=f"cannot write .*x\\.png as PNG: {why}"):
        write_png(tmp_path / "x.png", image)
    assert _files(tmp_path) == []


def test_png_keeps_16_bit_pixels(tmp_path) -> None:
    deep = (np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000)
    write_png(tmp_path / "d.png", deep)
    back = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., ::-1], deep)


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
