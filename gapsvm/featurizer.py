"""From images to GAP vectors (and block5 maps): the cache-aware, batched extraction loop.

:func:`iter_features` is the engine: it reads and hashes images in a background thread,
serves what the cache already holds, groups the rest by network input size into batches,
runs the compiled backbone on them in the calling thread and writes every result to the cache
as soon as it exists. Work is streamed: memory holds a bounded number of decoded images, and
a run killed at any moment loses at most the batch in flight.

:class:`GapFeaturizer` is the scikit-learn transformer over it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _validation as val
from ._version import __version__
from .backbone import Backbone, get_backbone
from .cache import PREPROCESS_VERSION, FeatureCache, content_key, resolve_cache_dir
from .images import (
    ImageReadError,
    decode_image,
    format_size,
    read_bytes,
    resize_image,
    target_size,
)

__all__ = ["ExtractionResult", "GapFeaturizer", "ImageResult", "iter_features"]

# Chunks read ahead of the network: enough to hide decoding behind a batch, few enough that
# the reader thread does not compete with TensorFlow for the two cores for long.
_PREFETCH_CHUNKS = 2


@dataclass
class ImageResult:
    """The outcome for one input image."""

    index: int
    gap: np.ndarray | None = None
    maps: np.ndarray | None = None
    image_hw: tuple[int, int] | None = None
    input_hw: tuple[int, int] | None = None
    error: ImageReadError | None = None
    cached: bool = False


@dataclass
class ExtractionResult:
    """Everything :meth:`GapFeaturizer.extract` computed, in input order.

    Attributes
    ----------
    gap : ndarray of shape (n, channels), float32
        GAP vectors; rows of images that failed are NaN.
    maps : list of ndarray or None
        Feature maps per image (float32 when just computed, float16 memory-mapped when served
        from the cache), or None when maps were not asked for. None for failed images.
    image_hw, input_hw : list of tuple
        Each image's own size and the size the network saw (None for failed images).
    errors : list of ImageReadError
        One per failed image, in input order; ``error.index`` is its position.
    n_computed : int
        Images that went through the network (the rest came from the cache).
    """

    gap: np.ndarray
    maps: list[np.ndarray | None] | None
    image_hw: list[tuple[int, int] | None]
    input_hw: list[tuple[int, int] | None]
    errors: list[ImageReadError] = field(default_factory=list)
    n_computed: int = 0

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the images that were read and computed."""
        return np.array([hw is not None for hw in self.image_hw], dtype=bool)


def _prepare(
    sources: Sequence[Any],
    names: Sequence[str],
    idx: Sequence[int],
    cache: FeatureCache | None,
    need_maps: bool,
    input_size: Any,
) -> list[tuple]:
    out: list[tuple] = []
    for i in idx:
        src, name = sources[i], names[i]
        try:
            data = src if isinstance(src, np.ndarray) else read_bytes(src)
            key = content_key(data)
            entry = cache.get(key, need_maps) if cache is not None else None
            if entry is not None:
                out.append(("hit", i, entry))
                continue
            img = data if isinstance(data, np.ndarray) else decode_image(data, name)
            hw = img.shape[:2]
            thw = target_size(hw, input_size)
            out.append(("todo", i, key, resize_image(img, thw), hw, thw))
        except ImageReadError as exc:
            out.append(("error", i, exc))
    return out


def iter_features(
    sources: Sequence[str | os.PathLike | np.ndarray],
    backbone: Backbone,
    *,
    input_size: Any = (224, 224),
    cache: FeatureCache | None = None,
    batch_size: int = 16,
    want_maps: bool = False,
    cache_maps: bool = True,
    names: Sequence[str] | None = None,
) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per source, in completion order (not input order).

    Parameters
    ----------
    sources : sequence of path or ndarray
        Image files, or ``uint8`` RGB arrays of shape (h, w, 3).
    backbone : Backbone
    input_size : tuple of int, float or None, default=(224, 224)
        See :func:`gapsvm.images.parse_input_size`.
    cache : FeatureCache or None
        Where results are looked up and stored.
    batch_size : int, default=16
    want_maps : bool, default=False
        Return the feature maps too (a cache entry without maps then counts as a miss).
    cache_maps : bool, default=True
        Store maps in the cache, so CAMs later need no network pass.
    names : sequence of str, optional
        Names for error messages (default: the paths, or ``<array i>``).

    Yields
    ------
    ImageResult
    """
    n = len(sources)
    if names is None:
        names = [
            f"<array {i}>" if isinstance(s, np.ndarray) else os.fspath(s)
            for i, s in enumerate(sources)
        ]
    chunks = deque(range(j, min(j + batch_size, n)) for j in range(0, n, batch_size))
    pending: dict[tuple[int, int], list[tuple]] = {}
    max_pending = 4 * batch_size

    def run(items: list[tuple]) -> Iterator[ImageResult]:
        batch = np.stack([it[3] for it in items])
        maps, gaps = backbone(batch)
        for (_, i, key, _, hw, thw), m, g in zip(items, maps, gaps, strict=True):
            if cache is not None:
                cache.put(key, g, m if cache_maps else None, hw, thw)
            yield ImageResult(i, g, m if want_maps else None, hw, thw)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gapsvm-read") as pool:
        futures: deque = deque()

        def submit() -> None:
            if chunks:
                idx = chunks.popleft()
                futures.append(
                    pool.submit(_prepare, sources, names, idx, cache, want_maps, input_size)
                )

        for _ in range(_PREFETCH_CHUNKS):
            submit()
        try:
            while futures or chunks:
                if futures:
                    prepared = futures.popleft().result()
                else:
                    # The chunks before were all cache hits: read this one here, because a
                    # thread handoff per chunk costs more than the lookups themselves.
                    prepared = _prepare(sources, names, chunks.popleft(), cache, want_maps,
                                        input_size)
                if any(item[0] == "todo" for item in prepared):
                    while chunks and len(futures) < _PREFETCH_CHUNKS:
                        submit()  # network work ahead: keep decoding beside it
                for item in prepared:
                    kind, i = item[0], item[1]
                    if kind == "hit":
                        e = item[2]
                        yield ImageResult(
                            i, e.gap, e.maps if want_maps else None, e.image_hw, e.input_hw,
                            cached=True,
                        )
                    elif kind == "error":
                        err = item[2]
                        err.index = i
                        yield ImageResult(i, error=err)
                    else:
                        bucket = pending.setdefault(item[5], [])
                        bucket.append(item)
                        if len(bucket) >= batch_size:
                            yield from run(pending.pop(item[5]))
                while sum(len(b) for b in pending.values()) > max_pending:
                    biggest = max(pending, key=lambda k: len(pending[k]))
                    yield from run(pending.pop(biggest))
            for hw in list(pending):
                yield from run(pending.pop(hw))
        finally:
            for f in futures:
                f.cancel()


def _progress(total: int, verbose: int, desc: str):
    from tqdm.auto import tqdm

    # verbose=1: a bar on terminals only (tqdm's disable=None); 2: always; 0: never.
    disable = True if verbose <= 0 else (None if verbose == 1 else False)
    return tqdm(total=total, disable=disable, unit="img", desc=desc, dynamic_ncols=True)


def extract(
    X: Any,
    *,
    backbone: Backbone,
    input_size: Any,
    cache: FeatureCache | None,
    batch_size: int,
    want_maps: bool,
    cache_maps: bool = True,
    verbose: int = 0,
    on_error: str = "raise",
    desc: str = "features",
    map_fn: Callable[[int, np.ndarray], Any] | None = None,
) -> ExtractionResult:
    """Run :func:`iter_features` over ``X`` and collect the results in input order.

    With ``on_error="raise"`` every readable image is still computed and cached before the
    first :class:`~gapsvm.images.ImageReadError` is raised, so no finished work is lost.
    With ``want_maps`` and ``map_fn``, ``map_fn(index, maps)`` is stored instead of each
    image's maps as soon as they arrive, so memory holds its (small) outputs, never all maps.
    """
    sources, names = val.check_images(X)
    n = len(sources)
    C = backbone.spec.channels
    res = ExtractionResult(
        gap=np.full((n, C), np.nan, dtype=np.float32),
        maps=[None] * n if want_maps else None,
        image_hw=[None] * n,
        input_hw=[None] * n,
    )
    errors: dict[int, ImageReadError] = {}
    with _progress(n, verbose, desc) as bar:
        for r in iter_features(
            sources, backbone, input_size=input_size, cache=cache, batch_size=batch_size,
            want_maps=want_maps, cache_maps=cache_maps, names=names,
        ):
            if r.error is not None:
                errors[r.index] = r.error
            else:
                res.gap[r.index] = r.gap
                res.image_hw[r.index] = r.image_hw
                res.input_hw[r.index] = r.input_hw
                if want_maps:
                    res.maps[r.index] = r.maps if map_fn is None else map_fn(r.index, r.maps)
                res.n_computed += not r.cached
            bar.update(1)
    res.errors = [errors[i] for i in sorted(errors)]
    if res.errors and on_error == "raise":
        raise_read_errors(res.errors)
    return res


def raise_read_errors(errors: list[ImageReadError]) -> None:
    """Raise one :class:`~gapsvm.images.ImageReadError` for a run's unreadable images.

    The first failure names its file and reason and counts the rest; ``.errors`` holds every
    failure, for callers that want the full list.
    """
    first = errors[0]
    if len(errors) == 1:
        raise first
    more = ", ".join(e.path for e in errors[1:4])
    err = ImageReadError(
        first.path,
        f"{first.reason} (and {len(errors) - 1} more unreadable: {more}"
        f"{', ...' if len(errors) > 4 else ''})",
    )
    err.errors = errors
    raise err


class GapFeaturizer(TransformerMixin, BaseEstimator):
    """Images to global-average-pooled features of a frozen Keras backbone.

    Each image is decoded, resized to ``input_size``, passed through the backbone cut at its
    feature layer (VGG16: ``block5_conv3``, stride 16) and averaged over space. Results are
    cached on disk by image content, backbone, weights, precision and input size, so an
    unchanged image is never computed twice.

    Parameters
    ----------
    backbone : str, default="vgg16"
        A key of :data:`gapsvm.backbone.BACKBONES`.
    weights : {"imagenet"}, path or None, default="imagenet"
        As in Keras. ``"imagenet"`` works offline after ``gapsvm weights install``.
    input_size : (height, width), float or None, default=(224, 224)
        ``(h, w)`` resizes every image; a float scales each image's own size; None keeps it.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` runs the convolutions under Keras' ``mixed_bfloat16`` policy: the fast
        choice on CPUs with bfloat16 instructions (about 6x float32's speed with Intel AMX,
        2x with AVX512-BF16 alone), with the same cross-validated accuracy on the INRIA crops
        and CAMs that correlate >= 0.999 with float32's (``benchmarks/README.md``). Its
        features are cached apart from float32's.
    batch_size : int, default=16
    cache_dir : path, "auto" or None, default="auto"
        ``"auto"`` is ``$GAPSVM_HOME/features``; None disables the cache.
    cache_maps : bool, default=True
        Also cache the spatial maps (float16), so class activation maps for these images
        never need the network again.
    verbose : int, default=1
        0 silent, 1 progress bar on terminals, 2 progress bar always.

    Attributes
    ----------
    weights_id_ : dict
        ``{"name": ..., "sha256": ...}`` of the weights seen at fit.
    n_features_out_ : int
        Channels of the feature layer (512 for VGG16).
    feature_layer_ : str
        The layer the features are taken from.

    Examples
    --------
    >>> from gapsvm import GapFeaturizer
    >>> X = GapFeaturizer(input_size=(128, 64)).fit_transform(["a.png", "b.jpg"])  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (2, 512)
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        weights: str | os.PathLike | None = "imagenet",
        input_size: Any = (224, 224),
        precision: str = "float32",
        batch_size: int = 16,
        cache_dir: str | os.PathLike | None = "auto",
        cache_maps: bool = True,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.input_size = input_size
        self.precision = precision
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.cache_maps = cache_maps
        self.verbose = verbose

    def _backbone(self) -> Backbone:
        return get_backbone(self.backbone, self.weights, self.precision)

    def _cache(self, bb: Backbone, input_size: Any) -> FeatureCache | None:
        root = resolve_cache_dir(self.cache_dir)
        return None if root is None else FeatureCache(root, bb.key, format_size(input_size))

    def fit(self, X: Any = None, y: Any = None) -> GapFeaturizer:
        """Build (or reuse) the backbone and record its weights' identity.

        Parameters
        ----------
        X, y : ignored
            Present for API consistency; the backbone is frozen.

        Returns
        -------
        self : GapFeaturizer
        """
        val.check_featurizer_params(self)
        bb = self._backbone()
        self.weights_id_ = bb.identity.as_dict()
        self.n_features_out_ = bb.spec.channels
        self.feature_layer_ = bb.spec.layer
        return self

    def _checked_backbone(self) -> Backbone:
        check_is_fitted(self)
        val.check_featurizer_params(self)
        bb = self._backbone()
        if bb.identity.sha256 != self.weights_id_["sha256"]:
            raise ValueError(
                f"weights changed since fit: fitted with {self.weights_id_}, now "
                f"{bb.identity.as_dict()}; fit again"
            )
        return bb

    def extract(
        self,
        X: Any,
        *,
        maps: bool = False,
        on_error: str = "raise",
        input_size: Any = "fit",
        map_fn: Callable[[int, np.ndarray], Any] | None = None,
    ) -> ExtractionResult:
        """Compute (or fetch from the cache) features for ``X``, keeping per-image details.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        maps : bool, default=False
            Also return the feature maps.
        on_error : {"raise", "skip"}, default="raise"
            ``"skip"`` records unreadable images in ``result.errors`` and goes on; ``"raise"``
            computes and caches every readable image first, then raises.
        input_size : default="fit"
            Override ``self.input_size`` for this call (see :func:`gapsvm.images.parse_input_size`).
        map_fn : callable, optional
            With ``maps=True``: ``map_fn(index, maps)`` is kept in ``result.maps`` instead of
            the maps themselves, computed as each image arrives; reduce maps this way (to
            CAMs, say) and memory stays flat however many images there are.

        Returns
        -------
        ExtractionResult
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        bb = self._checked_backbone()
        size = val.check_input_size(self.input_size if input_size == "fit" else input_size)
        return extract(
            X, backbone=bb, input_size=size, cache=self._cache(bb, size),
            batch_size=self.batch_size, want_maps=maps, cache_maps=self.cache_maps,
            verbose=self.verbose, on_error=on_error, map_fn=map_fn,
        )

    def transform(self, X: Any) -> np.ndarray:
        """GAP vectors of ``X``.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
            Image files or uint8 RGB images.

        Returns
        -------
        ndarray of shape (n_images, n_features_out_), float32

        Raises
        ------
        ImageReadError
            An image could not be read (after every readable one was computed and cached).
        """
        return self.extract(X).gap

    def transform_maps(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Feature-layer maps of ``X`` (block5_conv3 for VGG16).

        Returns
        -------
        ndarray of shape (n, h', w', channels) or list of ndarray
            One array when every image gives the same map size (fixed ``input_size``), else a
            list. Maps served from the cache are float16 (memory-mapped), fresh ones float32.
        """
        res = self.extract(X, maps=True)
        return stack_if_same(res.maps)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``gap0`` ... ``gap{n-1}`` of the output columns."""
        check_is_fitted(self)
        return np.asarray([f"gap{i}" for i in range(self.n_features_out_)], dtype=object)

    def metadata(self, input_size: Any = "fit") -> dict[str, Any]:
        """What produced these features: backbone, layer, weights identity, precision, input
        size, preprocessing and gapsvm versions (written into every file gapsvm makes)."""
        bb = self._checked_backbone()
        size = val.check_input_size(self.input_size if input_size == "fit" else input_size)
        return {
            **bb.metadata(),
            "input_size": format_size(size),
            "preprocess_version": PREPROCESS_VERSION,
            "gapsvm_version": __version__,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def stack_if_same(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One float32 array when every array has the same shape, else a list of float32 arrays."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack([np.asarray(a, dtype=np.float32) for a in arrays])
    return [np.asarray(a, dtype=np.float32) for a in arrays]


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

    from ._atomic import atomic_write

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
    from .safe_load import safe_joblib_load

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
