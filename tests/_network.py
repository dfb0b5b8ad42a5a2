"""Helpers the network-layer tests share (extraction, featurizer, features file, cache).

Import as ``from _network import eight, fitted_featurizer`` (pytest puts ``tests/`` on
``sys.path``); ``eight`` is a fixture, so a module that uses it imports it by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gapsvm import GapFeaturizer
from gapsvm.network.backbone.build import get_backbone


@pytest.fixture(scope="module")
def eight(persons_slice, imagenet_ready) -> list[str]:
    """4 person + 4 not_person INRIA crops (64x128), the first and last of ``persons_slice``."""
    paths, _ = persons_slice
    return list(paths[:4]) + list(paths[-4:])


def fitted_featurizer(**kw) -> GapFeaturizer:
    """A fitted GapFeaturizer: ImageNet weights, 128x64 input, no cache, silent, unless
    ``kw`` says otherwise."""
    kw = {"weights": "imagenet", "input_size": (128, 64), "cache_dir": None, "verbose": 0, **kw}
    return GapFeaturizer(**kw).fit()


def images_run(fz: GapFeaturizer) -> int:
    """Images the featurizer's backbone has run through the network in this process."""
    return get_backbone(fz.backbone, fz.weights, fz.precision).images_run


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
