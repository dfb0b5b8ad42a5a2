"""Tests for gapsvm.network.prepare: each image of a chunk becomes one typed item (a cache
hit, an image waiting for the network, or a read failure), with a stand-in cache."""

from __future__ import annotations

import _network
import numpy as np

from gapsvm import ImageReadError
from gapsvm.core.cache import FeatureCache
from gapsvm.core.decode import read_image
from gapsvm.network.prepare import CacheHit, PendingImage, ReadFailure, prepare_images

small_images = _network.small_images  # the shared fixture


def test_prepare_images_gives_one_typed_item_per_image(small_images, tmp_path) -> None:
    from gapsvm.core.cache import content_key
    from gapsvm.core.decode import read_bytes

    names = [str(p) for p in small_images]
    cache = FeatureCache(tmp_path / "c", "fake")
    key0 = content_key(read_bytes(small_images[0]))
    cache.put(key0, np.ones(3, np.float32), None, (40, 24), (64, 32))
    items = prepare_images(names, names, [0, 1, 5], cache=cache, need_maps=False,
                           input_size=(64, 32), min_side=32)
    hit, pending, failure = items
    assert isinstance(hit, CacheHit) and hit.index == 0 and hit.entry.input_hw == (64, 32)
    assert isinstance(pending, PendingImage) and pending.index == 1
    assert pending.key == content_key(read_bytes(small_images[1]))
    assert pending.image_hw == (64, 32) and pending.input_hw == (64, 32)
    np.testing.assert_array_equal(pending.pixels, read_image(small_images[1]))
    assert isinstance(failure, ReadFailure) and failure.index == 5
    assert isinstance(failure.error, ImageReadError) and failure.error.path == names[5]
    # The same entry without maps is a miss when maps are needed.
    (again,) = prepare_images(names, names, [0], cache=cache, need_maps=True,
                              input_size=(64, 32), min_side=32)
    assert isinstance(again, PendingImage)
