"""Tests for gapsvm.featurizer: GAP vectors checked against a plain Keras model built here,
unreadable files, ordering, batching, the scikit-learn contract and the features file."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from gapsvm import GapFeaturizer, ImageReadError
from gapsvm.core.decode import read_image
from gapsvm.network.backbone.build import get_backbone
from gapsvm.network.backbone.registry import get_spec
from gapsvm.network.backbone.weights import installed_weights_path, keras_cached_weights_path
from gapsvm.network.features_file import read_features_file, write_features_file


def _weights_file() -> str:
    spec = get_spec("vgg16")
    ours = installed_weights_path(spec)
    return str(ours if ours.is_file() else keras_cached_weights_path(spec))


@pytest.fixture(scope="module")
def eight(persons_slice, imagenet_ready) -> list[str]:
    paths, _ = persons_slice
    return list(paths[:4]) + list(paths[-4:])  # 4 person + 4 not_person crops


@pytest.fixture(scope="module")
def plain_keras_block5(imagenet_ready):
    """block5_conv3 of Keras' own VGG16 loaded from the same weights file: no gapsvm code."""
    import keras

    vgg = keras.applications.VGG16(
        include_top=False, weights=_weights_file(), input_shape=(None, None, 3)
    )
    return keras.Model(vgg.input, vgg.get_layer("block5_conv3").output)


def _fz(**kw) -> GapFeaturizer:
    kw = {"weights": "imagenet", "input_size": (128, 64), "cache_dir": None, "verbose": 0, **kw}
    return GapFeaturizer(**kw).fit()


def _count(fz: GapFeaturizer) -> int:
    return get_backbone(fz.backbone, fz.weights, fz.precision).images_run


# ------------------------------------------------------------------ independent check


def test_transform_equals_plain_keras_spatial_mean(plain_keras_block5, eight) -> None:
    import keras

    # Native size (64x128 crops -> 128x64 input): no resize, so no interpolation can differ.
    x = np.stack([keras.utils.img_to_array(keras.utils.load_img(p)) for p in eight])
    assert x.shape == (8, 128, 64, 3)
    x = keras.applications.vgg16.preprocess_input(x)
    maps = np.asarray(plain_keras_block5.predict(x, verbose=0))
    assert maps.shape == (8, 8, 4, 512)
    want = maps.mean(axis=(1, 2))
    got = _fz(input_size=None).transform(eight)
    assert got.shape == (8, 512) and got.dtype == np.float32
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    assert rel.max() < 1e-4, rel
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The maps themselves too, cell by cell.
    got_maps = _fz(input_size=None).transform_maps(eight)
    np.testing.assert_allclose(got_maps, maps, rtol=1e-4, atol=1e-4 * maps.max())


def test_fixed_size_resizes_as_documented(plain_keras_block5, shared_data) -> None:
    import cv2
    import keras

    path = shared_data / "smoke" / "chelsea.jpg"  # 451x300: shrunk with INTER_AREA
    img = read_image(path)
    small = cv2.resize(img, (112, 96), interpolation=cv2.INTER_AREA)
    x = keras.applications.vgg16.preprocess_input(small[None].astype(np.float32))
    want = np.asarray(plain_keras_block5.predict(x, verbose=0)).mean(axis=(1, 2))
    got = _fz(input_size=(96, 112)).transform([path])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# ------------------------------------------------------------------ unreadable files


@pytest.fixture
def mixed_folder(tmp_path, eight, shared_data) -> tuple[list[str], list[int]]:
    """Three good crops and three bad files (corrupt, empty, text renamed .jpg), interleaved."""
    png = Path(eight[0]).read_bytes()
    bad = {
        "corrupt.png": png[:200] + bytes(len(png) - 200),
        "empty.jpg": b"",
        "notes.jpg": b"shopping list: milk, eggs\n",
    }
    files: list[str] = []
    bad_idx: list[int] = []
    for (name, data), good in zip(bad.items(), eight[1:4], strict=True):
        g = tmp_path / f"good {len(files)}.png"
        shutil.copyfile(good, g)
        files.append(str(g))
        b = tmp_path / name
        b.write_bytes(data)
        bad_idx.append(len(files))
        files.append(str(b))
    return files, bad_idx


@pytest.mark.parametrize("which", [0, 1, 2], ids=["corrupt", "empty", "text-as-jpg"])
def test_transform_names_the_bad_file(mixed_folder, which: int, tmp_path) -> None:
    files, bad_idx = mixed_folder
    bad = files[bad_idx[which]]
    good = [f for i, f in enumerate(files) if i not in bad_idx]
    with pytest.raises(ImageReadError) as info:
        _fz().transform([*good[:1], bad])
    assert info.value.path == bad and bad in str(info.value)


def test_raise_keeps_finished_work_and_lists_the_others(mixed_folder, cache_dir) -> None:
    files, bad_idx = mixed_folder
    fz = _fz(cache_dir=cache_dir)
    before = _count(fz)
    with pytest.raises(ImageReadError) as info:
        fz.transform(files)
    assert _count(fz) - before == 3
    msg = str(info.value)
    assert info.value.path == files[bad_idx[0]]
    assert "and 2 more unreadable" in msg
    assert files[bad_idx[1]] in msg and files[bad_idx[2]] in msg
    # Every good image was computed and cached before the error: nothing is lost.
    good = [f for i, f in enumerate(files) if i not in bad_idx]
    before = _count(fz)
    fz.transform(good)
    assert _count(fz) == before


def test_skip_computes_the_good_ones(mixed_folder) -> None:
    files, bad_idx = mixed_folder
    fz = _fz()
    res = fz.extract(files, on_error="skip")
    good_idx = [i for i in range(len(files)) if i not in bad_idx]
    assert res.ok.tolist() == [i in good_idx for i in range(len(files))]
    assert np.isnan(res.gap[bad_idx]).all()
    np.testing.assert_allclose(
        res.gap[good_idx], fz.transform([files[i] for i in good_idx]), rtol=1e-5, atol=1e-6
    )
    assert [e.path for e in res.errors] == [files[i] for i in bad_idx]
    assert [e.index for e in res.errors] == bad_idx
    assert "empty" in res.errors[1].reason


# ------------------------------------------------------------------ ordering and inputs


def test_native_sizes_keep_input_order(shared_data, eight) -> None:
    smoke = shared_data / "smoke"
    files = [eight[0], str(smoke / "microaneurysms.jpg"), eight[5], str(smoke / "page.jpg")]
    fz = _fz(input_size=None, batch_size=2)
    together = fz.extract(files, maps=True)
    assert together.input_hw == [(128, 64), (102, 102), (128, 64), (191, 384)]
    assert together.image_hw == together.input_hw
    assert [m.shape[:2] for m in together.maps] == [(8, 4), (6, 6), (8, 4), (11, 24)]
    for i, f in enumerate(files):
        np.testing.assert_allclose(together.gap[i], fz.transform([f])[0], rtol=1e-4, atol=1e-5)
    maps = fz.transform_maps(files)
    assert isinstance(maps, list) and len(maps) == 4  # sizes differ: a list, not an array


def test_batch_size_does_not_change_features(eight) -> None:
    a = _fz(batch_size=1).transform(eight)
    b = _fz(batch_size=16).transform(eight)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_arrays_and_paths_give_the_same_features(eight) -> None:
    fz = _fz()
    arrays = np.stack([read_image(p) for p in eight[:3]])
    np.testing.assert_allclose(fz.transform(arrays), fz.transform(eight[:3]), rtol=1e-6)
    np.testing.assert_allclose(fz.transform(list(arrays)), fz.transform(eight[:3]), rtol=1e-6)
    assert fz.transform_maps(arrays).shape == (3, 8, 4, 512)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((2, 8, 8, 3), np.float32), "dtype float32"),
        (np.zeros((64, 64, 3), np.uint8), r"X\[None\]"),
        ([], "no images"),
        ([3.5], "float"),
    ],
    ids=["float-images", "one-image-3d", "empty", "number"],
)
def test_bad_inputs_say_what_was_expected(X, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        _fz(weights=None).transform(X)


# ------------------------------------------------------------------ scikit-learn contract


def test_sklearn_contract(eight) -> None:
    fz = GapFeaturizer(weights=None, input_size=(64, 64), cache_dir=None, verbose=0)
    with pytest.raises(NotFittedError):
        fz.transform(eight[:1])
    c = clone(fz)
    assert c.get_params() == fz.get_params() and c is not fz
    out = fz.fit_transform(eight[:2])
    assert out.shape == (2, 512)
    assert fz.n_features_out_ == 512 and fz.feature_layer_ == "block5_conv3"
    assert fz.weights_id_["name"] == "random(seed=0)"
    names = fz.get_feature_names_out()
    assert names[0] == "gap0" and names[-1] == "gap511" and len(names) == 512
    with pytest.raises(ValueError, match="batch_size"):
        GapFeaturizer(weights=None, batch_size=0).fit()
    with pytest.raises(ValueError, match="precision"):
        GapFeaturizer(weights=None, precision="float64").fit()
    with pytest.raises(ValueError, match="on_error"):
        fz.extract(eight[:1], on_error="ignore")


def test_weights_changed_after_fit_is_refused(imagenet_ready, eight) -> None:
    fz = _fz(weights=None)
    fz.set_params(weights="imagenet")
    with pytest.raises(ValueError, match="weights changed since fit"):
        fz.transform(eight[:1])


def test_in_a_pipeline_with_a_linear_svc(persons_slice) -> None:
    paths, labels = persons_slice
    pipe = make_pipeline(_fz(), LinearSVC())
    pipe.fit(paths[::2], labels[::2])
    acc = np.mean(pipe.predict(paths[1::2]) == labels[1::2])
    assert acc >= 0.9  # 24 held-out INRIA crops, ImageNet features


# ------------------------------------------------------------------ features file


def test_features_file_round_trip(tmp_path, eight) -> None:
    fz = _fz()
    X = fz.transform(eight[:3])
    payload = {
        "X": X, "y": np.array(["a", "b", "a"]), "class_names": ["a", "b"],
        "paths": ["a/1.png", "b/2.png", "a/3.png"], "data_dir": str(tmp_path),
        "errors": [{"path": "x.jpg", "reason": "empty file (0 bytes)"}],
        "meta": fz.metadata(),
    }
    f = tmp_path / "sub dir" / "feats.joblib"
    write_features_file(f, payload)
    d = read_features_file(f)
    np.testing.assert_array_equal(d["X"], X)
    assert d["y"].tolist() == ["a", "b", "a"] and d["paths"] == payload["paths"]
    assert d["meta"]["input_size"] == "128x64" and d["meta"]["weights"]["name"] == "imagenet"
    assert d["meta"]["preprocess_version"] >= 1 and "gapsvm_version" in d["meta"]
    assert [p.name for p in f.parent.iterdir()] == ["feats.joblib"]  # no temporary left


def test_features_file_errors(tmp_path) -> None:
    joblib.dump({"something": 1}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="is not a gapsvm features file"):
        read_features_file(tmp_path / "other.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable gapsvm features file"):
        read_features_file(tmp_path / "junk.joblib")
    joblib.dump({"format": 99, "X": np.zeros((1, 2)), "meta": {}}, tmp_path / "new.joblib")
    with pytest.raises(ValueError, match="upgrade gapsvm"):
        read_features_file(tmp_path / "new.joblib")
    with pytest.raises(FileNotFoundError):
        read_features_file(tmp_path / "missing.joblib")
