"""Shared fixtures. Real-data tests read ../shared/data (or $GAPSVM_SHARED_DATA) and fail,
never skip, when it is missing: a silently skipped accuracy test is a passed-looking lie."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_data_dir() -> Path:
    return Path(os.environ.get("GAPSVM_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not (d / "persons" / "train").is_dir():
        pytest.fail(
            f"real test data not found at {d}: these tests need ../shared/data beside the "
            "checkout (or GAPSVM_SHARED_DATA pointing at it)"
        )
    return d


@pytest.fixture(scope="session")
def persons(shared_data):
    """(paths, labels) of all 800 INRIA crops, sorted by class then name."""
    from gapsvm.core.scan import load_directory

    paths, labels, _ = load_directory(shared_data / "persons" / "train")
    return paths, labels


@pytest.fixture(scope="session")
def persons_slice(persons):
    """A fixed, balanced slice: 24 person + 24 not_person crops."""
    paths, labels = persons
    rng = np.random.default_rng(7)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), 24, replace=False) for c in np.unique(labels)]
    )
    return [paths[i] for i in idx], labels[idx]


@pytest.fixture(scope="session")
def imagenet_ready():
    """The ImageNet weights must be installed (make weights): fail loudly otherwise."""
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import installed_weights_path, keras_cached_weights_path

    spec = get_spec("vgg16")
    if not (installed_weights_path(spec).is_file() or keras_cached_weights_path(spec).is_file()):
        pytest.fail("ImageNet VGG16 weights are not installed: run `make weights` first")
    return "imagenet"


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
