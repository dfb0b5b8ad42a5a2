"""Tests for gapsvm.network.backbone.registry: every entry's facts (stride, smallest side,
channels, weighted layers) hold for the network Keras builds, and lookups fail helpfully.

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


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_entry_is_consistent(name: str) -> None:
    spec = BACKBONES[name]
    assert spec.name == name
    # The smallest input gives whole feature cells, at least one.
    assert spec.min_side >= spec.stride and spec.min_side % spec.stride == 0
    assert spec.conv_layers[-1] == spec.layer
    assert len(spec.imagenet_sha256) == 64 and int(spec.imagenet_sha256, 16) >= 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_entry_matches_the_network_keras_builds(name: str) -> None:
    import keras

    spec = BACKBONES[name]
    full = spec.build_full(None)
    weighted = []
    for layer in full.layers:
        if layer.get_weights():
            weighted.append(layer.name)
        if layer.name == spec.layer:
            break
    assert weighted == list(spec.conv_layers)
    cut = keras.Model(full.input, full.get_layer(spec.layer).output)
    side = spec.min_side
    out = cut(np.zeros((1, side, 2 * side, 3), np.float32))
    assert tuple(out.shape) == (1, side // spec.stride, 2 * side // spec.stride, spec.channels)


def test_registry_and_errors() -> None:
    assert "vgg16" in BACKBONES and get_spec("vgg16").stride == 16
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'; known: vgg16"):
        get_spec("resnet9")
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'; known: vgg16"):
        get_backbone("resnet9", None)
    with pytest.raises(ValueError, match="precision must be one of"):
        get_backbone("vgg16", None, "float16")
    assert PRECISIONS == ("float32", "bfloat16")
