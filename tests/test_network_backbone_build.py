"""Tests for gapsvm.network.backbone.build: map shapes at stride 16, the per-process cache,
the forward pass; then, for every registry backbone: map shapes, its own preprocessing,
weights files, the CAM identity, cache keys and ``gapsvm features --backbone``.

Random seeded weights (``weights=None``) wherever ImageNet behaviour is not the point; where
ImageNet weights come from, and their checks, are tested in test_network_backbone_weights.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import write_rgb

from gapsvm.network.backbone.build import (
    Backbone,
    build_model,
    built_backbones,
    get_backbone,
    run_grouped_convs_as_depthwise,
)
from gapsvm.network.backbone.registry import BACKBONES, get_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_bb():
    return get_backbone("vgg16", None)


@pytest.mark.parametrize(
    "hw, want",
    [((224, 224), (14, 14)), ((128, 64), (8, 4)), ((64, 96), (4, 6)), ((40, 40), (2, 2))],
)
def test_block5_map_shapes_follow_stride_16(random_bb, hw, want) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, *hw, 3), dtype=np.uint8)
    maps, gap = random_bb(images)
    assert maps.shape == (2, *want, 512) and maps.dtype == np.float32
    assert gap.shape == (2, 512) and gap.dtype == np.float32


def test_gap_is_the_spatial_mean_of_the_maps_and_maps_are_post_relu(random_bb) -> None:
    rng = np.random.default_rng(1)
    maps, gap = random_bb(rng.integers(0, 256, (3, 96, 64, 3), dtype=np.uint8))
    np.testing.assert_allclose(gap, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert maps.min() >= 0.0 and maps.max() > 0.0  # block5_conv3 has a ReLU


def test_images_are_independent_within_a_batch(random_bb) -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    _, together = random_bb(images)
    _, alone = random_bb(images[1:2])
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-4, atol=1e-5)


def test_images_run_counts_network_images(random_bb) -> None:
    before = random_bb.images_run
    random_bb(np.zeros((5, 32, 32, 3), np.uint8))
    random_bb(np.zeros((1, 48, 32, 3), np.uint8))
    assert random_bb.images_run - before == 6


def test_get_backbone_builds_once_per_configuration(random_bb) -> None:
    assert get_backbone("vgg16", None) is random_bb
    assert get_backbone("vgg16", None, "float32") is random_bb
    assert built_backbones().count(random_bb) == 1  # built once, listed once


def test_the_network_is_built_on_first_use_and_checked_against_its_record(
    random_bb, tmp_path, monkeypatch
) -> None:
    from gapsvm.network.backbone.weights import (
        WeightsError,
        identity_key,
        record_identity,
        recorded_identity,
    )

    monkeypatch.setenv("GAPSVM_HOME", str(tmp_path / "home"))
    spec = get_spec("vgg16")
    key = identity_key(spec, None, "float32")
    record_identity(key, random_bb.identity.sha256)
    bb = Backbone(spec, None)
    assert not bb.built and bb.identity == random_bb.identity and bb.key == random_bb.key
    images = _images(6, 2, 48, 32)
    np.testing.assert_array_equal(bb(images)[1], random_bb(images)[1])
    assert bb.built and bb.images_run == 2
    # A record that does not match the network (stale, or edited) fails the first pass, which
    # corrects it for the next run.
    record_identity(key, "f" * 64)
    stale = Backbone(spec, None)
    assert stale.identity.sha256 == "f" * 64 and not stale.built
    with pytest.raises(WeightsError, match="identity record was stale; run again"):
        stale(images)
    assert recorded_identity(spec, None, key) == random_bb.identity


def test_forward_is_the_compiled_pass_the_call_wraps(random_bb) -> None:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    before = random_bb.images_run
    maps, gap = random_bb.forward(images)
    assert random_bb.images_run == before  # only the wrapper counts
    want_maps, want_gap = random_bb(images)
    np.testing.assert_array_equal(maps.numpy(), want_maps)
    np.testing.assert_array_equal(gap.numpy(), want_gap)


def test_key_and_metadata_identify_what_is_computed(random_bb) -> None:
    ident = random_bb.identity
    assert random_bb.key == f"vgg16-block5_conv3-{ident.sha256[:20]}-float32"
    meta = random_bb.metadata()
    assert meta == {
        "backbone": "vgg16", "layer": "block5_conv3", "stride": 16,
        "weights": {"name": "random(seed=0)", "sha256": ident.sha256}, "precision": "float32",
    }
    assert not random_bb.model.trainable
    assert random_bb.model.output.shape[1:] == (None, None, 512)


def test_preprocessing_is_vgg16_caffe_style_on_rgb(random_bb) -> None:
    # The network sees BGR-ordered, ImageNet-mean-centred input: check against Keras' own
    # preprocess_input applied by hand before the raw model.
    import keras

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    by_hand = keras.applications.vgg16.preprocess_input(images.astype(np.float32))
    want = np.asarray(random_bb.model(by_hand, training=False))
    maps, _ = random_bb(images)
    np.testing.assert_allclose(maps, want, rtol=1e-4, atol=1e-4 * want.max())
    # And channel order matters: swapping R and B changes the features.
    swapped, _ = random_bb(images[..., ::-1])
    assert not np.allclose(swapped, maps, rtol=1e-3)


# -- every registry backbone ---------------------------------------------------------------
# Small inputs, random seeded weights (one build per backbone and process, shared with the
# registry tests): what each entry promises holds for the network it builds.

ALL = sorted(BACKBONES)


def _images(seed: int, n: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ALL)
def test_map_shapes_follow_each_backbones_stride(name: str) -> None:
    bb = get_backbone(name, None)
    spec = bb.spec
    maps, gap = bb(_images(5, 2, 64, 96))
    assert maps.shape == (2, 64 // spec.stride, 96 // spec.stride, spec.channels)
    assert gap.shape == (2, spec.channels) and maps.dtype == gap.dtype == np.float32
    np.testing.assert_allclose(gap, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    # Usable random features: finite, varying over space, channels and images.
    assert np.isfinite(maps).all() and maps.std(axis=(1, 2)).max() > 0
    assert not np.allclose(gap[0], gap[1])


# What each application expects before its network, written out here: VGG16 BGR minus the
# ImageNet means, ResNet50V2 pixels scaled to [-1, 1], and raw 0-255 RGB for those that
# rescale inside the network (include_preprocessing).
_MEANS_BGR = np.array([103.939, 116.779, 123.68], np.float32)
EXPECTED_INPUT = {
    "vgg16": lambda x: x[..., ::-1] - _MEANS_BGR,
    "resnet50v2": lambda x: x / 127.5 - 1.0,
    "efficientnetv2b0": lambda x: x,
    "convnext_tiny": lambda x: x,
    "mobilenetv3large": lambda x: x,
}
RESCALES_INSIDE = {"efficientnetv2b0", "convnext_tiny", "mobilenetv3large"}


@pytest.mark.parametrize("name", ALL)
def test_preprocessing_is_the_applications_own_and_applied_once(name: str) -> None:
    bb = get_backbone(name, None)
    images = _images(6, 1, 64, 64)
    want = np.asarray(bb.model(EXPECTED_INPUT[name](images.astype(np.float32)), training=False))
    maps, _ = bb(images)
    np.testing.assert_allclose(maps, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    first = [type(la).__name__ for la in bb.model.layers[1:3]]
    if name in RESCALES_INSIDE:
        assert {"Rescaling", "Normalization"} & set(first), first
    else:
        assert not {"Rescaling", "Normalization"} & set(first), first
    # Keras' own preprocess_input agrees: pass-through exactly where the network rescales.
    module_pre = bb.spec.preprocess()(images.astype(np.float32))
    np.testing.assert_allclose(module_pre, EXPECTED_INPUT[name](images.astype(np.float32)),
                               rtol=1e-6, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n != "vgg16"])
def test_a_weights_file_saved_from_a_random_model_loads_offline(name: str, tmp_path) -> None:
    import hashlib

    import keras

    spec = get_spec(name)
    full = spec.build_full(None)  # Keras' own random initialisation, not gapsvm's seeded one
    assert full.get_layer(spec.layer).output.shape[-1] == spec.channels  # a stable name
    path = tmp_path / f"{name} random.weights.h5"
    full.save_weights(str(path))
    model, ident = build_model(spec, str(path))
    # Identified by content: every array of every layer up to the cut, written out here.
    h = hashlib.sha256()
    for layer in full.layers:
        for a in layer.get_weights():
            h.update(np.asarray(a, "<f4").tobytes())
        if layer.name == spec.layer:
            break
    assert ident.name == path.name and ident.sha256 == h.hexdigest()
    assert ident.sha256 != get_backbone(name, None).identity.sha256
    x = EXPECTED_INPUT[name](_images(7, 1, 64, 64).astype(np.float32))
    want = keras.Model(full.input, full.get_layer(spec.layer).output)(x, training=False)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.asarray(want),
                               rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory):
    """8 random 64x64 PNGs in two class folders, and their pixels."""
    root = tmp_path_factory.mktemp("two_classes")
    pixels = _images(8, 8, 64, 64)
    pixels[4:] //= 2  # class b darker
    paths = [write_rgb(root / ("a" if i < 4 else "b") / f"{i}.png", p)
             for i, p in enumerate(pixels)]
    return root, [str(p) for p in paths], np.array(["a"] * 4 + ["b"] * 4), pixels


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # not the point
@pytest.mark.parametrize("name", ALL)
def test_cam_mean_plus_intercept_is_decision_function(name: str, two_classes) -> None:
    from gapsvm import GapClassifier

    _, paths, y, _ = two_classes
    clf = GapClassifier(backbone=name, weights=None, input_size=(64, 64), cache_dir=None)
    clf.fit(paths, y)
    d = clf.decision_function(paths)
    want = np.stack([-d, d], axis=1)
    _, b = clf.head_.cam_weights()
    cells = 64 // get_spec(name).stride
    for c, label in enumerate(clf.classes_):
        cams = clf.cam(paths, target=label, size="features", normalize=False)
        assert cams.shape == (8, cells, cells)
        got = cams.mean(axis=(1, 2), dtype=np.float64) + b[c]
        np.testing.assert_allclose(got, want[:, c], rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_cache_entries_are_kept_apart_per_backbone(two_classes, tmp_path) -> None:
    from gapsvm import GapFeaturizer

    _, paths, _, _ = two_classes
    cache = tmp_path / "cache"
    for name in ALL:
        fz = GapFeaturizer(backbone=name, weights=None, input_size=(64, 64), cache_dir=cache)
        first = fz.fit().transform(paths[:2])
        again = fz.transform(paths[:2])  # from this backbone's own entries
        np.testing.assert_array_equal(again, first)
        assert first.shape == (2, get_spec(name).channels)
    keys = {name: get_backbone(name, None).key for name in ALL}
    assert all(key.startswith(f"{name}-{get_spec(name).layer}-") for name, key in keys.items())
    assert {p.name for p in cache.glob("*/*") if p.is_dir()} == set(keys.values())


@pytest.mark.parametrize("name", [n for n in ALL if n != "vgg16"])
def test_cli_features_with_backbone(name: str, two_classes, capsys, tmp_path) -> None:
    from _helpers import run_cli

    from gapsvm.network.features_file import read_features_file

    root, _, _, pixels = two_classes
    out = tmp_path / "f.joblib"
    rc, _, err = run_cli(capsys, "features", root, "--out", out, "--backbone", name,
                         "--weights", "none", "--input-size", "64x64",
                         "--cache-dir", tmp_path / "cache", "-q")
    assert rc == 0, err
    d = read_features_file(out)
    spec = get_spec(name)
    assert d["meta"]["backbone"] == name and d["meta"]["layer"] == spec.layer
    assert d["meta"]["stride"] == spec.stride
    assert d["X"].shape == (8, spec.channels) and d["y"].tolist() == ["a"] * 4 + ["b"] * 4
    # The vectors of those files, straight from the network.
    order = [int(p.rsplit("/", 1)[-1].split(".")[0]) for p in d["paths"]]
    _, want = get_backbone(name, None)(pixels[order])
    np.testing.assert_allclose(d["X"], want, rtol=1e-5, atol=1e-6)


def test_per_channel_grouped_convolutions_run_as_depthwise_with_the_same_result() -> None:
    import keras

    inp = keras.Input((None, None, 8))
    a = keras.layers.Conv2D(8, 3, strides=2, groups=8, name="strided")(inp)
    b = keras.layers.Conv2D(8, 5, padding="same", dilation_rate=2, groups=8, name="dilated")(a)
    c = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="two_groups")(b)
    d = keras.layers.Conv2D(4, 1, name="plain")(c)
    model = keras.Model(inp, [a, b, c, d])
    x = np.random.default_rng(9).normal(size=(2, 21, 17, 8)).astype(np.float32)
    before = [np.asarray(t) for t in model(x)]
    assert run_grouped_convs_as_depthwise(model) == 2  # "two_groups" and "plain" stay
    after = [np.asarray(t) for t in model(x)]
    for want, got in zip(before, after, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # ConvNeXt's per-channel 7x7 convolutions are the ones changed in a built backbone.
    changed = [la.name for la in get_backbone("convnext_tiny", None).model.layers
               if "convolution_op" in vars(la)]
    assert len(changed) == 18 and all(n.endswith("_depthwise_conv") for n in changed)
