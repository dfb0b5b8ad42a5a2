"""The features file ``gapsvm features`` writes and ``gapsvm train`` reads.

A joblib file of plain data (vectors, labels, paths, errors and the metadata that says which
network computed them), read back with the restricted unpickler: it cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

FEATURES_FORMAT = 1

#: The metadata a features file must hold: what ``gapsvm train`` copies into the model.
REQUIRED_META = ("backbone", "layer", "input_size", "precision", "weights")

#: Hex digits of an image's cache key (:func:`gapsvm.core.cache.content_key`) a trained model
#: keeps per training image: 80 bits tell images apart, at a third of the full digest's size.
KEY_CHARS = 20


def short_key(key: str | None) -> str | None:
    """A content key as a model keeps it: its first :data:`KEY_CHARS` hex digits."""
    return None if key is None else key[:KEY_CHARS]


def image_keys(paths: Sequence[str | os.PathLike]) -> list[str | None]:
    """Each image file's content key, as the feature cache computes it, shortened.

    This is how a model remembers its training images (``gapsvm train``) and how
    ``gapsvm report`` recognises them: by content, whatever the file is called now.

    Parameters
    ----------
    paths : sequence of path-like

    Returns
    -------
    list of str or None
        The first :data:`KEY_CHARS` hex digits of
        :func:`~gapsvm.core.cache.content_key` of the file's bytes; None for a file that
        cannot be read.
    """
    from gapsvm.core.cache import content_key
    from gapsvm.core.decode import ImageReadError, read_bytes

    out: list[str | None] = []
    for p in paths:
        try:
            out.append(short_key(content_key(read_bytes(p))))
        except ImageReadError:
            out.append(None)
    return out


def write_features_file(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a ``gapsvm features`` file atomically (joblib, uncompressed).

    ``payload`` holds ``X``, ``y``, ``class_names``, ``paths`` (relative to ``data_dir``,
    POSIX separators), ``keys`` (each image's :func:`short_key`, as hashed for the cache, so
    ``gapsvm train`` need not read the images again; files written before gapsvm 0.3 lack
    it), ``data_dir``, ``errors`` (list of ``{"path", "reason"}``) and ``meta``.

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
    _check_meta(name, d["meta"])
    X = d["X"]
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"{name} is damaged: X must be a 2-D array, got {type(X).__name__} "
                         f"{getattr(X, 'shape', '')}")
    for key in ("y", "paths", "keys"):
        value = d.get(key)
        if value is not None and (not hasattr(value, "__len__") or len(value) != len(X)):
            got = len(value) if hasattr(value, "__len__") else type(value).__name__
            raise ValueError(
                f"{name} is damaged: {got} {'labels' if key == 'y' else key} for "
                f"{len(X)} feature rows"
            )
    if d.get("y") is not None:
        _check_labels(name, d["y"])
    return d


def _check_meta(name: str, meta: dict[str, Any]) -> None:
    """Refuse metadata ``gapsvm train`` could not copy into a model, naming what is missing."""
    missing = [k for k in REQUIRED_META if k not in meta]
    weights = meta.get("weights")
    if isinstance(weights, dict):
        missing += [f"weights.{k}" for k in ("name", "sha256")
                    if not isinstance(weights.get(k), str)]
    elif "weights" not in missing:
        missing.append("weights (a dict with name and sha256)")
    if missing:
        raise ValueError(
            f"{name} is damaged: its metadata lacks {', '.join(missing)}; write it again "
            "with gapsvm features"
        )


def _check_labels(name: str, y: Any) -> None:
    """Labels are all text or all numbers: a mix cannot be sorted into classes."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} is damaged: labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind in "USiufb":
        return
    text = [v for v in y if isinstance(v, str)]
    numbers = [v for v in y if isinstance(v, int | float | np.number) and not isinstance(v, bool)]
    if len(text) + len(numbers) < len(y):
        odd = next(v for v in y if not isinstance(v, str | int | float | np.number))
        raise ValueError(f"{name} is damaged: a label is {type(odd).__name__} {odd!r}; labels "
                         "must be text or numbers")
    if text and numbers:
        raise ValueError(
            f"{name} has labels that mix text and numbers (e.g. {text[0]!r} and "
            f"{numbers[0]!r}); classes must be all text or all numbers"
        )
