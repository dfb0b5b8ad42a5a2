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
from gapsvm.network.extraction import extract, iter_features

eight = _network.eight  # the shared fixtures
small_images = _network.small_images


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


def test_keys_are_the_content_hashes_computed_or_cached(mixed_folder, cache_dir) -> None:
    from gapsvm.core.cache import content_key

    files, bad_idx = mixed_folder
    fz = fitted_featurizer(cache_dir=cache_dir)
    want = [None if i in bad_idx else content_key(Path(f).read_bytes())
            for i, f in enumerate(files)]
    first = fz.extract(files, on_error="skip")
    again = fz.extract(files, on_error="skip")  # every readable image from the cache now
    assert first.n_computed > 0 and again.n_computed == 0
    assert first.keys == want and again.keys == want


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


@pytest.mark.parametrize("input_size", [(64, 32), None])
def test_prefetch_depth_changes_nothing_but_timing(small_images, tmp_path, input_size) -> None:
    runs = {}
    for prefetch in (0, 1, 2, 5):
        cache = FeatureCache(tmp_path / f"cache{prefetch}", "fake")
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


# ------------------------------------------------------------------ cache keys: the real input


def test_native_x1_and_own_size_are_one_entry_per_network_input(small_images, tmp_path) -> None:
    cache = FeatureCache(tmp_path / "c", "fake")
    files = [str(p) for p in small_images[:3]]  # 40x24, 64x32, 20x50
    array = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    for sources in (files, [array]):
        runs = []
        for size in (None, 1.0, "own"):
            bb = FakeBackbone(min_side=16)
            for src in sources:
                own = (read_image(src) if isinstance(src, str) else src).shape[:2]
                (r,) = iter_features([src], bb, input_size=own if size == "own" else size,
                                     cache=cache)
                runs.append((size, r))
            assert len(bb.batches) == (len(sources) if size is None else 0), size
        for _, r in runs:
            assert r.input_hw == r.image_hw
        assert {r.input_hw for _, r in runs} == {r.input_hw for s, r in runs if s is None}
    by_size = sorted(p.parent.parent.name for p in (tmp_path / "c").rglob("*.joblib"))
    assert by_size == ["20x50", "40x24", "48x40", "64x32"]  # one entry per image


def test_a_header_wrong_about_the_size_costs_a_decode_never_a_wrong_entry(tmp_path) -> None:
    from PIL import Image

    # A JPEG stored 64x96 whose EXIF orientation (6: rotate 90) makes it 96x64 once decoded:
    # its header's size is the transpose of the image the network sees at native size.
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(
        path, "JPEG", exif=exif.tobytes()
    )
    assert read_image(path).shape[:2] == (96, 64)
    cache = FeatureCache(tmp_path / "c", "fake")
    # A fixed 64x96 input of this image sits exactly where the header's guess points.
    (fixed,) = iter_features([str(path)], FakeBackbone(), input_size=(64, 96), cache=cache)
    assert fixed.image_hw == (96, 64) and fixed.input_hw == (64, 96)
    for computed in (1, 0):
        bb = FakeBackbone()
        (native,) = iter_features([str(path)], bb, input_size=None, cache=cache)
        assert native.input_hw == (96, 64) and len(bb.batches) == computed
        assert native.cached == (computed == 0)
    want = FakeBackbone()(read_image(path)[None])[1][0]
    np.testing.assert_allclose(native.gap, want, rtol=1e-6)


def test_no_network_pass_exceeds_the_input_pixel_bound() -> None:
    # Memory grows with a pass's pixels: photos at native size are fitted to the bound and
    # run one by one, mid-size images share a pass while it fits, small ones fill batches.
    from gapsvm.core.sizes import MAX_INPUT_PIXELS

    photo = np.zeros((3000, 4000, 3), np.uint8)
    mid = np.zeros((708, 708, 3), np.uint8)  # three fit in the bound, four do not
    small = np.zeros((64, 32, 3), np.uint8)
    strip = np.zeros((1, 20000, 3), np.uint8)
    sources = [photo, photo, photo, strip, *[mid] * 6, *[small] * 8]
    bb = FakeBackbone()
    res = extract(sources, backbone=bb, input_size=None, cache=None, batch_size=8,
                  want_maps=False, on_error="skip")
    assert all(n * h * w <= MAX_INPUT_PIXELS for n, h, w, _ in bb.batches), bb.batches
    assert sorted(bb.batches) == sorted([(1, 1224, 1632, 3)] * 3 + [(3, 708, 708, 3)] * 2
                                        + [(8, 64, 32, 3)])
    assert res.image_hw[0] == (3000, 4000) and res.input_hw[0] == (1224, 1632)
    (err,) = res.errors
    assert err.path == "<array 3>" and "extreme aspect ratio" in err.reason


def test_size_options_reaching_one_input_give_the_same_pixels(tmp_path) -> None:
    from _helpers import write_rgb

    # A JPEG well over twice the input: eligible for libjpeg's reduced-scale decoding, which
    # must then be chosen by the network input alone, or one cache entry would hold
    # different pixels depending on which size option wrote it first.
    path = tmp_path / "photo.jpg"
    yy, xx = np.mgrid[0:192, 0:256]
    write_rgb(path, np.stack([yy, xx, (yy * xx) % 256], axis=-1).astype(np.uint8))
    fresh = {}
    for size in (0.25, (48, 64)):
        bb = FakeBackbone()
        (r,) = iter_features([str(path)], bb, input_size=size)
        assert r.input_hw == (48, 64) and bb.batches == [(1, 48, 64, 3)]
        fresh[size] = r.gap
    np.testing.assert_array_equal(fresh[0.25], fresh[(48, 64)])
    cache = FeatureCache(tmp_path / "c", "fake")
    for size, computed in ((0.25, 1), ((48, 64), 0)):
        bb = FakeBackbone()
        (r,) = iter_features([str(path)], bb, input_size=size, cache=cache)
        assert len(bb.batches) == computed
        np.testing.assert_allclose(r.gap, fresh[size], rtol=1e-6)
