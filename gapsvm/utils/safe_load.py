"""Reading gapsvm's own joblib files (features files, cache entries) without running code.

joblib files are pickles, and unpickling can call any importable function. gapsvm's data
files only ever hold numpy arrays, numbers, strings, lists, tuples and dicts, so they are
read with an unpickler that resolves exactly those types and refuses every other one by name.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from joblib import numpy_pickle as _npk

__all__ = [
    "UnsafeFileError",
    "safe_joblib_load",
]


_ALLOWED = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("builtins", "tuple"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("collections", "OrderedDict"),
    }
)


class UnsafeFileError(pickle.UnpicklingError):
    """The file references a type outside gapsvm's data types (it could run code)."""


class _RestrictedUnpickler(_npk.NumpyUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafeFileError(
                f"{self.filename or 'file'} references {module}.{name}, which a gapsvm data "
                "file never contains; refusing to load it"
            )
        return super().find_class(module, name)


def safe_joblib_load(path: str | os.PathLike, mmap_mode: str | None = None) -> Any:
    """Load a joblib file that may only contain plain data and numpy arrays.

    Parameters
    ----------
    path : str or path-like
    mmap_mode : {None, "r"}, default=None
        Memory-map uncompressed arrays instead of reading them.

    Returns
    -------
    object

    Raises
    ------
    UnsafeFileError
        The file references any other type (it is not loaded).
    """
    filename = os.fspath(path)
    # joblib has no public way to load with another unpickler; this is what joblib.load
    # itself does to open the file (decompression, memory mapping) before unpickling.
    opener = _npk._validate_fileobject_and_memmap  # noqa: SLF001
    with open(filename, "rb") as f:
        with opener(f, filename, mmap_mode) as (fobj, mode):
            if isinstance(fobj, str):
                raise UnsafeFileError(f"{filename}: pre-0.10 joblib format is not supported")
            return _RestrictedUnpickler(
                filename, fobj, ensure_native_byte_order=mode is None, mmap_mode=mode
            ).load()
