"""Tests for gapsvm.core.cache, directly and through the featurizer: hits cost no network
pass, anything that changes the features misses, and damaged or foreign entries are
recomputed, never trusted.

``Backbone.images_run`` counts images that went through the network in this process; each
test through the featurizer compares it before and after.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
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


@pytest.mark.slow
def test_native_x1_and_the_images_own_size_share_one_entry(imagenet_ready, crops,
                                                           cache_dir) -> None:
    from gapsvm.core.decode import read_image

    image = crops[0]
    own = read_image(image).shape[:2]
    runs = [_run(_fz(cache_dir, input_size=size), [image], maps=True)
            for size in (None, 1.0, own)]
    assert [n for _, n in runs] == [1, 0, 0]  # the same network input is computed once
    assert len(_entries(cache_dir)) == 1
    for res, _ in runs:
        assert res.input_hw == [own] and res.maps[0].shape == (own[0] // 16, own[1] // 16, 512)
        np.testing.assert_array_equal(res.gap, runs[0][0].gap)
    # Another real input size is another entry.
    _, n = _run(_fz(cache_dir, input_size=2.0), [image])
    assert n == 1 and len(_entries(cache_dir)) == 2


def _bad_entries() -> dict[str, Callable[[dict], None]]:
    def short_gap(d):
        d["gap"] = np.ones(100, np.float32)

    def flat_maps(d):
        d["maps"] = np.ones((4, 4, 100), np.float16)

    def float32_maps(d):
        d["maps"] = np.asarray(d["maps"], np.float32)

    def missing_keys(d):
        del d["gap"], d["input_hw"]

    return {f.__name__: f for f in (short_gap, flat_maps, float32_maps, missing_keys)}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(_bad_entries()))
def test_malformed_entry_is_recomputed_and_replaced(imagenet_ready, crops, cache_dir,
                                                    damage) -> None:
    fz = _fz(cache_dir)
    reference = fitted_featurizer().transform(crops[:2])  # no cache at all
    _run(fz, crops[:2])
    victim = _entries(cache_dir)[0]
    good = joblib.load(victim)
    bad = dict(good)
    _bad_entries()[damage](bad)
    joblib.dump(bad, victim)  # where the good entry was, under the right key
    for maps in (False, True):  # whether or not maps are asked for, it is never served
        res, n = _run(fz, crops[:2], maps=maps)
        assert n == (0 if maps else 1) and res.n_computed == n
        np.testing.assert_allclose(res.gap, reference, rtol=1e-5, atol=1e-6)
    repaired = joblib.load(victim)
    assert repaired["gap"].shape == (512,) and repaired["maps"].shape == good["maps"].shape
    np.testing.assert_allclose(repaired["gap"], good["gap"], rtol=1e-5, atol=1e-6)
    assert _run(fz, crops[:2])[1] == 0


# ------------------------------------------------------------------ FeatureCache directly


def test_put_get_round_trip_and_layout(tmp_path) -> None:
    cache = FeatureCache(tmp_path, "vgg16-block5_conv3-abc-float32", channels=512, stride=16)
    key = content_key(b"some encoded image bytes")
    rng = np.random.default_rng(0)
    gap = rng.random(512, dtype=np.float32)
    maps = rng.random((8, 4, 512), dtype=np.float32)
    cache.put(key, gap, maps, (256, 128), (128, 64))
    path = cache.path(key, (128, 64))
    assert path == tmp_path / "v2" / "vgg16-block5_conv3-abc-float32" / "128x64" / key[:2] / (
        key + ".joblib"
    )
    assert _entries(tmp_path) == [path]
    e = cache.get(key, (128, 64), need_maps=True)
    np.testing.assert_array_equal(e.gap, gap)
    assert isinstance(e.maps, np.memmap) and e.maps.dtype == np.float16
    np.testing.assert_array_equal(e.maps, maps.astype(np.float16))
    assert (e.image_hw, e.input_hw) == ((256, 128), (128, 64))
    assert cache.get(content_key(b"other"), (128, 64)) is None
    assert cache.get(key, (64, 32)) is None  # another network input: another entry
    # A caller that expects another image size (a header's guess) gets a miss, not this entry.
    assert cache.get(key, (128, 64), image_hw=(128, 256)) is None
    assert cache.get(key, (128, 64), image_hw=(256, 128)) is not None


def test_entry_under_the_wrong_key_is_a_miss(tmp_path) -> None:
    cache = FeatureCache(tmp_path, "bb")
    k1, k2 = content_key(b"one"), content_key(b"two")
    cache.put(k1, np.ones(4, np.float32), None, (2, 2), (224, 224))
    cache.path(k2, (224, 224)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache.path(k1, (224, 224)), cache.path(k2, (224, 224)))
    assert cache.get(k2, (224, 224)) is None
    assert cache.get(k1, (224, 224), need_maps=True) is None  # stored without maps
    # The same bytes moved under another input size do not pass for it either.
    cache.path(k1, (128, 64)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache.path(k1, (224, 224)), cache.path(k1, (128, 64)))
    assert cache.get(k1, (128, 64)) is None
    assert FeatureCache(tmp_path, "other-bb").get(k1, (224, 224)) is None


def _good_payload(cache: FeatureCache, key: str) -> dict:
    return {
        "key": f"{cache.backbone_key}/64x32/{key}",
        "gap": np.ones(8, np.float32),
        "maps": np.ones((4, 2, 8), np.float16),
        "image_hw": (64, 32),
        "input_hw": (64, 32),
    }


@pytest.mark.parametrize(
    "damage",
    [
        {"gap": np.ones(5, np.float32)},  # another backbone's length
        {"gap": np.ones((1, 8), np.float32)},
        {"gap": np.ones(8, np.float64)},
        {"gap": np.full(8, np.nan, np.float32)},
        {"maps": np.ones((4, 2, 5), np.float16)},
        {"maps": np.ones((9, 2, 8), np.float16)},  # not a 64x32 input at stride 16
        {"maps": np.ones((4, 2, 8), np.float32)},
        {"maps": np.ones((8, 8), np.float16)},
        {"input_hw": (32, 64)},
        {"image_hw": "64x32"},
        {"gap": None},
        "no maps",
        "no image_hw",
    ],
    ids=["gap-length", "gap-2d", "gap-dtype", "gap-nan", "maps-channels", "maps-grid",
         "maps-dtype", "maps-2d", "input_hw", "image_hw", "gap-none", "no-maps",
         "no-image_hw"],
)
def test_malformed_entry_is_a_miss(tmp_path, damage) -> None:
    cache = FeatureCache(tmp_path, "bb", channels=8, stride=16)
    key = content_key(b"image")
    good = _good_payload(cache, key)
    path = cache.path(key, (64, 32))
    path.parent.mkdir(parents=True)
    joblib.dump(good, path)
    assert cache.get(key, (64, 32), need_maps=True) is not None  # the good one is served
    bad = dict(good)
    if damage == "no maps":
        del bad["maps"]
    elif damage == "no image_hw":
        del bad["image_hw"]
    else:
        bad.update(damage)
    joblib.dump(bad, path)
    assert cache.get(key, (64, 32)) is None
    assert cache.get(key, (64, 32), need_maps=True) is None


def test_maps_grid_allows_either_rounding_of_the_stride(tmp_path) -> None:
    # VGG's valid pooling floors a 72-px side at stride 16 (4 cells); "same" padding ceils (5).
    cache = FeatureCache(tmp_path, "bb", channels=2, stride=16)
    for cells in (3, 4, 5, 6):
        key = content_key(f"image {cells}".encode())
        cache.put(key, np.ones(2, np.float32), np.ones((cells, 2, 2)), (72, 32), (72, 32))
        assert (cache.get(key, (72, 32), need_maps=True) is not None) == (cells in (4, 5))


def test_layout_v1_entries_are_never_read(tmp_path) -> None:
    key = content_key(b"image")
    old = tmp_path / "v1" / "bb" / "native" / key[:2] / f"{key}.joblib"
    old.parent.mkdir(parents=True)
    joblib.dump({"key": f"bb/native/{key}", "gap": np.ones(4, np.float32), "maps": None,
                 "image_hw": (64, 32), "input_hw": (64, 32)}, old)
    cache = FeatureCache(tmp_path, "bb", channels=4)
    assert cache.get(key, (64, 32)) is None
    cache.put(key, np.zeros(4, np.float32), None, (64, 32), (64, 32))
    np.testing.assert_array_equal(cache.get(key, (64, 32)).gap, np.zeros(4))
    assert old.exists()  # left alone


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

    cache = FeatureCache(tmp_path, "bb")
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

    cache = FeatureCache(tmp_path, "bk")
    key = content_key(b"image")
    gap = np.arange(4, dtype=np.float32)
    cache.put(key, gap, None, (8, 8), (32, 32))
    assert np.array_equal(cache.get(key, (32, 32)).gap, gap)  # from the file, now remembered
    hit = cache.get(key, (32, 32))
    assert np.array_equal(hit.gap, gap) and not hit.gap.flags.writeable  # from memory
    # Another process replaces the entry (atomically, as put does): the new file is read.
    path = cache.path(key, (32, 32))
    payload = joblib.load(path)
    payload["gap"] = gap + 1
    tmp = path.with_name("other.joblib")
    joblib.dump(payload, tmp)
    os.replace(tmp, path)
    assert np.array_equal(cache.get(key, (32, 32)).gap, gap + 1)
    # A cache that knows the backbone's channels does not take the remembered vector blindly.
    assert FeatureCache(tmp_path, "bk", channels=5).get(key, (32, 32)) is None
    path.unlink()
    assert cache.get(key, (32, 32)) is None
