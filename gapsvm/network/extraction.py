"""From images to GAP vectors (and feature maps): the cache-aware, batched extraction engine.

:func:`iter_features` reads and hashes images in a background thread, serves what the cache
already holds, groups the rest by network input size into batches, runs the compiled
backbone on them in the calling thread and writes every result to the cache as soon as it
exists. Work is streamed: memory holds a bounded number of decoded images, and a run killed
at any moment loses at most the batch in flight. :func:`extract` collects the results in
input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapsvm.core import validation as val
from gapsvm.core.cache import FeatureCache, content_key
from gapsvm.core.decode import ImageReadError, decode_image, read_bytes, resize_image
from gapsvm.core.sizes import target_size
from gapsvm.network.backbone.build import Backbone
from gapsvm.utils.progress import progress_bar

__all__ = [
    "ExtractionResult",
    "ImageResult",
    "iter_features",
]


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
    with progress_bar(n, verbose, desc) as bar:
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
