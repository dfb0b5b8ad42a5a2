"""Shared fixtures and markers. Real-data tests read ../shared/data (or $GAPSVM_SHARED_DATA) and
fail, never skip, when it is missing: a silently skipped accuracy test is a passed-looking lie.

Markers (registered in pyproject.toml):

- ``needs_data`` and ``needs_weights`` are added here, from the fixtures a test uses
  (:data:`DATA_FIXTURES`, :data:`WEIGHTS_FIXTURES`), so they cannot be forgotten; a test that
  needs the weights runs the network, so it is ``slow`` too.
- ``slow`` (builds a network or runs TensorFlow) is declared by the test module itself with
  ``pytestmark = pytest.mark.slow``: whether a test runs TensorFlow is not visible from its
  fixtures, and the mark travels with the module when it is renamed or split.

A run that deselects ``slow`` (``make test-fast``) fails if TensorFlow was imported all the
same, naming the test that imported it: a missing ``slow`` mark shows up there at once.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

# Hypothesis keeps its own caches (constants, unicode data) below this folder even without an
# example database; outside the checkout, the suite leaves nothing behind. Set before import.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "gapsvm-hypothesis"))

import numpy as np
import pytest
from _corpus import build_corpus
from _helpers import imagenet_weights_file
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Every hypothesis test: no example database (the suite must not leave a .hypothesis folder in
# the checkout; a failure prints its example), no deadline (a shared machine's timing is no
# test result). Test modules choose only max_examples.
settings.register_profile(
    "gapsvm", deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("gapsvm")

#: A test using one of these fixtures reads the real images.
DATA_FIXTURES = frozenset({"shared_data", "persons", "persons_slice", "caltech_slice"})
#: A test using one of these fixtures needs the installed ImageNet weights.
WEIGHTS_FIXTURES = frozenset({"imagenet_ready"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & DATA_FIXTURES:
            item.add_marker(pytest.mark.needs_data)
        if used & WEIGHTS_FIXTURES:
            item.add_marker(pytest.mark.needs_weights)
            item.add_marker(pytest.mark.slow)


def _deselects_slow(config: pytest.Config) -> bool:
    return re.search(r"\bnot\s+slow\b", config.getoption("markexpr") or "") is not None


_tensorflow_seen: list[str] = []  # the first test that found TensorFlow imported, once


@pytest.fixture(autouse=True)
def _fast_runs_never_import_tensorflow(request: pytest.FixtureRequest):
    """In a run without ``slow`` tests, fail the first test after which TensorFlow is loaded
    (at teardown, so what its fixtures imported counts too)."""
    yield
    if (_deselects_slow(request.config) and "tensorflow" in sys.modules
            and not _tensorflow_seen):
        _tensorflow_seen.append(request.node.nodeid)
        pytest.fail(
            f"{request.node.nodeid} imported TensorFlow in a run that deselects slow tests: "
            "mark its module `pytestmark = pytest.mark.slow` (or keep TensorFlow out of it)",
            pytrace=False,
        )


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
def caltech_slice(shared_data):
    """A fixed slice of caltech101_3 (airplane, face, motorcycle), per class 8 training and 6
    test photos, seeded; no test photo shares a near-duplicate group with a training photo.

    Returns ``(root, train_paths, train_labels, test_rows)``: ``test_rows`` are the test
    photos' rows of ``root / "boxes.csv"`` (dicts; file names relative to ``root``).
    """
    import csv

    root = shared_data / "caltech101_3"
    if not (root / "boxes.csv").is_file() or not (root / "manifest.csv").is_file():
        pytest.fail(f"caltech101_3 (boxes.csv, manifest.csv) not found in {shared_data}")
    with open(root / "manifest.csv", newline="") as fh:
        group = {r["filename"]: (r["label"], r["near_dup_group"]) for r in csv.DictReader(fh)}
    with open(root / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(13)
    train_paths, train_labels, test = [], [], []
    for label in sorted({r["label"] for r in rows}):
        names = sorted({r["filename"] for r in rows if r["label"] == label})
        names = [names[i] for i in rng.permutation(len(names))]
        train = names[:8]
        seen = {group[n] for n in train}
        test += [n for n in names[8:] if group[n] not in seen][:6]
        train_paths += [str(root / n) for n in train]
        train_labels += [label] * len(train)
    return root, train_paths, np.array(train_labels), [r for r in rows if r["filename"] in test]


@pytest.fixture(scope="session")
def imagenet_ready():
    """The ImageNet weights must be installed (make weights): fail loudly otherwise."""
    if not imagenet_weights_file().is_file():
        pytest.fail("ImageNet VGG16 weights are not installed: run `make weights` first")
    return "imagenet"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The hostile-input corpus (``_corpus.py``), written once per session."""
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
