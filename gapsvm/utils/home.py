"""Where gapsvm keeps its files: ``$GAPSVM_HOME``, else the platform's user cache folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def gapsvm_home() -> Path:
    """Return gapsvm's data folder (weights and the default feature cache live below it).

    ``$GAPSVM_HOME`` wins; otherwise ``~/Library/Caches/gapsvm`` on macOS,
    ``%LOCALAPPDATA%\\gapsvm`` on Windows and ``$XDG_CACHE_HOME/gapsvm`` (default
    ``~/.cache/gapsvm``) elsewhere.
    """
    env = os.environ.get("GAPSVM_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "gapsvm"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "gapsvm"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gapsvm"


def keras_home() -> Path:
    """Return Keras' own cache root (``$KERAS_HOME``, default ``~/.keras``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
