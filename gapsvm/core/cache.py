"""The on-disk feature cache: one joblib file per (image content, backbone, network input size).

Layout::

    <cache_dir>/v2/<backbone key>/<H>x<W>/<k[0:2]>/<k>.joblib

- ``backbone key`` is ``<name>-<layer>-<weights content sha256[:20]>-<precision>``
  (:attr:`gapsvm.network.backbone.Backbone.key`), so other weights, layers or precisions never hit;
- ``HxW`` is the height and width of the input that reached the network, whatever size option
  produced it: ``native``, ``x1`` and a fixed size equal to the image's own share one entry;
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
read back (truncated, foreign) or that does not hold what this backbone computes for this
input size (a vector of another length, maps of another shape or dtype, missing fields) is a
miss: it is recomputed and replaced, never served.

Layout ``v1`` (earlier versions, keyed by the spelling of the size option) is never read:
its folder stays on disk until removed by hand.
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
PREPROCESS_VERSION = 2  # 2: large JPEGs decoded at reduced scale for small fixed sizes


#: Bump when the layout or what an entry holds changes; older layouts are ignored.
_LAYOUT = "v2"


#: GAP vectors (about 2.5 KB each) kept in memory per process, least recently used first out.
#: ``GridSearchCV`` refits on every fold and reads each vector ``folds x candidates`` times;
#: from memory that costs a dictionary lookup instead of opening and unpickling a file. Only
#: vectors read back from disk are kept (a second use is the sign of more to come), so a
#: single pass over a folder, however large, keeps none.
MEMO_ENTRIES = 32768


_MEMO: OrderedDict[str, tuple[np.ndarray, tuple, tuple, tuple]] = OrderedDict()


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
    channels : int, optional
        The backbone's feature channels: an entry whose vector or maps have another length is
        a miss. None skips that check.
    stride : int, optional
        The backbone's stride: an entry whose maps do not cover its input size at this stride
        (``h / stride`` rounded either way) is a miss. None skips that check.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        backbone_key: str,
        *,
        channels: int | None = None,
        stride: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.folder = self.root / _LAYOUT / backbone_key
        self._folder = str(self.folder)  # plain strings: lookups are hot in grid searches
        self.backbone_key = backbone_key
        self.channels = channels
        self.stride = stride

    def path(self, key: str, input_hw: tuple[int, int]) -> Path:
        """The file the entry for content ``key`` at network input ``input_hw`` lives in."""
        return Path(self._path(key, input_hw))

    def _path(self, key: str, input_hw: tuple[int, int]) -> str:
        # A plain string: lookups are hot in grid searches, and Path joins cost more.
        return os.path.join(
            self._folder, f"{int(input_hw[0])}x{int(input_hw[1])}", key[:2], f"{key}.joblib"
        )

    def _full_key(self, key: str, input_hw: tuple[int, int]) -> str:
        return f"{self.backbone_key}/{int(input_hw[0])}x{int(input_hw[1])}/{key}"

    def _remember(
        self, path: str, gap: np.ndarray, image_hw: Any, input_hw: Any, sig: tuple
    ) -> None:
        gap = np.array(gap, dtype=np.float32)
        gap.setflags(write=False)  # shared by every later hit: nobody may change it
        with _MEMO_LOCK:
            _MEMO[path] = (gap, tuple(image_hw), tuple(input_hw), sig)
            _MEMO.move_to_end(path)
            while len(_MEMO) > MEMO_ENTRIES:
                _MEMO.popitem(last=False)

    def get(
        self,
        key: str,
        input_hw: tuple[int, int],
        need_maps: bool = False,
        *,
        image_hw: tuple[int, int] | None = None,
    ) -> CacheEntry | None:
        """Return the entry for content ``key`` at network input ``input_hw``.

        Parameters
        ----------
        key : str
            :func:`content_key` of the image.
        input_hw : tuple of int
            The (height, width) the network sees.
        need_maps : bool, default=False
            An entry stored without maps is a miss.
        image_hw : tuple of int, optional
            The image's own size as the caller believes it (from a file header, say): an
            entry recorded for another size is a miss, so a wrong guess costs a decode,
            never a wrong answer.

        Returns
        -------
        CacheEntry or None
            None when absent, unreadable or malformed (see the module docstring); maps come
            back memory-mapped read-only.

        Notes
        -----
        Without ``need_maps``, entries this process already read come from memory
        (:data:`MEMO_ENTRIES`) while their file is unchanged (same inode, size and mtime): a
        deleted, replaced or damaged file is read (and judged) again.
        """
        input_hw = (int(input_hw[0]), int(input_hw[1]))
        path = self._path(key, input_hw)
        sig = _file_signature(path)
        if sig is None:
            return None
        entry = self._memo_hit(path, sig) if not need_maps else None
        if entry is None:
            entry = self._read(path, key, input_hw, need_maps, sig)
        if entry is None or (image_hw is not None and entry.image_hw != tuple(image_hw)):
            return None
        return entry

    def _memo_hit(self, path: str, sig: tuple) -> CacheEntry | None:
        with _MEMO_LOCK:
            hit = _MEMO.get(path)
            if hit is None or hit[3] != sig:
                return None
            if self.channels is not None and hit[0].shape[0] != self.channels:
                return None
            _MEMO.move_to_end(path)
        return CacheEntry(hit[0], None, hit[1], hit[2])

    def _read(
        self, path: str, key: str, input_hw: tuple[int, int], need_maps: bool, sig: tuple
    ) -> CacheEntry | None:
        try:
            d = safe_joblib_load(path, mmap_mode="r")
        except UnsafeFileError as exc:
            # Never loaded, recomputed and overwritten; but someone planted it, so say so.
            warnings.warn(f"ignoring feature cache entry: {exc}", RuntimeWarning, stacklevel=3)
            return None
        except Exception:
            # Truncated by a crash, written by another version or not ours: recompute.
            return None
        entry = self._checked(d, self._full_key(key, input_hw), input_hw)
        if entry is None or (need_maps and entry.maps is None):
            return None
        self._remember(path, entry.gap, entry.image_hw, entry.input_hw, sig)
        return entry

    def _checked(self, d: Any, full_key: str, input_hw: tuple[int, int]) -> CacheEntry | None:
        """The entry ``d`` holds if it is exactly what :meth:`put` writes for this backbone
        and input size, else None (a miss: serving it would fail later, far from here)."""
        if not isinstance(d, dict) or d.get("key") != full_key:
            return None
        gap, maps = d.get("gap"), d.get("maps", False)
        image_hw, stored_hw = _hw(d.get("image_hw")), _hw(d.get("input_hw"))
        if image_hw is None or stored_hw != input_hw:
            return None
        if not (isinstance(gap, np.ndarray) and gap.dtype == np.float32 and gap.ndim == 1):
            return None
        if (self.channels is not None and gap.shape[0] != self.channels) or not np.all(
            np.isfinite(gap)
        ):
            return None
        if maps is not None and not self._maps_fit(maps, gap.shape[0], input_hw):
            return None
        return CacheEntry(np.array(gap), maps, image_hw, input_hw)

    def _maps_fit(self, maps: Any, channels: int, input_hw: tuple[int, int]) -> bool:
        if not (isinstance(maps, np.ndarray) and maps.dtype == np.float16 and maps.ndim == 3):
            return False
        if maps.shape[-1] != channels:
            return False
        if self.stride is None:
            return min(maps.shape[:2]) >= 1
        # Backbones round the last stride down (VGG's valid pooling) or up ("same" padding).
        return all(
            max(1, side // self.stride) <= cells <= -(-side // self.stride)
            for side, cells in zip(input_hw, maps.shape[:2], strict=True)
        )

    def put(
        self,
        key: str,
        gap: np.ndarray,
        maps: np.ndarray | None,
        image_hw: tuple[int, int],
        input_hw: tuple[int, int],
    ) -> None:
        """Write the entry for content ``key`` at network input ``input_hw`` atomically
        (maps stored as float16), replacing whatever was there.

        Raises
        ------
        CacheWriteError
            The write failed (disk full, permissions); nothing partial is left behind.
        """
        input_hw = (int(input_hw[0]), int(input_hw[1]))
        path = self.path(key, input_hw)
        payload = {
            "key": self._full_key(key, input_hw),
            "gap": np.ascontiguousarray(gap, dtype=np.float32),
            "maps": None if maps is None else np.ascontiguousarray(maps, dtype=np.float16),
            "image_hw": tuple(int(v) for v in image_hw),
            "input_hw": input_hw,
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


def _hw(value: Any) -> tuple[int, int] | None:
    """A stored (height, width) as a tuple of two positive ints, or None if it is not one."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return None
    if not all(isinstance(v, int | np.integer) and v > 0 for v in value):
        return None
    return (int(value[0]), int(value[1]))


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
