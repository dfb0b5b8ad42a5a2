"""From images to GAP vectors (and feature maps): the cache-aware, batched extraction engine.

:func:`iter_features` reads and hashes images in a background thread (``prefetch`` chunks
ahead of the network), serves what the cache already holds, groups the rest by network input
size into batches, runs the compiled backbone on them in the calling thread and writes every
result to the cache as soon as it exists. Only a cache miss calls the backbone, whose
network is built on that first call (:class:`~gapsvm.network.backbone.build.Backbone`), so a
run the cache serves entirely never loads TensorFlow. Work is streamed: memory holds a
bounded number of decoded images, and a run killed at any moment loses at most the batch in
flight. :func:`extract` collects the results in input order.

Reading a chunk is :func:`gapsvm.network.prepare.prepare_images`: each image becomes a
cache hit, an image waiting for the network, or a read failure.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapsvm.core import validation as val
from gapsvm.core.cache import FeatureCache
from gapsvm.core.decode import ImageReadError
from gapsvm.core.sizes import MAX_INPUT_PIXELS
from gapsvm.network.backbone.build import Backbone
from gapsvm.network.prepare import (
    CacheHit,
    PendingImage,
    PreparedImage,
    ReadFailure,
    prepare_images,
)
from gapsvm.utils.checks import check_choice, check_int
from gapsvm.utils.progress import progress_bar

__all__ = [
    "DEFAULT_PREFETCH",
    "ON_ERROR",
    "ExtractionResult",
    "ImageResult",
    "collect",
    "extract",
    "iter_features",
    "raise_read_errors",
]


#: Chunks read ahead of the network by default: enough to hide decoding behind a batch, few
#: enough that the reader thread does not compete with TensorFlow for the cores for long
#: (``benchmarks/README.md`` compares other depths).
DEFAULT_PREFETCH = 2


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
    key: str | None = None


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
    keys : list of str or None
        Each image's content key (:func:`gapsvm.core.cache.content_key`, the cache's key;
        None for failed images), so that what was hashed once need not be read again.
    """

    gap: np.ndarray
    maps: list[np.ndarray | None] | None
    image_hw: list[tuple[int, int] | None]
    input_hw: list[tuple[int, int] | None]
    errors: list[ImageReadError] = field(default_factory=list)
    n_computed: int = 0
    keys: list[str | None] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the images that were read and computed."""
        return np.array([hw is not None for hw in self.image_hw], dtype=bool)


def _read_ahead(
    read: Callable[[range], list[PreparedImage]], chunks: Iterable[range], prefetch: int
) -> Iterator[list[PreparedImage]]:
    """Yield each chunk's prepared images in order, reading up to ``prefetch`` chunks ahead in
    one background thread while the network has work (``prefetch=0``: all inline)."""
    todo = deque(chunks)
    if prefetch == 0:
        while todo:
            yield read(todo.popleft())
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gapsvm-read") as pool:
        futures: deque[Future] = deque()

        def top_up() -> None:
            while todo and len(futures) < prefetch:
                futures.append(pool.submit(read, todo.popleft()))

        top_up()
        try:
            while futures or todo:
                if futures:
                    items = futures.popleft().result()
                else:
                    # The chunks before were all cache hits: read this one here, because a
                    # thread handoff per chunk costs more than the lookups themselves.
                    items = read(todo.popleft())
                if any(isinstance(it, PendingImage) for it in items):
                    top_up()  # network work ahead: keep decoding beside it
                yield items
        finally:
            for f in futures:
                f.cancel()


class _Batches:
    """Pending images grouped by input size, run through the network a batch at a time."""

    def __init__(
        self,
        backbone: Backbone,
        cache: FeatureCache | None,
        batch_size: int,
        want_maps: bool,
        cache_maps: bool,
    ) -> None:
        self.backbone, self.cache = backbone, cache
        self.batch_size, self.want_maps, self.cache_maps = batch_size, want_maps, cache_maps
        # Native sizes may leave a partial batch per size: bound the decoded images held.
        self.max_pending = 4 * batch_size
        self.by_size: dict[tuple[int, int], list[PendingImage]] = {}

    def add(self, item: PendingImage) -> Iterator[ImageResult]:
        """Queue ``item``; run its size's batch once full."""
        bucket = self.by_size.setdefault(item.input_hw, [])
        bucket.append(item)
        # A pass's memory grows with its pixels: a batch stays within the bound on one
        # image's input (sizes.MAX_INPUT_PIXELS), so large photos run one at a time.
        pixels = (len(bucket) + 1) * item.input_hw[0] * item.input_hw[1]
        if len(bucket) >= self.batch_size or pixels > MAX_INPUT_PIXELS:
            yield from self._run(self.by_size.pop(item.input_hw))

    def trim(self) -> Iterator[ImageResult]:
        """Run the biggest partial batches until at most ``max_pending`` images wait."""
        while sum(len(b) for b in self.by_size.values()) > self.max_pending:
            biggest = max(self.by_size, key=lambda k: len(self.by_size[k]))
            yield from self._run(self.by_size.pop(biggest))

    def flush(self) -> Iterator[ImageResult]:
        """Run everything still waiting."""
        for hw in list(self.by_size):
            yield from self._run(self.by_size.pop(hw))

    def _run(self, items: list[PendingImage]) -> Iterator[ImageResult]:
        maps, gaps = self.backbone(np.stack([it.pixels for it in items]))
        for it, m, g in zip(items, maps, gaps, strict=True):
            if self.cache is not None:
                self.cache.put(it.key, g, m if self.cache_maps else None, it.image_hw,
                               it.input_hw)
            yield ImageResult(it.index, g, m if self.want_maps else None, it.image_hw,
                              it.input_hw, key=it.key)


def _settled(item: CacheHit | ReadFailure, want_maps: bool) -> ImageResult:
    """The result of an image that needs no network pass."""
    if isinstance(item, CacheHit):
        e = item.entry
        return ImageResult(item.index, e.gap, e.maps if want_maps else None, e.image_hw,
                           e.input_hw, cached=True, key=item.key)
    item.error.index = item.index
    return ImageResult(item.index, error=item.error)


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
    prefetch: int = DEFAULT_PREFETCH,
) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per source, in completion order (not input order).

    Parameters
    ----------
    sources : sequence of path or ndarray
        Image files, or ``uint8`` RGB arrays of shape (h, w, 3).
    backbone : Backbone
    input_size : tuple of int, float or None, default=(224, 224)
        See :func:`gapsvm.core.sizes.parse_input_size`.
    cache : FeatureCache or None
        Where results are looked up and stored.
    batch_size : int, default=16
        Images per network pass; also the chunk of images read at a time.
    want_maps : bool, default=False
        Return the feature maps too (a cache entry without maps then counts as a miss).
    cache_maps : bool, default=True
        Store maps in the cache, so CAMs later need no network pass.
    names : sequence of str, optional
        Names for error messages (default: the paths, or ``<array i>``).
    prefetch : int, default=DEFAULT_PREFETCH
        Chunks read ahead in a background thread while the network runs; 0 reads each chunk
        in the calling thread when its turn comes (no overlap). Results do not depend on it.

    Yields
    ------
    ImageResult
    """
    check_int(batch_size, "batch_size")
    check_int(prefetch, "prefetch", minimum=0)
    n = len(sources)
    if names is None:
        names = [
            f"<array {i}>" if isinstance(s, np.ndarray) else os.fspath(s)
            for i, s in enumerate(sources)
        ]
    read = functools.partial(
        prepare_images, sources, names, cache=cache, need_maps=want_maps,
        input_size=input_size, min_side=backbone.spec.min_side,
    )
    chunks = (range(j, min(j + batch_size, n)) for j in range(0, n, batch_size))
    batches = _Batches(backbone, cache, batch_size, want_maps, cache_maps)
    with contextlib.closing(_read_ahead(read, chunks, prefetch)) as prepared:
        for items in prepared:
            for item in items:
                if isinstance(item, PendingImage):
                    yield from batches.add(item)
                else:
                    yield _settled(item, want_maps)
            yield from batches.trim()
    yield from batches.flush()


#: What ``on_error`` may be: ``"raise"`` after every readable image is done, or ``"skip"``.
ON_ERROR = ("raise", "skip")


def collect(
    results: Iterable[ImageResult],
    n: int,
    channels: int,
    *,
    want_maps: bool = False,
    map_fn: Callable[[int, np.ndarray], Any] | None = None,
) -> ExtractionResult:
    """Put the results of :func:`iter_features` back in input order.

    Parameters
    ----------
    results : iterable of ImageResult
        One per image, in any order.
    n : int
        Number of images.
    channels : int
        Feature channels (``backbone.spec.channels``).
    want_maps : bool, default=False
        Keep each image's maps (or ``map_fn(index, maps)``) in ``maps``.
    map_fn : callable, optional

    Returns
    -------
    ExtractionResult
        Errors in input order; nothing is raised here.
    """
    res = ExtractionResult(
        gap=np.full((n, channels), np.nan, dtype=np.float32),
        maps=[None] * n if want_maps else None,
        image_hw=[None] * n,
        input_hw=[None] * n,
        keys=[None] * n,
    )
    errors: dict[int, ImageReadError] = {}
    for r in results:
        if r.error is not None:
            errors[r.index] = r.error
            continue
        res.gap[r.index] = r.gap
        res.image_hw[r.index] = r.image_hw
        res.input_hw[r.index] = r.input_hw
        res.keys[r.index] = r.key
        if want_maps:
            res.maps[r.index] = r.maps if map_fn is None else map_fn(r.index, r.maps)
        res.n_computed += not r.cached
    res.errors = [errors[i] for i in sorted(errors)]
    return res


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
    prefetch: int = DEFAULT_PREFETCH,
) -> ExtractionResult:
    """Run :func:`iter_features` over ``X`` and collect the results in input order.

    With ``on_error="raise"`` every readable image is still computed and cached before the
    first :class:`~gapsvm.core.decode.ImageReadError` is raised, so no finished work is lost.
    With ``want_maps`` and ``map_fn``, ``map_fn(index, maps)`` is stored instead of each
    image's maps as soon as they arrive, so memory holds its (small) outputs, never all maps.
    ``prefetch`` is as for :func:`iter_features`.
    """
    check_choice(on_error, "on_error", ON_ERROR)
    sources, names = val.check_images(X)
    n = len(sources)
    with progress_bar(n, verbose, desc) as bar:
        results = iter_features(
            sources, backbone, input_size=input_size, cache=cache, batch_size=batch_size,
            want_maps=want_maps, cache_maps=cache_maps, names=names, prefetch=prefetch,
        )
        res = collect(_counted(results, bar), n, backbone.spec.channels, want_maps=want_maps,
                      map_fn=map_fn)
    if res.errors and on_error == "raise":
        raise_read_errors(res.errors)
    return res


def _counted(results: Iterable[ImageResult], bar: Any) -> Iterator[ImageResult]:
    for r in results:
        yield r
        bar.update(1)


def raise_read_errors(errors: list[ImageReadError]) -> None:
    """Raise one :class:`~gapsvm.core.decode.ImageReadError` for a run's unreadable images.

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
