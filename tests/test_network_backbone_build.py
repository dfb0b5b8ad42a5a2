"""Tests for gapsvm.network.backbone.build: map shapes at stride 16, the per-process cache,
the forward pass.

Random seeded weights (``weights=None``) wherever ImageNet behaviour is not the point; where
ImageNet weights come from, and their checks, are tested in test_network_backbone_weights.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from gapsvm.network.backbone.build import built_backbones, get_backbone

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
