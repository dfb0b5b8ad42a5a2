"""Attacks on gapsvm's loaders and writers: no file ever runs code, no file picks where output
goes, and weights are checked by content.

Each code-running payload here would create a marker file. Every test asserts the marker is
never created by gapsvm, and also shows the payload is live: loading the same file the
unsafe way (``skops.io.load`` trusting everything, ``joblib.load``) does create it, so a pass
means gapsvm refused real attacks, not inert files.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import zipfile
from pathlib import Path

import h5py
import joblib
import numpy as np
import pytest
import skops.io as sio
from _helpers import run_cli, write_rgb
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier, GapFeaturizer, ModelLoadError, WeightsError, load_model
from gapsvm.core.cache import FeatureCache, content_key
from gapsvm.core.sizes import format_size
from gapsvm.network.backbone.build import build_model, get_backbone
from gapsvm.network.backbone.registry import get_spec
from gapsvm.network.backbone.weights import installed_weights_path
from gapsvm.network.features_file import read_features_file, write_features_file

pytestmark = pytest.mark.slow

SIZE = (32, 32)


class Evil:
    """Restored by skops through ``__setstate__``: creating it writes the marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("code ran")


class Boom:
    """Unpickling it runs a shell command that writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


SYSTEM = f"{os.system.__module__}.system"  # how pickle names os.system: posix.system


@pytest.fixture(scope="module")
def meta():
    get_backbone("vgg16", None)
    return GapFeaturizer(weights=None, input_size=SIZE, cache_dir=None).fit().metadata()


@pytest.fixture(scope="module")
def model(meta):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 512)).astype(np.float32)
    y = np.array(["a", "b"] * 10)
    return GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                         cache_dir=None).fit_features(X, y, meta)


@pytest.fixture
def image(tmp_path) -> Path:
    return write_rgb(tmp_path / "img.png",
                     np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8))


# -- .skops models -------------------------------------------------------------------------
def test_skops_object_of_a_custom_class_is_refused_and_never_built(model, tmp_path, image,
                                                                    capsys):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.skops"
    model.evil_ = Evil(str(marker))
    try:
        sio.dump(model, path)
    finally:
        del model.evil_
    evil_type = f"{Evil.__module__}.Evil"
    msg = f"{path} contains types gapsvm does not trust: {evil_type}; refusing to load it"
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert str(info.value).startswith(msg)
    rc, _, stderr = run_cli(capsys, "predict", path, image)
    assert rc == 1 and f"gapsvm predict: error: {msg}" in stderr
    rc, _, stderr = run_cli(capsys, "cam", path, image, "--out", tmp_path / "cams")
    assert rc == 1 and msg in stderr
    assert not marker.exists()
    sio.load(path, trusted=sio.get_untrusted_types(file=path))  # the unsafe way ...
    assert marker.exists()  # ... runs the payload: the refusal above was real


def _rewrite_schema(src: Path, dest: Path, edit) -> None:
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_skops_schema_that_calls_os_system_is_refused_by_name(model, tmp_path, image, capsys):
    """A hand-edited schema: the model's ``backbone`` value becomes a "constructor" node whose
    constructor is ``os.system`` and whose argument is a shell command."""
    marker = tmp_path / "marker"
    good, evil = tmp_path / "good.skops", tmp_path / "evil.skops"
    model.save(good)

    def edit(schema):
        schema["content"]["content"]["backbone"] = {
            "__class__": "system", "__module__": "os", "__loader__": "ConstructorFromReduceNode",
            "__id__": 1,
            "content": {
                "__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                "__id__": 2,
                "content": [{
                    "__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                    "__id__": 3, "is_json": True,
                    "content": json.dumps(f"touch {shlex.quote(str(marker))}"),
                }],
            },
        }  # fmt: skip

    _rewrite_schema(good, evil, edit)
    msg = f"{evil} contains types gapsvm does not trust: os.system; refusing to load it"
    with pytest.raises(ModelLoadError) as info:
        load_model(evil)
    assert str(info.value).startswith(msg)
    rc, _, stderr = run_cli(capsys, "predict", evil, image)
    assert rc == 1 and msg in stderr
    assert not marker.exists()
    sio.load(evil, trusted=sio.get_untrusted_types(file=evil))
    assert marker.exists()


def test_skops_array_member_swapped_for_a_pickle_is_refused(model, tmp_path):
    marker = tmp_path / "marker"
    good, evil = tmp_path / "good.skops", tmp_path / "evil.skops"
    model.save(good)
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    npy = next(n for n in members if n.endswith(".npy"))
    buf = io.BytesIO()
    np.save(buf, np.array([Boom(marker)], dtype=object), allow_pickle=True)
    members[npy] = buf.getvalue()
    with zipfile.ZipFile(evil, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ModelLoadError, match=rf"{evil} could not be loaded: .*allow_pickle"):
        load_model(evil)
    assert not marker.exists()


def test_tampered_skops_bytes_are_refused(model, tmp_path):
    good, bad = tmp_path / "good.skops", tmp_path / "bad.skops"
    model.save(good)
    data = bytearray(good.read_bytes())
    i = data.index(b"\x93NUMPY") + 200  # inside the first array's stored bytes
    data[i : i + 8] = b"\xde\xad\xbe\xef" * 2
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=rf"^{bad} (could not be loaded|is not a readable)"):
        load_model(bad)


# -- pickle-based files: models, features files, cache entries ------------------------------
def test_pickle_model_is_only_loaded_when_trusted(tmp_path, image, capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.joblib"
    joblib.dump(Boom(marker), evil)
    msg = (f"{evil} is a pickle-based file, which can run arbitrary code when loaded; pass "
           "trusted=True (--trusted on the command line) only if you trust its source")
    with pytest.raises(ModelLoadError) as info:
        load_model(evil)
    assert str(info.value) == msg
    rc, _, stderr = run_cli(capsys, "predict", evil, image)
    assert rc == 1 and f"gapsvm predict: error: {msg}" in stderr
    assert not marker.exists()
    # trusted=True is the user vouching for the file: then, and only then, it runs.
    with pytest.raises(ModelLoadError, match="holds a int, not a GapClassifier"):
        load_model(evil, trusted=True)
    assert marker.exists()


@pytest.mark.parametrize("where", ["value", "object array"])
def test_features_file_with_a_malicious_reduce_is_refused_by_type(meta, tmp_path, capsys,
                                                                   where):
    marker = tmp_path / "marker"
    evil = tmp_path / "features.joblib"
    X = np.zeros((2, 512), np.float32)
    payload = {"format": 1, "X": X, "y": np.array(["a", "b"]), "meta": meta}
    if where == "value":
        payload["class_names"] = Boom(marker)
    else:  # joblib reads object arrays with a nested unpickler: it must be restricted too
        payload["paths"] = np.array([Boom(marker), "b.png"], dtype=object)
    joblib.dump(payload, evil)
    want = (f"{str(evil)!r} is not a readable gapsvm features file: {evil} references "
            f"{SYSTEM}, which a gapsvm data file never contains; refusing to load it")
    with pytest.raises(ValueError) as info:
        read_features_file(evil)
    assert str(info.value) == want
    rc, _, stderr = run_cli(capsys, "train", evil, "--out", tmp_path / "m.skops")
    assert rc == 1 and f"gapsvm train: error: {want}" in stderr
    assert not marker.exists() and not (tmp_path / "m.skops").exists()
    joblib.load(evil)
    assert marker.exists()


def test_cache_entry_with_a_malicious_reduce_is_never_loaded_and_gets_replaced(tmp_path,
                                                                                image):
    marker = tmp_path / "marker"
    fz = GapFeaturizer(weights=None, input_size=SIZE, cache_dir=tmp_path / "cache",
                       verbose=0).fit()
    bb = get_backbone("vgg16", None)
    cache = FeatureCache(tmp_path / "cache", bb.key)
    key = content_key(image.read_bytes())
    cache.path(key, SIZE).parent.mkdir(parents=True)
    joblib.dump({"key": f"{bb.key}/{format_size(SIZE)}/{key}", "gap": Boom(marker)},
                cache.path(key, SIZE))
    with pytest.warns(RuntimeWarning, match=rf"ignoring feature cache entry: .*{key}\.joblib "
                      rf"references {SYSTEM}"):
        res = fz.extract([str(image)])
    assert not marker.exists()
    assert res.n_computed == 1  # recomputed, not served from the planted file
    fresh = GapFeaturizer(weights=None, input_size=SIZE, cache_dir=None, verbose=0).fit()
    np.testing.assert_array_equal(res.gap, fresh.transform([str(image)]))
    np.testing.assert_array_equal(cache.get(key, SIZE).gap, res.gap[0])  # replaced by a good entry


# -- weights are checked by content --------------------------------------------------------
def test_tampered_imagenet_weights_are_an_error_not_a_warning(imagenet_ready, tmp_path,
                                                               monkeypatch, capsys):
    spec = get_spec("vgg16")
    real = installed_weights_path(spec)
    if not real.is_file():
        pytest.fail(f"this test needs the installed weights file {real} (make weights)")
    monkeypatch.setenv("GAPSVM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no Keras copy to fall back on
    fake = installed_weights_path(spec)
    fake.parent.mkdir(parents=True)
    shutil.copyfile(real, fake)
    with h5py.File(fake, "r+") as f:  # one kernel weight of one layer, nudged
        first = next(k for k in sorted(f["layers"]) if "vars" in f["layers"][k])
        kernel = f["layers"][first]["vars"]["0"]
        kernel[0, 0, 0, 0] = kernel[0, 0, 0, 0] + 1e-3
    want = (f"ImageNet weights from {fake} have content hash ",
            f", expected {spec.imagenet_sha256}: the file is damaged or not the ImageNet vgg16. "
            "Delete it and run `gapsvm weights install --force`.")
    with pytest.raises(WeightsError) as info:
        build_model(spec, "imagenet")
    assert str(info.value).startswith(want[0]) and str(info.value).endswith(want[1])
    rc, _, stderr = run_cli(capsys, "weights", "verify")
    assert rc == 1 and want[0] in stderr and want[1] in stderr


def test_model_whose_weights_hash_does_not_match_is_refused(model, tmp_path, image, capsys):
    path = tmp_path / "other-weights.skops"
    meta = model.feature_meta_
    try:
        model.feature_meta_ = {**meta, "weights": {"name": "random(seed=0)", "sha256": "0" * 64}}
        model.save(path)
    finally:
        model.feature_meta_ = meta
    with pytest.raises(ModelLoadError, match=r"was trained on weights .*'0{64}'.*, but "
                       r"weights=None here has content hash [0-9a-f]{64}"):
        load_model(path)
    rc, _, stderr = run_cli(capsys, "predict", path, image)
    assert rc == 1 and "was trained on weights" in stderr


# -- no path from a file chooses where output goes -----------------------------------------
def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_labels_and_input_paths_cannot_write_outside_the_output_folder(meta, tmp_path,
                                                                       monkeypatch, capsys):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 512)).astype(np.float32)
    # Class labels are strings stored in the model file: a crafted one is a path.
    labels = np.array(["../../../escaped", "<img src=x onerror=alert(1)>/../up"] * 10)
    clf = GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                        cache_dir=None).fit_features(X, labels, meta)
    work = tmp_path / "a" / "b"
    (work / "in" / "sub").mkdir(parents=True)
    clf.save(work / "model.skops")
    for rel in ("in/top.png", "in/sub/deep.png", "../x.png"):
        write_rgb(work / rel, rng.integers(0, 256, (32, 32, 3), np.uint8))
    monkeypatch.chdir(work)
    before = _files(tmp_path)
    for target in labels[:2]:
        args = ["cam", "model.skops", "in", "../x.png", "--out", "out", "--save-npy", "-q",
                "--cache-dir", "cache", "--target", target]
        rc, _, stderr = run_cli(capsys, *args)
        assert rc == 0, stderr
    # in/ holds an image beside a sub-folder of images: a layout report refuses (ambiguous).
    rc, _, stderr = run_cli(capsys, "report", "model.skops", "in/sub", "--out", "report", "-q",
                            "--cache-dir", "cache")
    assert rc == 0, stderr
    new = _files(tmp_path) - before
    out, report, cache = (work / d for d in ("out", "report", "cache"))
    outside = [p for p in new if not any(p.is_relative_to(d) for d in (out, report, cache))]
    assert outside == [], outside
    names = sorted(p.relative_to(out).as_posix() for p in _files(out))
    assert len(names) == 12 and all(".." not in Path(n).parts for n in names), names
    # The inputs' layout below the deepest folder holding them all (a/: in/ is a/b/in/).
    assert {Path(n).parent.as_posix() for n in names} == {".", "b/in", "b/in/sub"}
    assert "b/in/sub/deep.png.cam-_.._.._escaped.png" in names
    assert "x.png.cam-_.._.._escaped.npy" in names
    assert "b/in/top.png.cam-_img src_x onerror_alert_1_.._up.png" in names
    assert sorted(p.name for p in _files(report)) == ["index.html"]
    assert "<img src=x" not in (report / "index.html").read_text(encoding="utf-8")


def test_paths_inside_a_features_file_are_never_written_to(meta, tmp_path, monkeypatch,
                                                           capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    X = np.random.default_rng(4).normal(size=(6, 512)).astype(np.float32)
    write_features_file(work / "f.joblib", {
        "X": X, "y": np.array(["a", "b"] * 3), "class_names": ["a", "b"],
        "paths": ["../../x.png", "/tmp/abs.png", "../../../../etc/passwd", "a", "b", "c"],
        "data_dir": "../..", "errors": [{"path": "../../err.png", "reason": "x"}], "meta": meta,
    })  # fmt: skip
    before = _files(tmp_path)
    rc, _, stderr = run_cli(capsys, "train", "f.joblib", "--cv", "2", "--out", "m.skops")
    assert rc == 0, stderr
    assert _files(tmp_path) - before == {work / "m.skops"}
