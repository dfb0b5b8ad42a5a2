"""Saving and loading fitted models without running code from the file.

``.skops`` files (the default) are loaded with :mod:`skops.io`, which rebuilds objects from a
schema instead of unpickling: only types on :func:`trusted_types` (gapsvm's estimators and
scikit-learn's) are accepted, and any other type is refused by name. joblib/pickle files
execute code on load; they are read only with ``trusted=True``. What a file holds decides how
it is read, not its name: a ``.skops`` archive renamed ``.joblib`` is still read the safe way.

The Keras backbone is never stored: a model stores its backbone name, weights reference and
the weights' content hash, and :func:`load_model` identifies the weights it would use now and
checks the hash. That identification builds no network when the weights' identity is on
record (:func:`gapsvm.network.backbone.weights.recorded_identity`, keyed by the sha256 of the
weights file's bytes), so loading a model does not import TensorFlow.
"""

from __future__ import annotations

import os
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from gapsvm._version import __version__
from gapsvm.utils.atomic import atomic_write

__all__ = [
    "GAPSVM_TYPES",
    "ModelLoadError",
    "load_model",
    "save_model",
    "trusted_types",
    "untrusted_types_of",
]


class ModelLoadError(ValueError):
    """A model file is unsafe, damaged, from a newer gapsvm, or its weights do not match."""


#: gapsvm's own classes a model file may hold, by name, so this module imports none of them
#: (``GapClassifier.save`` calls it). gapsvm 0.1 saved them under its flat modules' names;
#: those still load, through the old import paths ``gapsvm._legacy`` keeps.
GAPSVM_TYPES = (
    "gapsvm.estimator.classifier.GapClassifier",
    "gapsvm.network.featurizer.GapFeaturizer",
    "gapsvm.core.head.GapHead",
    "gapsvm.estimator.GapClassifier",
    "gapsvm.featurizer.GapFeaturizer",
    "gapsvm.head.GapHead",
)


#: Names of pickle-based model files (joblib's); every other model file is ``.skops``.
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")

#: The class :func:`load_model` returns (or a subclass of it).
_CLASSIFIER = "gapsvm.estimator.classifier.GapClassifier"


@lru_cache(maxsize=1)
def trusted_types() -> frozenset[str]:
    """Fully qualified names of the types a ``.skops`` model file may contain.

    gapsvm's estimators (:data:`GAPSVM_TYPES`, their current and their 0.1 names), every
    scikit-learn estimator (``sklearn.utils.all_estimators``) and the few numpy/scipy
    helpers their fitted state uses.
    """
    from sklearn.utils import all_estimators

    names = set(GAPSVM_TYPES)
    for _, cls in all_estimators():
        names.add(f"{cls.__module__}.{cls.__qualname__}")
    names.update(
        {
            "numpy.dtype", "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64",
            "numpy.int32", "numpy.bool_", "numpy.str_", "numpy.random.mtrand.RandomState",
            "builtins.tuple", "builtins.list", "builtins.dict", "builtins.set",
            "builtins.frozenset", "builtins.slice", "builtins.NoneType",
            "collections.OrderedDict", "sklearn.utils._bunch.Bunch",
            "sklearn.pipeline.Pipeline",
        }
    )  # fmt: skip
    return frozenset(names)


def _is_classifier(model: Any) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" == _CLASSIFIER for c in type(model).__mro__)


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def _with_str_paths(model: Any) -> Any:
    # A pathlib parameter (cache_dir=Path(...)) would be stored as a PosixPath, a type load
    # refuses, and a WindowsPath cannot even be rebuilt elsewhere: store such values as text,
    # on a shallow copy so the caller's model is left as it was.
    import copy

    params = model.get_params(deep=False)
    paths = {k: os.fspath(v) for k, v in params.items() if isinstance(v, os.PathLike)}
    if not paths:
        return model
    model = copy.copy(model)
    for k, v in paths.items():
        setattr(model, k, v)
    return model


def untrusted_types_of(model: Any) -> list[str]:
    """The types of ``model`` that a ``.skops`` file would hold outside :func:`trusted_types`.

    A model that holds any loads only with ``trusted=True``: for example a tree ensemble's
    ``sklearn.tree._tree.Tree``, which skops leaves untrusted on purpose (its node arrays are
    indexed without bounds checks, so a crafted file can crash the process).

    Returns
    -------
    list of str
        Fully qualified type names, sorted; empty when the model loads safely.
    """
    import skops.io as sio

    found = sio.get_untrusted_types(data=sio.dumps(_with_str_paths(model)))
    allowed = trusted_types()
    return sorted(t for t in found if t not in allowed)


def save_model(model: Any, path: str | os.PathLike, *, require_safe_load: bool = False) -> Path:
    """Save a fitted :class:`~gapsvm.GapClassifier` atomically.

    Parameters
    ----------
    model : GapClassifier
    path : str or path-like
        ``.skops`` (recommended, safe to load) or ``.joblib`` / ``.pkl`` (pickle: only load
        files you trust).
    require_safe_load : bool, default=False
        Refuse to write a ``.skops`` file that :func:`load_model` would load only with
        ``trusted=True`` (:func:`untrusted_types_of`), rather than leave the user a model that
        every later command refuses. ``gapsvm train`` sets it.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``require_safe_load`` and the model holds untrusted types; nothing is written.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    model = _with_str_paths(model)
    path = Path(path)
    if require_safe_load and path.suffix not in _PICKLE_SUFFIXES:
        bad = untrusted_types_of(model)
        if bad:
            head = type(getattr(model, "classifier", model)).__name__
            raise ValueError(
                f"not writing {path}: the {head} head holds {', '.join(bad)}, which a .skops "
                "file loads only with --trusted (skops leaves it untrusted on purpose: a "
                "crafted file could crash the process), so predict would refuse the model; "
                "save it as .joblib and load it with --trusted, or use a linear head "
                "(cam and report need one)"
            )
    with atomic_write(path) as tmp:
        if path.suffix in _PICKLE_SUFFIXES:
            import joblib

            joblib.dump(model, tmp)
        else:
            import skops.io as sio

            sio.dump(model, tmp)
    return path


def _load_pickle(path: Path, trusted: bool) -> Any:
    """A joblib/pickle model file: it runs code on load, so only with ``trusted``."""
    if not trusted:
        raise ModelLoadError(
            f"{path} is a pickle-based file, which can run arbitrary code when loaded; "
            "pass trusted=True (--trusted on the command line) only if you trust its source"
        )
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling a damaged or foreign file fails in any way
        raise ModelLoadError(
            f"{path} is neither a .skops model nor a readable joblib/pickle file: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _load_skops(path: Path, trusted: bool) -> Any:
    """A ``.skops`` file: only :func:`trusted_types`, unless the user vouches for it."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable .skops model: {exc}") from None
    allowed = trusted_types()
    bad = sorted(t for t in found if t not in allowed)
    # trusted=True is the user vouching for the file: it also admits the types skops
    # deliberately leaves out, or a model holding one could never load.
    if bad and not trusted:
        raise ModelLoadError(
            f"{path} contains types gapsvm does not trust: {', '.join(bad)}; refusing to "
            "load it (pass trusted=True, --trusted on the command line, only if you "
            "trust its source)"
        )
    try:
        return sio.load(path, trusted=sorted(found))
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded: {exc}") from None


def load_model(
    path: str | os.PathLike, *, trusted: bool = False, check_weights: bool = True
) -> Any:
    """Load a model saved by :func:`save_model`, safely by default.

    Parameters
    ----------
    path : str or path-like
    trusted : bool, default=False
        Allow pickle-based files (``.joblib``/``.pkl``), which can run code on load, and
        ``.skops`` files holding types outside :func:`trusted_types`.
    check_weights : bool, default=True
        Identify the weights now and check that their content hash is the one the head was
        trained with. The network is built for it only when the weights' identity is not on
        record (a weights file whose bytes were never hashed before, say).

    Returns
    -------
    GapClassifier

    Raises
    ------
    ModelLoadError
        Unsafe or unexpected content (names the type), a damaged file, a file written by a
        newer gapsvm, or weights whose hash differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    # A .skops file is a zip archive, whatever its name: one renamed .joblib is still read
    # the safe way. Anything else is a pickle only when its name says so.
    if zipfile.is_zipfile(path):
        model = _load_skops(path, trusted)
    elif path.suffix in _PICKLE_SUFFIXES:
        model = _load_pickle(path, trusted)
    else:
        raise ModelLoadError(
            f"{path} is not a readable .skops model (not a zip archive); a pickle-based "
            f"model must be named {' or '.join(_PICKLE_SUFFIXES)} and loaded with trusted=True"
        )
    if not _is_classifier(model):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a GapClassifier")
    meta = getattr(model, "feature_meta_", None)
    if not isinstance(meta, dict) or "weights" not in meta:
        raise ModelLoadError(f"{path} holds an unfitted or damaged GapClassifier")
    written = str(meta.get("gapsvm_version", "0"))
    if _version_tuple(written)[:2] > _version_tuple(__version__)[:2]:
        raise ModelLoadError(
            f"{path} was written by gapsvm {written}, newer than this gapsvm {__version__}; "
            "upgrade gapsvm to load it"
        )
    if check_weights:
        fz = model.featurizer()
        if fz.weights_id_["sha256"] != meta["weights"]["sha256"]:
            raise ModelLoadError(
                f"{path} was trained on weights {meta['weights']}, but weights="
                f"{model.weights!r} here has content hash {fz.weights_id_['sha256']}"
            )
    return model
