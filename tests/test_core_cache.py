"""Tests for gapsvm.core.cache, directly and through the featurizer: hits cost no network
pass, anything that changes the features misses, and damaged or foreign entries are
recomputed, never trusted.

``Backbone.images_run`` counts images that went through the network in this process; each
test through the featurizer compares it before and after.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
from _network import fitted_featurizer, images_run

from gapsvm import GapFeaturizer
from gapsvm.core.cache import FeatureCache, content_key


@pytest.fixture(scope="module")
def crops(persons, imagenet_ready) -> list[str]:
    paths, _ = persons
    return [paths[i] for i in (0, 1, 2, 797, 798, 799)]  # 3 not_person, 3 person


def _fz(cache_dir, **kw) -> GapFeaturizer:
    return fitted_featurizer(cache_dir=cache_dir, **kw)  # ImageNet weights, 128x64


def _run(fz: GapFeaturizer, X, **kw):
    before = images_run(fz)
    res = fz.extract(X, **kw)
    return res, images_run(fz) - before


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in Path(cache_dir).rglob("*.joblib") if not p.name.startswith("."))


@pytest.mark.slow
def test_second_run_makes_no_network_call(imagenet_ready, crops, cache_dir) -> None:
    fz = _fz(cache_dir)
    first, n1 = _run(fz, crops)
    assert n1 == len(crops) and first.n_computed == len(crops)
    assert len(_entries(cache_dir)) == len(crops)
    second, n2 = _run(fz, crops)
    assert n2 == 0 and second.n_computed == 0
    np.testing.assert_array_equal(second.gap, first.gap)
    # A fresh estimator (as GridSearchCV clones make) shares the same cache.
    third, n3 = _run(_fz(cache_dir), crops[::-1])
    assert n3 == 0
    np.testing.assert_array_equal(third.gap, first.gap[::-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [{"weights": None}, {"input_size": (96, 48)}, {"precision": "bfloat16"}],
    ids=["weights", "size", "precision"],
)
def test_anything_that_changes_features_misses(imagenet_ready, crops, cache_dir, change) -> None:
    _run(_fz(cache_dir), crops[:2])
    res, n = _run(_fz(cache_dir, **change), crops[:2])
    assert n == 2 and res.n_computed == 2
    assert len(_entries(cache_dir)) == 4  # a separate entry per configuration
    _, again = _run(_fz(cache_dir, **change), crops[:2])
    assert again == 0  # and that configuration is now cached in turn


@pytest.mark.slow
def test_same_content_under_another_name_is_a_hit(imagenet_ready, crops, cache_dir, tmp_path):
    fz = _fz(cache_dir)
    first, _ = _run(fz, crops[:1])
    copy = tmp_path / "renamed copy.png"
    shutil.copyfile(crops[0], copy)
    res, n = _run(fz, [copy])
    assert n == 0
    np.testing.assert_array_equal(res.gap, first.gap)


@pytest.mark.slow
def test_truncated_entry_is_recomputed_not_trusted(imagenet_ready, crops, cache_dir) -> None:
    fz = _fz(cache_dir)
    first, _ = _run(fz, crops[:3])
    victim = _entries(cache_dir)[1]
    size = victim.stat().st_size
    victim.write_bytes(victim.read_bytes()[: size // 3])  # as a crash mid-write would leave it
    res, n = _run(fz, crops[:3])
    assert n == 1
    np.testing.assert_allclose(res.gap, first.gap, rtol=1e-5, atol=1e-6)
    assert victim.stat().st_size == size  # rewritten whole
    assert _run(fz, crops[:3])[1] == 0


@pytest.mark.slow
def test_foreign_pickle_in_the_cache_is_not_executed(imagenet_ready, crops, cache_dir, tmp_path):
    fz = _fz(cache_dir)
    _run(fz, crops[:1])
    (victim,) = _entries(cache_dir)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    joblib.dump({"key": "x", "gap": Payload()}, victim)
    # Someone planted it: recomputed, and said so.
    with pytest.warns(RuntimeWarning, match=r"ignoring feature cache entry.*references io\.open"):
        _, n = _run(fz, crops[:1])
    assert n == 1 and not marker.exists()
    assert _run(fz, crops[:1])[1] == 0  # overwritten with a good entry


@pytest.mark.slow
def test_non_ascii_paths_with_spaces(imagenet_ready, crops, tmp_path) -> None:
    folder = tmp_path / "données d'été" / "写真 集"
    folder.mkdir(parents=True)
    images = []
    for i, p in enumerate(crops[:2]):
        dst = folder / f"image n° {i}.png"
        shutil.copyfile(p, dst)
        images.append(str(dst))
    cache = tmp_path / "caché dir"
    fz = _fz(cache)
    res, n = _run(fz, images)
    assert n == 2 and np.isfinite(res.gap).all()
    res2, n2 = _run(fz, images)
    assert n2 == 0
    np.testing.assert_array_equal(res2.gap, res.gap)


@pytest.mark.slow
def test_vector_only_entries_miss_when_maps_are_needed(imagenet_ready, crops, cache_dir) -> None:
    fz = _fz(cache_dir, cache_maps=False)
    _run(fz, crops[:2])
    assert _run(fz, crops[:2])[1] == 0
    res, n = _run(fz, crops[:2], maps=True)
    assert n == 2 and res.maps[0].shape == (8, 4, 512)
    # With cache_maps=True the maps are kept, and later map requests are served from disk.
    fz_maps = _fz(cache_dir)
    _run(fz_maps, crops[:2], maps=True)
    res, n = _run(fz_maps, crops[:2], maps=True)
    assert n == 0 and res.maps[0].dtype == np.float16


@pytest.mark.slow
def test_cached_maps_match_fresh_ones_within_float16(imagenet_ready, crops, cache_dir) -> None:
    fz = _fz(cache_dir)
    fresh, _ = _run(fz, crops[:2], maps=True)
    cached, n = _run(fz, crops[:2], maps=True)
    assert n == 0
    for a, b in zip(fresh.maps, cached.maps, strict=True):
        assert a.dtype == np.float32 and b.dtype == np.float16
        # float16 keeps 11 significant bits: relative rounding error at most 2**-11.
        np.testing.assert_allclose(b, a, rtol=2.0**-11, atol=1e-7)
    np.testing.assert_array_equal(cached.gap, fresh.gap)  # vectors are stored as float32


# ------------------------------------------------------------------ FeatureCache directly


def test_put_get_round_trip_and_layout(tmp_path) -> None:
    cache = FeatureCache(tmp_path, "vgg16-block5_conv3-abc-float32", "128x64")
    key = content_key(b"some encoded image bytes")
    rng = np.random.default_rng(0)
    gap = rng.random(512, dtype=np.float32)
    maps = rng.random((8, 4, 512), dtype=np.float32)
    cache.put(key, gap, maps, (128, 64), (128, 64))
    path = cache.path(key)
    assert path == tmp_path / "v1" / "vgg16-block5_conv3-abc-float32" / "128x64" / key[:2] / (
        key + ".joblib"
    )
    e = cache.get(key, need_maps=True)
    np.testing.assert_array_equal(e.gap, gap)
    assert isinstance(e.maps, np.memmap) and e.maps.dtype == np.float16
    np.testing.assert_array_equal(e.maps, maps.astype(np.float16))
    assert (e.image_hw, e.input_hw) == ((128, 64), (128, 64))
    assert key in cache and content_key(b"other") not in cache


def test_entry_under_the_wrong_key_is_a_miss(tmp_path) -> None:
    cache = FeatureCache(tmp_path, "bb", "224x224")
    k1, k2 = content_key(b"one"), content_key(b"two")
    cache.put(k1, np.ones(4, np.float32), None, (2, 2), (2, 2))
    cache.path(k2).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache.path(k1), cache.path(k2))
    assert cache.get(k2) is None
    assert cache.get(k1, need_maps=True) is None  # stored without maps
    other = FeatureCache(tmp_path, "bb", "128x64")
    assert other.get(k1) is None


def test_content_key_covers_pixels_shape_and_dtype() -> None:
    a = np.zeros((4, 6, 3), np.uint8)
    assert content_key(a) != content_key(a.reshape(6, 4, 3))
    assert content_key(a) != content_key(a.tobytes())
    b = a.copy()
    b[3, 5, 2] = 1
    assert content_key(a) != content_key(b)
    assert content_key(a) == content_key(a.copy())


def test_clean_removes_only_old_temporary_files(tmp_path) -> None:
    import os
    import time

    cache = FeatureCache(tmp_path, "bb", "native")
    cache.put(content_key(b"x"), np.ones(4, np.float32), None, (2, 2), (2, 2))
    old = cache.folder / ".tmp-old.joblib"
    new = cache.folder / ".tmp-new.joblib"
    old.write_bytes(b"partial")
    new.write_bytes(b"partial")
    t = time.time() - 7200
    os.utime(old, (t, t))
    assert cache.clean(older_than=3600) == 1
    assert not old.exists() and new.exists() and len(_entries(tmp_path)) == 1


def test_memo_serves_vectors_but_rereads_a_replaced_or_deleted_entry(tmp_path) -> None:
    import os

    cache = FeatureCache(tmp_path, "bk", "32x32")
    key = content_key(b"image")
    gap = np.arange(4, dtype=np.float32)
    cache.put(key, gap, None, (8, 8), (32, 32))
    assert np.array_equal(cache.get(key).gap, gap)  # from the file, now remembered
    hit = cache.get(key)
    assert np.array_equal(hit.gap, gap) and not hit.gap.flags.writeable  # from memory
    # Another process replaces the entry (atomically, as put does): the new file is read.
    path = cache.path(key)
    payload = joblib.load(path)
    payload["gap"] = gap + 1
    tmp = path.with_name("other.joblib")
    joblib.dump(payload, tmp)
    os.replace(tmp, path)
    assert np.array_equal(cache.get(key).gap, gap + 1)
    path.unlink()
    assert cache.get(key) is None
