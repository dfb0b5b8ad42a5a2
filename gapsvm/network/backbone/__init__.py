"""Frozen Keras backbones: the registry, their weights, and the built networks."""

from gapsvm.network.backbone.build import Backbone, build_model, built_backbones, get_backbone
from gapsvm.network.backbone.registry import (
    BACKBONES,
    PRECISIONS,
    RANDOM_SEED,
    BackboneSpec,
    OfflineSource,
    get_spec,
)

__all__ = [
    "BACKBONES",
    "PRECISIONS",
    "RANDOM_SEED",
    "Backbone",
    "BackboneSpec",
    "OfflineSource",
    "build_model",
    "built_backbones",
    "get_backbone",
    "get_spec",
]
