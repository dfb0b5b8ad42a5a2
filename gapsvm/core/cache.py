"""The on-disk feature cache: one joblib file per (image content, backbone, input size).

Layout::

    <cache_dir>/v1/<backbone key>/<size>/<k[0:2]>/<k>.joblib

- ``backbone key`` is ``<name>-<layer>-<weights content sha256[:20]>-<precision>``
  (:attr:`gapsvm.network.backbone.Backbone.key`), so other weights, layers or precisions never hit;
- ``size`` spells the input size (``224x224``, ``native``, ``x2``);
- ``k`` is the sha256 of the image's encoded bytes (a file) or of its pixels, shape and dtype
  (an array), together with :data:`PREPROCESS_VERSION`, bumped whenever decoding or resizing
  changes what the network sees.

Each file holds a dict: ``key`` (the full key, checked on read), ``gap`` (float32,
``(channels,)``), ``maps`` (float16, ``(h', w', channels)``, or None when only the vector was
kept), ``image_hw`` (the image's own size) and ``input_hw`` (the size the network saw).
Arrays are stored uncompressed so that maps are memory-mapped on read (``mmap_mode="r"``):
only the pages a CAM touches are read.

Writes go to a temporary file in the same folder and are moved into place with
``os.replace``, atomic on POSIX and Windows: a reader sees a whole entry or none, a killed
process leaves at most a ``.tmp-*`` file (ignored, and removed by :meth:`FeatureCache.clean`),
and two processes writing the same entry both write the same bytes. A file that cannot be
read back (truncated, foreign) is a miss and is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from gapsvm.utils.atomic import atomic_write
from gapsvm.utils.home import gapsvm_home
from gapsvm.utils.safe_load import UnsafeFileError, safe_joblib_load

__all__ = [
    "PREPROCESS_VERSION",
    "CacheEntry",
    "CacheWriteError",
    "FeatureCache",
    "content_key",
]


#: Bump when decoding, resizing or preprocessing changes what reaches the network.
PREPROCESS_VERSION = 1


_LAYOUT = "v1"


#: GAP vectors (about 2.5 KB each) kept in memory per process, least recently used first out.
#: ``GridSearchCV`` refits on every fold and reads each vector ``folds x candidates`` times;
#: from memory that costs a dictionary lookup instead of opening and unpickling a file. Only
#: vectors read back from disk are kept (a second use is the sign of more to come), so a
#: single pass over a folder, however large, keeps none.
MEMO_ENTRIES = 32768


_MEMO: OrderedDict[tuple[str, str], tuple[np.ndarray, tuple, tuple, tuple]] = OrderedDict()


_MEMO_LOCK = threading.Lock()


class CacheWriteError(OSError):
    """A cache entry could not be written (disk full, permissions); the cache stays valid."""


def content_key(data: bytes | np.ndarray) -> str:
    """sha256 of an image's content: encoded bytes, or pixels with shape and dtype.

    Parameters
    ----------
    data : bytes or ndarray

    Returns
    -------
    str
        Hex digest, which also covers :data:`PREPROCESS_VERSION`.
    """
    h = hashlib.sha256(f"gapsvm-pp{PREPROCESS_VERSION}:".encode())
    if isinstance(data, np.ndarray):
        h.update(f"array{data.shape}{data.dtype.str}:".encode())
        h.update(np.ascontiguousarray(data).tobytes())
    else:
        h.update(b"bytes:")
        h.update(data)
    return h.hexdigest()


@dataclass
class CacheEntry:
    """One cached image: its GAP vector, optionally its maps, and its sizes."""

    gap: np.ndarray
    maps: np.ndarray | None
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]


class FeatureCache:
    """Per-image feature files under one folder (see the module docstring for the layout).

    Parameters
    ----------
    root : str or path-like
        The cache folder; created on first write.
    backbone_key : str
        :attr:`gapsvm.network.backbone.Backbone.key`.
    size_key : str
        The input size as :func:`gapsvm.core.sizes.format_size` spells it.
    """

    def __init__(self, root: str | os.PathLike, backbone_key: str, size_key: str) -> None:
        self.root = Path(root)
        self.folder = self.root / _LAYOUT / backbone_key / size_key
        self._folder = str(self.folder)  # plain strings: lookups are hot in grid searches
        self.backbone_key = backbone_key
        self.size_key = size_key

    def path(self, key: str) -> Path:
        """The file an entry lives in."""
        return Path(self._path(key))

    def _path(self, key: str) -> str:
        # A plain string: lookups are hot in grid searches, and Path joins cost more.
        return os.path.join(self._folder, key[:2], f"{key}.joblib")

    def _full_key(self, key: str) -> str:
        return f"{self.backbone_key}/{self.size_key}/{key}"

    def _remember(
        self, key: str, gap: np.ndarray, image_hw: Any, input_hw: Any, sig: tuple
    ) -> None:
        gap = np.array(gap, dtype=np.float32)
        gap.setflags(write=False)  # shared by every later hit: nobody may change it
        with _MEMO_LOCK:
            _MEMO[(self._folder, key)] = (gap, tuple(image_hw), tuple(input_hw), sig)
            _MEMO.move_to_end((self._folder, key))
            while len(_MEMO) > MEMO_ENTRIES:
                _MEMO.popitem(last=False)

    def get(self, key: str, need_maps: bool = False) -> CacheEntry | None:
        """Return the entry for ``key``, or None if absent, unreadable or without maps when
        ``need_maps``; maps come back memory-mapped read-only.

        Without ``need_maps``, entries this process already read come from memory
        (:data:`MEMO_ENTRIES`) while their file is unchanged (same inode, size and mtime): a
        deleted, replaced or damaged file is read (and judged) again.
        """
        path = self._path(key)
        sig = _file_signature(path)
        if sig is None:
            return None
        if not need_maps:
            with _MEMO_LOCK:
                hit = _MEMO.get((self._folder, key))
                if hit is not None and hit[3] == sig:
                    _MEMO.move_to_end((self._folder, key))
                else:
                    hit = None
            if hit is not None:
                return CacheEntry(hit[0], None, hit[1], hit[2])
        try:
            d = safe_joblib_load(path, mmap_mode="r")
            if not isinstance(d, dict) or d.get("key") != self._full_key(key):
                return None
            gap = np.array(d["gap"], dtype=np.float32)
            maps = d.get("maps")
            if gap.ndim != 1 or not np.all(np.isfinite(gap)):
                return None
            if maps is not None and (maps.ndim != 3 or maps.shape[-1] != gap.shape[0]):
                return None
            if need_maps and maps is None:
                return None
            self._remember(key, gap, d["image_hw"], d["input_hw"], sig)
            return CacheEntry(gap, maps, tuple(d["image_hw"]), tuple(d["input_hw"]))
        except UnsafeFileError as exc:
            # Never loaded, recomputed and overwritten; but someone planted it, so say so.
            warnings.warn(f"ignoring feature cache entry: {exc}", RuntimeWarning, stacklevel=2)
            return None
        except Exception:
            # Truncated by a crash, written by another version or not ours: recompute.
            return None

    def put(
        self,
        key: str,
        gap: np.ndarray,
        maps: np.ndarray | None,
        image_hw: tuple[int, int],
        input_hw: tuple[int, int],
    ) -> None:
        """Write an entry atomically (maps stored as float16).

        Raises
        ------
        CacheWriteError
            The write failed (disk full, permissions); nothing partial is left behind.
        """
        path = self.path(key)
        payload = {
            "key": self._full_key(key),
            "gap": np.ascontiguousarray(gap, dtype=np.float32),
            "maps": None if maps is None else np.ascontiguousarray(maps, dtype=np.float16),
            "image_hw": tuple(int(v) for v in image_hw),
            "input_hw": tuple(int(v) for v in input_hw),
        }
        try:
            with atomic_write(path) as tmp, open(tmp, "wb") as fh:
                joblib.dump(payload, fh)
        except OSError as exc:
            raise CacheWriteError(
                exc.errno,
                f"cannot write feature cache entry {path} ({exc.strerror or exc}); "
                "entries already written stay valid",
            ) from None

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def clean(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by killed runs (older than ``older_than`` seconds).

        Returns
        -------
        int
            How many files were removed.
        """
        n = 0
        now = time.time()
        if not self.root.is_dir():
            return 0
        for p in self.root.rglob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > older_than:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n


def _file_signature(path: str | Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a regular file, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def resolve_cache_dir(cache_dir: Any) -> Path | None:
    """Turn a ``cache_dir`` parameter into a folder: ``"auto"`` is ``$GAPSVM_HOME/features``,
    ``None`` or ``False`` disables caching."""
    if cache_dir is None or cache_dir is False:
        return None
    if isinstance(cache_dir, str) and cache_dir == "auto":
        return gapsvm_home() / "features"
    return Path(cache_dir).expanduser()
