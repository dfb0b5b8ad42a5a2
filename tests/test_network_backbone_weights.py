"""Tests for gapsvm.network.backbone.weights: the content hash, where the ImageNet weights
are found, the offline install, and the ImageNet paths of ``build_model`` that rest on them.

The installed ImageNet file is checked independently (plain Keras + hashlib in this file),
then the offline conversion is run into a temporary GAPSVM_HOME, and damaged or missing
weights must fail with an error that says what to do. ``build_model`` is called directly:
``get_backbone`` caches per process and would hand back the good network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from _helpers import imagenet_weights_file as _weights_file

from gapsvm.network.backbone.build import build_model
from gapsvm.network.backbone.registry import get_spec
from gapsvm.network.backbone.weights import (
    WeightsError,
    WeightsIdentity,
    conv_content_hash,
    identity_key,
    imagenet_weights_file,
    install_offline_weights,
    installed_weights_path,
    keras_cached_weights_path,
    model_content_hash,
    record_identity,
    recorded_identity,
    weights_content_hash,
)

IMAGENET_SHA = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
SPEC = get_spec("vgg16")


def _independent_hash(model) -> str:
    # Written out here on purpose, not via gapsvm.weights: kernels (HWIO) then biases of the
    # 13 conv layers, as little-endian float32, in order.
    h = hashlib.sha256()
    for i in range(1, 6):
        for j in range(1, 4 if i > 2 else 3):
            kernel, bias = model.get_layer(f"block{i}_conv{j}").get_weights()
            h.update(np.asarray(kernel, "<f4").tobytes())
            h.update(np.asarray(bias, "<f4").tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def imagenet_vgg(imagenet_ready):
    import keras

    return keras.applications.VGG16(
        include_top=False, weights=str(_weights_file()), input_shape=(None, None, 3)
    )


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """GAPSVM_HOME and KERAS_HOME in empty temporary folders: no weights anywhere."""
    home = tmp_path / "gapsvm_home"
    monkeypatch.setenv("GAPSVM_HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return home


@pytest.fixture
def no_network(monkeypatch):
    """Make Keras' download fail at once, as it does offline (no real request is made)."""
    from keras.src.utils import file_utils

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(file_utils, "get_file", refuse)
    return calls


@pytest.mark.slow
def test_installed_weights_have_the_imagenet_content_and_reference_values(imagenet_vgg) -> None:
    assert _independent_hash(imagenet_vgg) == IMAGENET_SHA
    b11 = imagenet_vgg.get_layer("block1_conv1").get_weights()[1]
    np.testing.assert_allclose(b11[:3], [0.73429835, 0.093403675, 0.06775674], rtol=1e-7)
    b53 = imagenet_vgg.get_layer("block5_conv3").get_weights()[1]
    np.testing.assert_allclose(b53[0], 0.18837857, rtol=1e-7)


@pytest.mark.slow
def test_build_model_identifies_imagenet(imagenet_ready) -> None:
    model, ident = build_model(SPEC, "imagenet")
    assert ident.name == "imagenet" and ident.sha256 == IMAGENET_SHA
    assert model.output.shape[-1] == 512 and not model.trainable


@pytest.mark.slow
def test_a_weights_file_with_imagenet_content_is_named_imagenet(imagenet_ready, tmp_path) -> None:
    copy = tmp_path / "my copy.weights.h5"
    shutil.copyfile(_weights_file(), copy)
    _, ident = build_model(SPEC, str(copy))
    assert ident == type(ident)("imagenet", IMAGENET_SHA)


@pytest.mark.slow
def test_offline_install_converts_onnx_to_the_known_hash(isolated_home, no_network) -> None:
    import keras

    messages: list[str] = []
    path = install_offline_weights(SPEC, log=messages.append)
    assert path == installed_weights_path(SPEC)
    assert path.parent == isolated_home / "weights"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    vgg = keras.applications.VGG16(include_top=False, weights=str(path),
                                   input_shape=(None, None, 3))
    assert _independent_hash(vgg) == IMAGENET_SHA
    assert any(IMAGENET_SHA in m for m in messages)
    # Installing again verifies and keeps the file.
    mtime = path.stat().st_mtime_ns
    messages.clear()
    install_offline_weights(SPEC, log=messages.append)
    assert path.stat().st_mtime_ns == mtime and "already installed" in messages[0]
    # The install recorded their identity, so commands the cache serves need no build.
    key = identity_key(SPEC, "imagenet", "float32")
    assert recorded_identity(SPEC, "imagenet", key) == WeightsIdentity("imagenet", IMAGENET_SHA)
    # And build_model now finds them offline.
    _, ident = build_model(SPEC, "imagenet")
    assert ident.sha256 == IMAGENET_SHA
    assert no_network == []


@pytest.mark.slow
def test_tampered_weights_file_is_rejected(imagenet_vgg, isolated_home, no_network) -> None:
    import keras

    tampered = keras.models.clone_model(imagenet_vgg)
    tampered.set_weights(imagenet_vgg.get_weights())
    kernel, bias = tampered.get_layer("block3_conv2").get_weights()
    kernel[1, 1, 7, 42] += 1e-3  # one value out of 14.7 million
    tampered.get_layer("block3_conv2").set_weights([kernel, bias])
    target = installed_weights_path(SPEC)
    target.parent.mkdir(parents=True)
    tampered.save_weights(str(target))
    with pytest.raises(WeightsError) as info:
        build_model(SPEC, "imagenet")
    msg = str(info.value)
    assert str(target) in msg and IMAGENET_SHA in msg
    assert "damaged" in msg and "gapsvm weights install --force" in msg
    # The same file passed as a path is accepted as what it is: some other weights.
    _, ident = build_model(SPEC, str(target))
    assert ident.name == target.name and ident.sha256 != IMAGENET_SHA
    assert no_network == []


@pytest.mark.slow
def test_unreadable_installed_file_says_to_reinstall(isolated_home, no_network) -> None:
    target = installed_weights_path(SPEC)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an HDF5 file")
    with pytest.raises(WeightsError, match="reinstall with `gapsvm weights install --force`"):
        build_model(SPEC, "imagenet")


@pytest.mark.slow
def test_no_weights_and_no_network_tells_user_to_install(isolated_home, no_network) -> None:
    with pytest.raises(WeightsError) as info:
        build_model(SPEC, "imagenet")
    msg = str(info.value)
    assert "gapsvm weights install" in msg
    assert "network disabled in this test" in msg  # the real cause is kept
    assert len(no_network) == 1  # Keras tried its download once, and nothing else did


@pytest.mark.slow
def test_weights_path_errors(tmp_path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        build_model(SPEC, str(tmp_path / "missing.weights.h5"))
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(WeightsError, match="cannot load weights file"):
        build_model(SPEC, str(junk))


@pytest.mark.slow
def test_random_weights_are_seeded_and_not_imagenet() -> None:
    from gapsvm.network.backbone.build import get_backbone

    # A second, separate build (the cached one may come from another test) must match it.
    _, a = build_model(SPEC, None)
    b = get_backbone("vgg16", None).identity
    assert a == b and a.name == "random(seed=0)" and a.sha256 != IMAGENET_SHA


def test_content_hash_depends_on_every_value_and_order() -> None:
    rng = np.random.default_rng(0)
    layers = [(rng.random((3, 3, 2, 4), dtype=np.float32), rng.random(4, dtype=np.float32))
              for _ in range(2)]
    h = conv_content_hash(layers)
    assert h == conv_content_hash([(k.astype(np.float64), b) for k, b in layers])
    assert h != conv_content_hash(layers[::-1])
    k0 = layers[0][0].copy()
    k0[2, 2, 1, 3] = np.nextafter(k0[2, 2, 1, 3], np.float32(2))
    assert h != conv_content_hash([(k0, layers[0][1]), layers[1]])


def test_weights_content_hash_is_sha256_of_little_endian_float32_arrays() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.random((3, 3, 2, 4), dtype=np.float32), rng.random(4, dtype=np.float32),
              rng.random((5,), dtype=np.float32)]
    # Written out independently: each array as little-endian float32, C order, in order.
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.asarray(a, "<f4").tobytes(order="C"))
    assert weights_content_hash(arrays) == h.hexdigest()
    assert weights_content_hash([np.asfortranarray(a) for a in arrays]) == h.hexdigest()
    assert weights_content_hash(a.astype(">f4") for a in arrays) == h.hexdigest()
    # (kernel, bias) pairs are the same bytes as the flat list of their arrays.
    assert conv_content_hash([(arrays[0], arrays[1])]) == weights_content_hash(arrays[:2])


@pytest.mark.slow
def test_content_hash_covers_batchnorm_moving_statistics() -> None:
    import keras

    def small(seed: int):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, name="conv")(inp)
        x = keras.layers.BatchNormalization(name="bn")(x)
        out = keras.layers.Conv2D(2, 1, name="feat")(keras.layers.ReLU()(x))
        return keras.Model(inp, out)

    model = small(0)
    before = model_content_hash(model, "feat")
    bn = model.get_layer("bn")
    gamma, beta, mean, var = bn.get_weights()
    assert [w.name for w in bn.weights][2:] == ["moving_mean", "moving_variance"]
    bn.set_weights([gamma, beta, mean + 0.5, var])  # only the moving statistics change
    after_mean = model_content_hash(model, "feat")
    bn.set_weights([gamma, beta, mean, var * 2])
    after_var = model_content_hash(model, "feat")
    assert len({before, after_mean, after_var}) == 3
    bn.set_weights([gamma, beta, mean, var])
    assert model_content_hash(model, "feat") == before
    # Every array of every layer up to the feature layer, in layer order.
    arrays = [a for name in ("conv", "bn", "feat") for a in model.get_layer(name).get_weights()]
    assert before == weights_content_hash(arrays)
    # Layers after the cut do not count; an unknown cut is an error.
    assert model_content_hash(model, "bn") == weights_content_hash(arrays[:6])
    with pytest.raises(WeightsError, match="layer 'nope' not found"):
        model_content_hash(model, "nope")


def test_imagenet_weights_file_prefers_keras_cache_then_ours(isolated_home) -> None:
    assert imagenet_weights_file(SPEC) is None
    ours = installed_weights_path(SPEC)
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"ours")
    assert imagenet_weights_file(SPEC) == ours
    keras_file = keras_cached_weights_path(SPEC)
    keras_file.parent.mkdir(parents=True)
    keras_file.write_bytes(b"keras")
    assert imagenet_weights_file(SPEC) == keras_file
    ours.unlink()
    assert imagenet_weights_file(SPEC) == keras_file
    keras_file.unlink()
    keras_file.mkdir()  # a folder of that name is no weights file
    assert imagenet_weights_file(SPEC) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["convnext_tiny", "efficientnetv2b0", "mobilenetv3large", "resnet50v2"])
def test_missing_keras_imagenet_weights_name_the_cache_path(
    name: str, isolated_home, no_network, recwarn
) -> None:
    spec = get_spec(name)
    with pytest.raises(WeightsError) as info:
        build_model(spec, "imagenet")
    # No Keras warning on the way (MobileNetV3's about non-224 inputs is expected here).
    assert not [w for w in recwarn if "input_shape" in str(w.message)]
    msg = str(info.value)
    where = keras_cached_weights_path(spec)
    assert where == Path(os.environ["KERAS_HOME"]) / "models" / spec.keras_notop_file
    assert f"ImageNet weights for {name} are not available" in msg
    assert f"Keras' cache has no {where}" in msg and f"copy that file to {where}" in msg
    assert f"keras.applications.{spec.application}(" in msg
    assert "network disabled in this test" in msg  # the real cause is kept
    # There is no offline install for these, so the message does not offer one.
    assert "gapsvm weights install" not in msg
    assert len(no_network) == 1


@pytest.mark.slow
def test_a_keras_cached_file_that_fails_is_named(isolated_home, no_network) -> None:
    # Keras checks its cached file's hash and downloads again when it does not match.
    spec = get_spec("mobilenetv3large")
    where = keras_cached_weights_path(spec)
    where.parent.mkdir(parents=True)
    where.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match=f"Keras could not use {re.escape(str(where))}"):
        build_model(spec, "imagenet")


@pytest.mark.slow  # install_offline_weights imports Keras
def test_offline_install_of_a_keras_only_backbone_says_where_its_file_goes(isolated_home) -> None:
    spec = get_spec("resnet50v2")
    with pytest.raises(WeightsError) as info:
        install_offline_weights(spec)
    msg = str(info.value)
    assert "no offline ImageNet weights source is known for 'resnet50v2'" in msg
    assert f"copy {spec.keras_notop_file}" in msg and str(keras_cached_weights_path(spec)) in msg
    assert not installed_weights_path(spec).exists()


# -- identity records: the content hash without building the network -------------------------

OTHER_SHA = "0" * 63 + "1"


def test_a_recorded_file_identity_is_keyed_by_the_file_bytes(isolated_home, tmp_path) -> None:
    path = tmp_path / "mine.weights.h5"
    path.write_bytes(b"weights, version one")
    key = identity_key(SPEC, str(path), "float32")
    assert key["file_sha256"] == hashlib.sha256(b"weights, version one").hexdigest()
    assert recorded_identity(SPEC, str(path), key) is None  # nothing recorded yet
    record_identity(key, OTHER_SHA)
    assert recorded_identity(SPEC, str(path), identity_key(SPEC, str(path), "float32")) == \
        WeightsIdentity("mine.weights.h5", OTHER_SHA)
    # Other bytes of the same size, with the old modification time put back: no record.
    st = path.stat()
    path.write_bytes(b"weights, version two")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert recorded_identity(SPEC, str(path), identity_key(SPEC, str(path), "float32")) is None
    # The record is per precision and per backbone, and written without temporary leftovers.
    path.write_bytes(b"weights, version one")
    assert recorded_identity(SPEC, str(path), identity_key(SPEC, str(path), "bfloat16")) is None
    other = get_spec("resnet50v2")
    assert recorded_identity(other, str(path), identity_key(other, str(path), "float32")) is None
    files = list((isolated_home / "weights" / "identities").iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"


def test_an_imagenet_record_must_hold_the_imagenet_hash(isolated_home) -> None:
    assert identity_key(SPEC, "imagenet", "float32") is None  # nothing installed to hash
    target = installed_weights_path(SPEC)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"some file")
    key = identity_key(SPEC, "imagenet", "float32")
    # A record of other content for this file never passes for the ImageNet weights: the
    # build, which names the damaged file, must run instead.
    record_identity(key, OTHER_SHA)
    assert recorded_identity(SPEC, "imagenet", key) is None
    assert recorded_identity(SPEC, str(target), key) == WeightsIdentity(target.name, OTHER_SHA)
    record_identity(key, IMAGENET_SHA)
    assert recorded_identity(SPEC, "imagenet", key) == WeightsIdentity("imagenet", IMAGENET_SHA)
    # The same bytes under any other name are the ImageNet weights too.
    assert recorded_identity(SPEC, str(target), key) == WeightsIdentity("imagenet", IMAGENET_SHA)


def test_random_weights_records_and_damaged_records(isolated_home) -> None:
    key = identity_key(SPEC, None, "float32")
    assert key["weights"] == "random" and key["seed"] == 0
    record_identity(key, OTHER_SHA)
    assert recorded_identity(SPEC, None, key) == WeightsIdentity("random(seed=0)", OTHER_SHA)
    (record,) = (isolated_home / "weights" / "identities").iterdir()
    for damaged in ("{not json", json.dumps({"key": {}, "sha256": OTHER_SHA}),
                    json.dumps({"key": key, "sha256": "not a hash"}), "[]"):
        record.write_text(damaged, encoding="utf-8")
        assert recorded_identity(SPEC, None, key) is None, damaged


def test_a_home_that_cannot_be_written_only_loses_the_record(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    monkeypatch.setenv("GAPSVM_HOME", str(blocker))
    key = identity_key(SPEC, None, "float32")
    record_identity(key, OTHER_SHA)  # no error
    assert recorded_identity(SPEC, None, key) is None


@pytest.mark.slow
def test_a_weights_file_changed_in_place_is_identified_anew(imagenet_vgg, isolated_home,
                                                            tmp_path) -> None:
    import keras

    from gapsvm.network.backbone.build import Backbone

    path = tmp_path / "mine.weights.h5"
    imagenet_vgg.save_weights(str(path))
    assert Backbone(SPEC, str(path)).built  # nothing on record: identified by building
    bb = Backbone(SPEC, str(path))
    assert not bb.built and bb.identity == WeightsIdentity("imagenet", IMAGENET_SHA)
    # One value changed, saved over the file, its modification time put back.
    tampered = keras.models.clone_model(imagenet_vgg)
    tampered.set_weights(imagenet_vgg.get_weights())
    kernel, bias = tampered.get_layer("block5_conv3").get_weights()
    kernel[0, 0, 0, 0] += 1e-3
    tampered.get_layer("block5_conv3").set_weights([kernel, bias])
    st = path.stat()
    tampered.save_weights(str(path))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    bb = Backbone(SPEC, str(path))
    assert bb.built and bb.identity.sha256 == _independent_hash(tampered) != IMAGENET_SHA
    assert bb.identity.name == path.name
