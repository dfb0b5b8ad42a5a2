"""Tests for gapsvm.network.extraction: unreadable files, ordering, batching and read-ahead.

The real-network tests go through GapFeaturizer (its public face); the read-ahead and the
backbone's smallest side are checked with a stand-in backbone (pure numpy, no TensorFlow)
whose features are a plain function of the pixels.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import _network
import numpy as np
import pytest
from _network import fitted_featurizer, images_run

from gapsvm import ImageReadError
from gapsvm.core.cache import FeatureCache
from gapsvm.core.decode import read_image
from gapsvm.network.backbone.registry import get_spec
from gapsvm.network.extraction import (
    CacheHit,
    PendingImage,
    ReadFailure,
    extract,
    iter_features,
    prepare_images,
)

eight = _network.eight  # the shared fixture


# ------------------------------------------------------------------ unreadable files


@pytest.fixture
def mixed_folder(tmp_path, eight, shared_data) -> tuple[list[str], list[int]]:
    """Three good crops and three bad files (corrupt, empty, text renamed .jpg), interleaved."""
    png = Path(eight[0]).read_bytes()
    bad = {
        "corrupt.png": png[:200] + bytes(len(png) - 200),
        "empty.jpg": b"",
        "notes.jpg": b"shopping list: milk, eggs\n",
    }
    files: list[str] = []
    bad_idx: list[int] = []
    for (name, data), good in zip(bad.items(), eight[1:4], strict=True):
        g = tmp_path / f"good {len(files)}.png"
        shutil.copyfile(good, g)
        files.append(str(g))
        b = tmp_path / name
        b.write_bytes(data)
        bad_idx.append(len(files))
        files.append(str(b))
    return files, bad_idx


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1, 2], ids=["corrupt", "empty", "text-as-jpg"])
def test_transform_names_the_bad_file(mixed_folder, which: int, tmp_path) -> None:
    files, bad_idx = mixed_folder
    bad = files[bad_idx[which]]
    good = [f for i, f in enumerate(files) if i not in bad_idx]
    with pytest.raises(ImageReadError) as info:
        fitted_featurizer().transform([*good[:1], bad])
    assert info.value.path == bad and bad in str(info.value)


@pytest.mark.slow
def test_raise_keeps_finished_work_and_lists_the_others(mixed_folder, cache_dir) -> None:
    files, bad_idx = mixed_folder
    fz = fitted_featurizer(cache_dir=cache_dir)
    before = images_run(fz)
    with pytest.raises(ImageReadError) as info:
        fz.transform(files)
    assert images_run(fz) - before == 3
    msg = str(info.value)
    assert info.value.path == files[bad_idx[0]]
    assert "and 2 more unreadable" in msg
    assert files[bad_idx[1]] in msg and files[bad_idx[2]] in msg
    # Every good image was computed and cached before the error: nothing is lost.
    good = [f for i, f in enumerate(files) if i not in bad_idx]
    before = images_run(fz)
    fz.transform(good)
    assert images_run(fz) == before


@pytest.mark.slow
def test_skip_computes_the_good_ones(mixed_folder) -> None:
    files, bad_idx = mixed_folder
    fz = fitted_featurizer()
    res = fz.extract(files, on_error="skip")
    good_idx = [i for i in range(len(files)) if i not in bad_idx]
    assert res.ok.tolist() == [i in good_idx for i in range(len(files))]
    assert np.isnan(res.gap[bad_idx]).all()
    np.testing.assert_allclose(
        res.gap[good_idx], fz.transform([files[i] for i in good_idx]), rtol=1e-5, atol=1e-6
    )
    assert [e.path for e in res.errors] == [files[i] for i in bad_idx]
    assert [e.index for e in res.errors] == bad_idx
    assert "empty" in res.errors[1].reason


# ------------------------------------------------------------------ ordering and inputs


@pytest.mark.slow
def test_native_sizes_keep_input_order(shared_data, eight) -> None:
    smoke = shared_data / "smoke"
    files = [eight[0], str(smoke / "microaneurysms.jpg"), eight[5], str(smoke / "page.jpg")]
    fz = fitted_featurizer(input_size=None, batch_size=2)
    together = fz.extract(files, maps=True)
    assert together.input_hw == [(128, 64), (102, 102), (128, 64), (191, 384)]
    assert together.image_hw == together.input_hw
    assert [m.shape[:2] for m in together.maps] == [(8, 4), (6, 6), (8, 4), (11, 24)]
    for i, f in enumerate(files):
        np.testing.assert_allclose(together.gap[i], fz.transform([f])[0], rtol=1e-4, atol=1e-5)
    maps = fz.transform_maps(files)
    assert isinstance(maps, list) and len(maps) == 4  # sizes differ: a list, not an array


@pytest.mark.slow
def test_batch_size_does_not_change_features(eight) -> None:
    a = fitted_featurizer(batch_size=1).transform(eight)
    b = fitted_featurizer(batch_size=16).transform(eight)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())


@pytest.mark.slow
def test_arrays_and_paths_give_the_same_features(eight) -> None:
    fz = fitted_featurizer()
    arrays = np.stack([read_image(p) for p in eight[:3]])
    np.testing.assert_allclose(fz.transform(arrays), fz.transform(eight[:3]), rtol=1e-6)
    np.testing.assert_allclose(fz.transform(list(arrays)), fz.transform(eight[:3]), rtol=1e-6)
    assert fz.transform_maps(arrays).shape == (3, 8, 4, 512)


# ------------------------------------------------------------------ read-ahead, no network


class FakeBackbone:
    """Stands in for a Backbone: block means of the pixels at the spec's stride (numpy)."""

    def __init__(self, **spec_changes) -> None:
        self.spec = dataclasses.replace(get_spec("vgg16"), channels=3, **spec_changes)
        self.batches: list[tuple[int, ...]] = []
        self.key = "fake-backbone"

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(images.shape)
        n, h, w, _ = images.shape
        s = self.spec.stride
        cells = images[:, : h // s * s, : w // s * s].astype(np.float32)
        maps = cells.reshape(n, h // s, s, w // s, s, 3).mean(axis=(2, 4))
        return maps, maps.mean(axis=(1, 2))


class Recorded:
    """A path that notes which thread opened it (``os.fspath`` is called to open a file)."""

    def __init__(self, path: Path, log: list[tuple[str, str]]) -> None:
        self.path, self.log = str(path), log

    def __fspath__(self) -> str:
        self.log.append((self.path, threading.current_thread().name))
        return self.path


@pytest.fixture
def small_images(tmp_path) -> list[Path]:
    """13 PNGs of a few sizes, one unreadable file among them (index 5)."""
    from _helpers import write_rgb

    rng = np.random.default_rng(0)
    paths = []
    for i in range(13):
        p = tmp_path / f"im{i:02d}.png"
        if i == 5:
            p.write_bytes(b"not an image")
        else:
            h, w = [(40, 24), (64, 32), (20, 50)][i % 3]
            write_rgb(p, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(p)
    return paths


@pytest.mark.parametrize("input_size", [(64, 32), None])
def test_prefetch_depth_changes_nothing_but_timing(small_images, tmp_path, input_size) -> None:
    runs = {}
    for prefetch in (0, 1, 2, 5):
        cache = FeatureCache(tmp_path / f"cache{prefetch}", "fake", str(input_size))
        runs[prefetch] = [
            extract([str(p) for p in small_images], backbone=FakeBackbone(),
                    input_size=input_size, cache=cache, batch_size=4, want_maps=True,
                    on_error="skip", prefetch=prefetch)
            for _ in range(2)  # computed, then served from the cache
        ]
    ref = runs[0][0]
    assert ref.n_computed == 12 and [e.index for e in ref.errors] == [5]
    for prefetch, (fresh, cached) in runs.items():
        assert cached.n_computed == 0, prefetch
        for res in (fresh, cached):
            np.testing.assert_array_equal(res.gap, ref.gap)
            assert res.image_hw == ref.image_hw and res.input_hw == ref.input_hw
            assert [(e.index, e.path) for e in res.errors] == [(5, str(small_images[5]))]
            for got, want in zip(res.maps, ref.maps, strict=True):
                if want is not None:  # cached maps are float16
                    np.testing.assert_allclose(got, want, rtol=2.0**-11)


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_prefetch_reads_ahead_in_one_thread_or_inline(small_images, prefetch) -> None:
    log: list[tuple[str, str]] = []
    sources = [Recorded(p, log) for p in small_images]
    names = [str(p) for p in small_images]
    results = iter_features(sources, FakeBackbone(), input_size=(64, 32), batch_size=4,
                            names=names, prefetch=prefetch)
    first = next(results)
    read_before_first = {p for p, _ in log}
    rest = list(results)
    assert sorted(r.index for r in [first, *rest]) == list(range(13))
    threads = {t for _, t in log}
    main = threading.current_thread().name
    if prefetch == 0:
        assert threads == {main}  # inline: no overlap with the network
        assert len(read_before_first) == 4  # exactly the first chunk
    else:
        assert main not in threads and all(t.startswith("gapsvm-read") for t in threads)
        # At most the current chunk and `prefetch` more were read before the first batch ran.
        assert len(read_before_first) <= 4 * (1 + prefetch)
    assert not [t for t in threading.enumerate() if t.name.startswith("gapsvm-read")]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_prefetch_must_be_a_count(bad, small_images) -> None:
    with pytest.raises(ValueError, match="prefetch must be a non-negative integer"):
        extract([str(small_images[0])], backbone=FakeBackbone(), input_size=None,
                cache=None, batch_size=2, want_maps=False, prefetch=bad)


def test_native_and_scaled_sizes_rise_to_the_backbones_min_side(tmp_path) -> None:
    image = np.zeros((10, 40, 3), np.uint8)  # shorter side 10
    for min_side, input_size, want in [(32, None, (32, 128)), (64, None, (64, 256)),
                                       (64, 2.0, (64, 256)), (64, 8.0, (80, 320)),
                                       (64, (48, 48), (48, 48))]:
        bb = FakeBackbone(min_side=min_side)
        (r,) = iter_features([image], bb, input_size=input_size)
        assert r.image_hw == (10, 40) and r.input_hw == want, (min_side, input_size)
        assert bb.batches == [(1, *want, 3)]


def test_prepare_images_gives_one_typed_item_per_image(small_images, tmp_path) -> None:
    from gapsvm.core.cache import content_key
    from gapsvm.core.decode import read_bytes

    names = [str(p) for p in small_images]
    cache = FeatureCache(tmp_path / "c", "fake", "64x32")
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


@pytest.mark.slow
def test_runs_of_cache_hits_read_inline_with_the_same_results(shared_data, persons,
                                                               tmp_path) -> None:
    from gapsvm import GapFeaturizer

    paths = persons[0][:40]
    fz = GapFeaturizer(weights=None, input_size=(32, 32), cache_dir=tmp_path, batch_size=4,
                       verbose=0).fit()
    first = fz.extract(paths[:20])
    mixed = fz.extract(paths)  # 5 chunks of hits, then 5 of misses
    again = fz.extract(paths)
    assert first.n_computed == 20 and mixed.n_computed == 20 and again.n_computed == 0
    assert np.array_equal(mixed.gap, again.gap) and np.array_equal(mixed.gap[:20], first.gap)
