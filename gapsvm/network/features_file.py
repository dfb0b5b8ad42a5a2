"""The features file ``gapsvm features`` writes and ``gapsvm train`` reads.

A joblib file of plain data (vectors, labels, paths, errors and the metadata that says which
network computed them), read back with the restricted unpickler: it cannot run code.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

FEATURES_FORMAT = 1


def write_features_file(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a ``gapsvm features`` file atomically (joblib, uncompressed).

    ``payload`` holds ``X``, ``y``, ``class_names``, ``paths`` (relative to ``data_dir``,
    POSIX separators), ``data_dir``, ``errors`` (list of ``{"path", "reason"}``) and ``meta``.

    ``meta`` says what produced the features (it is copied into every model trained on
    them); ``errors`` says which inputs were left out and why, so it sits beside ``meta``,
    not in it.

    Raises
    ------
    OSError
        The file could not be written (disk full, permissions); the message names the file.
        A previous file at ``path`` is left as it was, and no temporary file remains.
    """
    import joblib

    from gapsvm.utils.atomic import atomic_write

    path = os.fspath(path)
    try:
        with atomic_write(path, suffix=".joblib") as tmp, open(tmp, "wb") as fh:
            joblib.dump({"format": FEATURES_FORMAT, **payload}, fh)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot write features file {path!r} ({exc.strerror or exc}); every computed "
            "image is in the feature cache, so a rerun only writes the file",
        ) from None


def read_features_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`write_features_file` (or ``gapsvm features``).

    Raises
    ------
    ValueError
        Not a gapsvm features file, or one from a newer format.
    """
    from gapsvm.utils.safe_load import safe_joblib_load

    try:
        d = safe_joblib_load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable gapsvm features file: {exc}"
        ) from None
    name = repr(os.fspath(path))
    if not isinstance(d, dict) or "X" not in d or not isinstance(d.get("meta"), dict):
        raise ValueError(f"{name} is not a gapsvm features file")
    if not isinstance(d.get("format", 0), int) or d.get("format", 0) > FEATURES_FORMAT:
        raise ValueError(
            f"{name} has features format {d['format']}, newer than this gapsvm "
            f"({FEATURES_FORMAT}); upgrade gapsvm"
        )
    X = d["X"]
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"{name} is damaged: X must be a 2-D array, got {type(X).__name__} "
                         f"{getattr(X, 'shape', '')}")
    for key in ("y", "paths"):
        value = d.get(key)
        if value is not None and (not hasattr(value, "__len__") or len(value) != len(X)):
            got = len(value) if hasattr(value, "__len__") else type(value).__name__
            raise ValueError(
                f"{name} is damaged: {got} {'labels' if key == 'y' else key} for "
                f"{len(X)} feature rows"
            )
    return d
