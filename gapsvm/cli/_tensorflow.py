"""Keeping TensorFlow's start-up lines off the command line's standard error.

TensorFlow's C++ runtime writes notices while it loads (oneDNN, "Could not find cuda
drivers", each twice) and when it first looks for devices ("failed call to cuInit" on a
machine without a GPU, which reads like a failure). The lines written before absl's logging
is set up ignore ``TF_CPP_MIN_LOG_LEVEL``, so they are held back one level lower: the first
import of ``tensorflow`` in the process (wherever it comes from, ``keras`` included) and its
device discovery run with file descriptor 2 captured. The captured lines are dropped when the
import succeeds and written to standard error when it fails; with ``-v`` nothing is held
back and TensorFlow logs at its most verbose.

Nothing here imports TensorFlow: a command that never builds a network never loads it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from typing import Any

__all__ = [
    "quiet_tensorflow",
]


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with descriptor 2 captured."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        from gapsvm.core._fd2 import call_capturing_fd2

        def load() -> None:
            self._loader.exec_module(module)
            # Device discovery logs the cuInit line; done here, once, while it is captured.
            module.config.list_physical_devices()

        try:
            # Every captured line is "wanted" (dropped) on success; on failure they are all
            # written back to standard error, beside the exception.
            call_capturing_fd2(load, lambda line: True)
        finally:
            # From here on the module is TensorFlow's own, as if imported plainly.
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader


class _Finder(importlib.abc.MetaPathFinder):
    """Serves the first ``import tensorflow`` through :class:`_QuietLoader`, then retires."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        _remove_finder()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def quiet_tensorflow(verbose: bool) -> None:
    """Set TensorFlow's logging for this run, before TensorFlow is imported.

    Parameters
    ----------
    verbose : bool
        False (the default of the command line): ``TF_CPP_MIN_LOG_LEVEL=2`` unless the
        environment sets it, and the start-up lines of the first TensorFlow import held back
        (shown only if that import fails). True (``-v``): everything TensorFlow logs is shown.
    """
    if verbose:
        _remove_finder()
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
