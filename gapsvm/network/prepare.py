"""Reading a chunk of images for the network: hash, cache lookup, decode and resize.

:func:`prepare_images` turns each image into one of three typed items: a :class:`CacheHit`,
a :class:`PendingImage` waiting for the network, or a :class:`ReadFailure`. The cache is
keyed by the size that reaches the network, known before decoding from a fixed size or the
image's header, so a hit costs no decode. :mod:`gapsvm.network.extraction` runs the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gapsvm.core.cache import CacheEntry, FeatureCache, content_key
from gapsvm.core.decode import (
    ImageReadError,
    decode_for_input,
    header_size,
    read_bytes,
    resize_image,
)
from gapsvm.core.sizes import target_size
from gapsvm.network.backbone.build import Backbone

__all__ = [
    "CacheHit",
    "PendingImage",
    "PreparedImage",
    "ReadFailure",
    "open_cache",
    "prepare_images",
]


@dataclass(frozen=True)
class CacheHit:
    """An image whose features the cache already holds, and its cache key."""

    index: int
    entry: CacheEntry
    key: str


@dataclass(frozen=True)
class PendingImage:
    """An image read, hashed and resized, waiting for the network.

    Attributes
    ----------
    index : int
        Its position in the input.
    key : str
        Its cache key (:func:`gapsvm.core.cache.content_key`).
    pixels : ndarray of shape (input_hw[0], input_hw[1], 3), uint8
        What the network will see.
    image_hw, input_hw : tuple of int
        The image's own size and the size the network sees.
    """

    index: int
    key: str
    pixels: np.ndarray
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]


@dataclass(frozen=True)
class ReadFailure:
    """An image that could not be read or decoded."""

    index: int
    error: ImageReadError


PreparedImage = CacheHit | PendingImage | ReadFailure


def open_cache(root: str | os.PathLike | None, backbone: Backbone) -> FeatureCache | None:
    """The feature cache of ``backbone`` under ``root`` (None: no cache), checking every entry
    it reads against the backbone's channels and stride."""
    if root is None:
        return None
    return FeatureCache(
        root, backbone.key, channels=backbone.spec.channels, stride=backbone.spec.stride
    )


def prepare_images(
    sources: Sequence[Any],
    names: Sequence[str],
    indices: Iterable[int],
    *,
    cache: FeatureCache | None,
    need_maps: bool,
    input_size: Any,
    min_side: int,
) -> list[PreparedImage]:
    """Read, hash, look up and (on a miss) decode and resize the images at ``indices``.

    Parameters
    ----------
    sources : sequence of path or ndarray
    names : sequence of str
        Names for error messages, parallel to ``sources``.
    indices : iterable of int
        Which sources to prepare, in this order.
    cache : FeatureCache or None
    need_maps : bool
        A cache entry without maps is a miss.
    input_size : tuple of int, float or None
        As returned by :func:`gapsvm.core.sizes.parse_input_size`.
    min_side : int
        The backbone's smallest input side (:attr:`BackboneSpec.min_side`).

    Returns
    -------
    list of CacheHit, PendingImage or ReadFailure
        One per index, in order.
    """
    out: list[PreparedImage] = []
    for i in indices:
        src = sources[i]
        try:
            data = src if isinstance(src, np.ndarray) else read_bytes(src)
            key = content_key(data)
            guess = _own_size(data)
            want = _network_input(guess, input_size, min_side)
            entry = _lookup(cache, key, want, guess, input_size, need_maps)
            if entry is not None:
                out.append(CacheHit(i, entry, key))
                continue
            if isinstance(data, np.ndarray):
                img, hw = data, tuple(data.shape[:2])
            else:
                # A large JPEG decodes at 1/2, 1/4 or 1/8 scale for a small network input.
                # That choice follows the input alone, never the size option's spelling, so
                # an entry's pixels depend only on (content, input size), its cache key.
                img, hw = decode_for_input(data, names[i], want)
            thw = target_size(hw, input_size, min_side=min_side, name=names[i])
            if hw != guess and not isinstance(input_size, tuple):
                # The header was wrong about the size (EXIF rotation) or silent about it.
                entry = _lookup(cache, key, thw, hw, input_size, need_maps)
                if entry is not None:
                    out.append(CacheHit(i, entry, key))
                    continue
            out.append(PendingImage(i, key, resize_image(img, thw), hw, thw))
        except ImageReadError as exc:
            out.append(ReadFailure(i, exc))
    return out


def _own_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """An image's (height, width) before decoding: exact for arrays, the header's word for
    files (None when the header is not understood)."""
    if isinstance(data, np.ndarray):
        return (int(data.shape[0]), int(data.shape[1]))
    return header_size(data)


def _network_input(
    image_hw: tuple[int, int] | None, input_size: Any, min_side: int
) -> tuple[int, int] | None:
    """The (height, width) the network will see, known before decoding: a fixed size, or
    ``target_size`` of the image's own size; None when that size is unknown or refused
    (refusals are reported once the image is decoded)."""
    if isinstance(input_size, tuple):
        return input_size
    if image_hw is None:
        return None
    try:
        return target_size(image_hw, input_size, min_side=min_side)
    except ValueError:  # ImageReadError included
        return None


def _lookup(
    cache: FeatureCache | None,
    key: str,
    input_hw: tuple[int, int] | None,
    image_hw: tuple[int, int] | None,
    input_size: Any,
    need_maps: bool,
) -> CacheEntry | None:
    """The cached entry of content ``key`` at network input ``input_hw``, found before
    decoding.

    Entries are keyed by the network input's size, so ``native``, ``x1`` and a fixed size
    equal to the image's own find the same entry. A fixed size needs no image size; otherwise
    the entry must have been recorded for ``image_hw``, so that a wrong guess is a miss.
    """
    if cache is None or input_hw is None:
        return None
    fixed = isinstance(input_size, tuple)
    return cache.get(key, input_hw, need_maps, image_hw=None if fixed else image_hw)
