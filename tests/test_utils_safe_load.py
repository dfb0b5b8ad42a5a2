"""Tests for gapsvm.utils.safe_load: gapsvm's own joblib files load, and a file that would
run code on loading is refused by name, before anything in it runs."""

from __future__ import annotations

import collections
import datetime
import os
import pickle
import shlex
from pathlib import Path

import joblib
import numpy as np
import pytest

from gapsvm.core.cache import FeatureCache
from gapsvm.network.features_file import write_features_file
from gapsvm.network.featurizer import features_metadata
from gapsvm.utils.safe_load import UnsafeFileError, safe_joblib_load

SYSTEM = f"{os.system.__module__}.system"  # how pickle names os.system: posix.system


class Boom:
    """Unpickling it runs a shell command that writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _meta() -> dict:
    """The metadata of a features file, as gapsvm writes it (random VGG16 weights)."""
    backbone = {"backbone": "vgg16", "layer": "block5_conv3", "stride": 16,
                "weights": {"name": "random(seed=0)", "sha256": "ab" * 32},
                "precision": "float32"}
    return features_metadata(backbone, (32, 32))


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize("how", ["joblib", "joblib compressed", "plain pickle"])
@pytest.mark.parametrize("where", ["top level", "dict value", "object array"])
def test_a_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path, how, where) -> None:
    marker = tmp_path / "marker"
    boom = Boom(marker)
    payload = {"top level": boom, "dict value": {"X": np.zeros(3), "evil": boom},
               "object array": {"paths": np.array([boom, "b.png"], dtype=object)}}[where]
    path = tmp_path / "evil.joblib"
    if how == "plain pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        joblib.dump(payload, path, compress=3 if how == "joblib compressed" else 0)
    with pytest.raises(UnsafeFileError) as info:
        safe_joblib_load(path)
    assert str(info.value) == (f"{path} references {SYSTEM}, which a gapsvm data file never "
                               "contains; refusing to load it")
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not marker.exists()
    joblib.load(path)  # the unsafe way runs the payload: the refusal above was real
    assert marker.exists()


@pytest.mark.parametrize(
    "value, name",
    [
        (datetime.date(2024, 1, 1), "datetime.date"),  # harmless, but no gapsvm file holds it
        (Path("x.png"), "pathlib."),
        (np.random.default_rng(0), "numpy.random."),
    ],
)
def test_any_type_outside_gapsvms_data_is_refused_by_name(tmp_path, value, name) -> None:
    path = tmp_path / "f.joblib"
    joblib.dump({"v": value}, path)
    with pytest.raises(UnsafeFileError, match=f"references {name}"):
        safe_joblib_load(path)


# ------------------------------------------------------------------ loaded


def test_a_features_file_loads_as_written(tmp_path) -> None:
    rng = np.random.default_rng(0)
    payload = {"X": rng.normal(size=(4, 512)).astype(np.float32),
               "y": np.array(["a", "b", "a", "b"]), "class_names": ["a", "b"],
               "paths": ["a/1.png", "b/2.png", "a/3.png", "b/4.png"], "data_dir": "data",
               "errors": [{"path": "a/bad.png", "reason": "cannot decode"}], "meta": _meta()}
    write_features_file(tmp_path / "f.joblib", payload)
    d = safe_joblib_load(tmp_path / "f.joblib")
    assert d.keys() == {"format", *payload}
    np.testing.assert_array_equal(d["X"], payload["X"])
    assert d["X"].dtype == np.float32
    np.testing.assert_array_equal(d["y"], payload["y"])
    assert {k: d[k] for k in ("class_names", "paths", "data_dir", "errors", "meta")} == {
        k: payload[k] for k in ("class_names", "paths", "data_dir", "errors", "meta")
    }


def test_a_cache_entry_loads_and_can_be_memory_mapped(tmp_path) -> None:
    cache = FeatureCache(tmp_path, "vgg16-test")
    gap = np.arange(512, dtype=np.float32)
    maps = np.ones((2, 2, 512), np.float32)
    cache.put("ab12", gap, maps, (40, 30), (32, 32))
    d = safe_joblib_load(cache.path("ab12", (32, 32)), mmap_mode="r")
    assert isinstance(d["maps"], np.memmap) and not d["maps"].flags.writeable
    np.testing.assert_array_equal(d["gap"], gap)
    np.testing.assert_array_equal(d["maps"], maps.astype(np.float16))
    assert (d["key"], d["image_hw"], d["input_hw"]) == ("vgg16-test/32x32/ab12", (40, 30),
                                                         (32, 32))


def test_every_plain_data_type_loads(tmp_path) -> None:
    value = {"t": (1, 2.5, "s", None, True), "l": [b"bytes", 3 + 4j], "s": {1, 2},
             "f": frozenset({"a"}), "o": collections.OrderedDict(a=1),
             "n": [np.float32(1.5), np.int64(3), np.array([[1, 2]], np.uint8),
                   np.array(["a", "bc"]), np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])]}
    path = tmp_path / "plain.joblib"
    joblib.dump(value, path)
    back = safe_joblib_load(path)
    assert {k: back[k] for k in "tlsfo"} == {k: value[k] for k in "tlsfo"}
    assert type(back["o"]) is collections.OrderedDict
    for got, want in zip(back["n"], value["n"], strict=True):
        assert type(got) is type(want)
        np.testing.assert_array_equal(got, want)


def test_a_missing_file_is_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_joblib_load(tmp_path / "nope.joblib")
