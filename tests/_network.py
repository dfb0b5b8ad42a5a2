"""Helpers the network-layer tests share (extraction, featurizer, features file, cache).

Import as ``from _network import eight, fitted_featurizer`` (pytest puts ``tests/`` on
``sys.path``); ``eight`` is a fixture, so a module that uses it imports it by name.
"""

from __future__ import annotations

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
