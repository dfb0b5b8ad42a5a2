"""Tests for gapsvm.utils.home: where gapsvm (and Keras) keep their files, read from the
environment at each call."""

from __future__ import annotations

import sys

import pytest

from gapsvm.utils.home import gapsvm_home, keras_home


def test_gapsvm_home_is_the_environment_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GAPSVM_HOME", str(tmp_path / "a"))
    assert gapsvm_home() == tmp_path / "a"
    monkeypatch.setenv("GAPSVM_HOME", str(tmp_path / "b"))  # read again at every call
    assert gapsvm_home() == tmp_path / "b"


def test_the_default_cache_and_the_weights_live_below_gapsvm_home(monkeypatch, tmp_path) -> None:
    from gapsvm.core.cache import resolve_cache_dir
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import installed_weights_path

    monkeypatch.setenv("GAPSVM_HOME", str(tmp_path / "home"))
    assert resolve_cache_dir("auto") == tmp_path / "home" / "features"
    assert installed_weights_path(get_spec("vgg16")).parent == tmp_path / "home" / "weights"


def test_gapsvm_home_expands_the_users_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GAPSVM_HOME", "~/gapsvm-data")
    assert gapsvm_home() == tmp_path / "gapsvm-data"


@pytest.mark.skipif(sys.platform == "darwin" or sys.platform == "win32",
                    reason="the XDG folders are the rule on Linux and other Unixes")
@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_without_gapsvm_home_the_user_cache_folder(monkeypatch, tmp_path, unset) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if unset == "absent":
        monkeypatch.delenv("GAPSVM_HOME", raising=False)
    else:
        monkeypatch.setenv("GAPSVM_HOME", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gapsvm_home() == tmp_path / "xdg" / "gapsvm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert gapsvm_home() == tmp_path / ".cache" / "gapsvm"


def test_keras_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    assert keras_home() == tmp_path / "k"
    monkeypatch.setenv("KERAS_HOME", "~/k2")
    assert keras_home() == tmp_path / "k2"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_home() == tmp_path / ".keras"
