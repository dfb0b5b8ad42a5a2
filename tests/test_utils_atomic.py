"""Tests for gapsvm.utils.atomic: a file is replaced whole or not at all, and no temporary
file outlives a failed write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gapsvm.utils.atomic import atomic_write


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_successful_write_replaces_the_file(tmp_path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path) as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".tmp-")
        assert path.read_text() == "old"  # readers still see the old file meanwhile
        Path(tmp).write_text("new")
    assert path.read_text() == "new"
    assert _names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("interrupt", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_mid_write_keeps_the_old_file_and_no_temporary_one(tmp_path,
                                                                      interrupt) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(type(interrupt)):
        with atomic_write(path) as tmp, open(tmp, "w") as fh:
            fh.write("half of the new")
            fh.flush()
            raise interrupt
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["out.txt"]


def test_a_failed_first_write_leaves_nothing(tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "out.bin"
    with pytest.raises(ValueError), atomic_write(path) as tmp:
        Path(tmp).write_bytes(b"partial")
        raise ValueError("encoder failed")
    assert not path.exists() and _names(path.parent) == []  # the folder is made, empty


def test_the_temporary_file_ends_like_the_final_one_unless_told(tmp_path) -> None:
    # Some writers choose the format by the name's ending (numpy, OpenCV, joblib).
    with atomic_write(tmp_path / "a.png") as tmp:
        assert tmp.endswith(".png")
    with atomic_write(tmp_path / "b.part", suffix=".joblib") as tmp:
        assert tmp.endswith(".joblib")
    assert _names(tmp_path) == ["a.png", "b.part"]


def test_the_file_gets_the_permissions_a_plain_open_would_give(tmp_path) -> None:
    # mkstemp makes owner-only files; a shared cache must follow the umask instead.
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    with atomic_write(tmp_path / "atomic.txt") as tmp:
        Path(tmp).write_text("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)
    assert mode & stat.S_IRUSR and mode & stat.S_IWUSR
