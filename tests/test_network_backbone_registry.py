"""Tests for gapsvm.network.backbone.registry: every entry's facts (stride, smallest side,
channels, weighted layers, Keras' weights file) hold for the network Keras builds, and
lookups fail helpfully.

Adding a backbone is one registry entry: the parametrized tests below then check it too.
"""

from __future__ import annotations

import numpy as np
import pytest

from gapsvm.network.backbone.build import get_backbone
from gapsvm.network.backbone.registry import BACKBONES, PRECISIONS, get_spec


def test_vgg16_entry() -> None:
    spec = get_spec("vgg16")
    assert (spec.layer, spec.stride, spec.min_side, spec.channels) == (
        "block5_conv3", 16, 32, 512,
    )
    assert len(spec.conv_layers) == 13


# name: (Keras application, feature layer, channels, Keras' no-top ImageNet file)
KERAS_APPLICATIONS = {
    "resnet50v2": ("ResNet50V2", "post_relu", 2048,
                   "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnetv2b0": ("EfficientNetV2B0", "top_activation", 1280,
                         "efficientnetv2-b0_notop.h5"),
    "convnext_tiny": ("ConvNeXtTiny", "convnext_tiny_stage_3_block_2_identity", 768,
                      "convnext_tiny_notop.h5"),
    "mobilenetv3large": ("MobileNetV3Large", "conv_1_activation", 960,
                         "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
}


@pytest.mark.parametrize("name", sorted(KERAS_APPLICATIONS))
def test_keras_application_entries(name: str) -> None:
    spec = get_spec(name)
    app, layer, channels, notop = KERAS_APPLICATIONS[name]
    assert (spec.application, spec.layer, spec.channels, spec.keras_notop_file) == (
        app, layer, channels, notop)
    # Stride 32, and Keras' own smallest input for these applications (one feature cell).
    assert (spec.stride, spec.min_side) == (32, 32)
    # Their ImageNet weights come from Keras' download only.
    assert spec.offline_source is None and spec.imagenet_sha256 is None


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_entry_is_consistent(name: str) -> None:
    spec = BACKBONES[name]
    assert spec.name == name
    # The smallest input gives whole feature cells, at least one.
    assert spec.min_side >= spec.stride and spec.min_side % spec.stride == 0
    if spec.offline_source is not None:  # the offline conversion needs both
        assert spec.conv_layers[-1] == spec.layer
        assert spec.imagenet_sha256 is not None
    if spec.imagenet_sha256 is not None:
        assert len(spec.imagenet_sha256) == 64 and int(spec.imagenet_sha256, 16) >= 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_entry_matches_the_network_keras_builds(name: str) -> None:
    spec = BACKBONES[name]
    # The cut model holds exactly the layers up to the feature layer (the process-wide
    # build, shared with the other backbone tests).
    cut = get_backbone(name, None).model
    assert cut.layers[-1].name == spec.layer
    if spec.conv_layers:
        assert [la.name for la in cut.layers if la.get_weights()] == list(spec.conv_layers)
    side = spec.min_side
    out = cut(np.zeros((1, side, 2 * side, 3), np.float32))
    assert tuple(out.shape) == (1, side // spec.stride, 2 * side // spec.stride, spec.channels)


def test_registry_and_errors() -> None:
    assert "vgg16" in BACKBONES and get_spec("vgg16").stride == 16
    known = "known: convnext_tiny, efficientnetv2b0, mobilenetv3large, resnet50v2, vgg16$"
    with pytest.raises(ValueError, match=f"unknown backbone 'resnet9'; {known}"):
        get_spec("resnet9")
    with pytest.raises(ValueError, match=f"unknown backbone 'resnet9'; {known}"):
        get_backbone("resnet9", None)
    with pytest.raises(ValueError, match="precision must be one of"):
        get_backbone("vgg16", None, "float16")
    assert PRECISIONS == ("float32", "bfloat16")
