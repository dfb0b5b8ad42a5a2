"""Tests for gapsvm.network.featurizer: GAP vectors checked against a plain Keras model built
here, and the scikit-learn contract of GapFeaturizer."""

from __future__ import annotations

import _network
import numpy as np
import pytest
from _helpers import imagenet_weights_file
from _network import fitted_featurizer
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from gapsvm import GapFeaturizer
from gapsvm.core.decode import read_image
from gapsvm.network.featurizer import FEATURIZER_PARAMS, features_metadata, stack_if_same

pytestmark = pytest.mark.slow

eight = _network.eight  # the shared fixture


@pytest.fixture(scope="module")
def plain_keras_block5(imagenet_ready):
    """block5_conv3 of Keras' own VGG16 loaded from the same weights file: no gapsvm code."""
    import keras

    vgg = keras.applications.VGG16(
        include_top=False, weights=str(imagenet_weights_file()), input_shape=(None, None, 3)
    )
    return keras.Model(vgg.input, vgg.get_layer("block5_conv3").output)


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
    got = fitted_featurizer(input_size=None).transform(eight)
    assert got.shape == (8, 512) and got.dtype == np.float32
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    assert rel.max() < 1e-4, rel
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The maps themselves too, cell by cell.
    got_maps = fitted_featurizer(input_size=None).transform_maps(eight)
    np.testing.assert_allclose(got_maps, maps, rtol=1e-4, atol=1e-4 * maps.max())


def test_fixed_size_resizes_as_documented(plain_keras_block5, shared_data) -> None:
    import cv2
    import keras

    # 451x300 to 192x240: shrunk with INTER_AREA from the full decode (an input under half
    # the photo's shorter side would let libjpeg decode at reduced scale first).
    path = shared_data / "smoke" / "chelsea.jpg"
    img = read_image(path)
    small = cv2.resize(img, (240, 192), interpolation=cv2.INTER_AREA)
    x = keras.applications.vgg16.preprocess_input(small[None].astype(np.float32))
    want = np.asarray(plain_keras_block5.predict(x, verbose=0)).mean(axis=(1, 2))
    got = fitted_featurizer(input_size=(192, 240)).transform([path])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize(
    "X, match",
    [
        ([], "no images"),
        ([3.5], "float"),
    ],
    ids=["empty", "number"],
)
def test_bad_inputs_say_what_was_expected(X, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        fitted_featurizer(weights=None).transform(X)


# ------------------------------------------------------------------ scikit-learn contract


def test_sklearn_contract(eight) -> None:
    fz = GapFeaturizer(weights=None, input_size=(64, 64), cache_dir=None, verbose=0)
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


def test_transform_needs_no_fit(eight) -> None:
    # A frozen pretrained backbone learns nothing: like Normalizer, transform works unfitted.
    fz = GapFeaturizer(weights=None, input_size=(64, 64), cache_dir=None, verbose=0)
    assert GapFeaturizer().__sklearn_tags__().requires_fit is False
    out = fz.transform(eight[:3])
    assert not hasattr(fz, "weights_id_")  # transform sets nothing
    np.testing.assert_array_equal(out, clone(fz).fit().transform(eight[:3]))
    assert fz.get_feature_names_out()[-1] == "gap511"
    assert fz.metadata()["weights"]["name"] == "random(seed=0)"
    assert stack_if_same(fz.extract(eight[:1], maps=True).maps)[0].shape == (4, 4, 512)


def test_weights_changed_after_fit_is_refused(imagenet_ready, eight) -> None:
    fz = fitted_featurizer(weights=None)
    fz.set_params(weights="imagenet")
    with pytest.raises(ValueError, match="weights changed since fit"):
        fz.transform(eight[:1])
    with pytest.raises(ValueError, match="weights changed since fit"):
        fz.extract(eight[:1], maps=True)
    # Unfitted, the featurizer takes the weights as they are now.
    unfitted = GapFeaturizer(weights="imagenet", input_size=(128, 64), cache_dir=None,
                             verbose=0)
    np.testing.assert_array_equal(unfitted.transform(eight[:1]),
                                  fitted_featurizer().transform(eight[:1]))


@parametrize_with_checks([GapFeaturizer(weights=None, input_size=(32, 32), cache_dir=None,
                                        verbose=0)])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_in_a_pipeline_with_a_linear_svc(persons_slice) -> None:
    paths, labels = persons_slice
    pipe = make_pipeline(fitted_featurizer(), LinearSVC())
    pipe.fit(paths[::2], labels[::2])
    acc = np.mean(pipe.predict(paths[1::2]) == labels[1::2])
    assert acc >= 0.9  # 24 held-out INRIA crops, ImageNet features



def test_featurizer_params_are_the_constructor_parameters() -> None:
    assert set(FEATURIZER_PARAMS) == set(GapFeaturizer().get_params())
    assert FEATURIZER_PARAMS[:3] == ("backbone", "weights", "input_size")


def test_metadata_says_what_produced_the_features(eight) -> None:
    from gapsvm import __version__
    from gapsvm.core.cache import PREPROCESS_VERSION
    from gapsvm.network.backbone.build import get_backbone

    fz = fitted_featurizer(input_size=2.0)
    meta = fz.metadata()
    assert meta == {
        **get_backbone("vgg16", "imagenet").metadata(), "input_size": "x2",
        "preprocess_version": PREPROCESS_VERSION, "gapsvm_version": __version__,
    }
    assert meta["weights"]["name"] == "imagenet" and meta["stride"] == 16
    assert fz.metadata(input_size=(96, 48))["input_size"] == "96x48"
    assert features_metadata(meta, None)["input_size"] == "native"
