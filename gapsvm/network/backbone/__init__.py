"""Frozen Keras backbones: the registry, their weights, and the built networks.

Names load on first use (PEP 562): the registry is plain Python, so the command line can
list the backbones (``--backbone`` choices) without importing numpy or TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Backbone": "build",
    "build_model": "build",
    "built_backbones": "build",
    "get_backbone": "build",
    "BACKBONES": "registry",
    "PRECISIONS": "registry",
    "RANDOM_SEED": "registry",
    "BackboneSpec": "registry",
    "OfflineSource": "registry",
    "get_spec": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
