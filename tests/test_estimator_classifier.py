"""Tests for gapsvm.estimator.classifier.GapClassifier on real images with the ImageNet weights.

The 800 INRIA crops are extracted once per session into a cache under pytest's base temp
folder (``persons_cache``); every test that trains on persons reads it, so training costs no
network pass. CAM identities are checked on maps computed without the cache (float32), and,
with a derived bound, on the float16 maps the cache serves.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import imagenet_weights_file
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from gapsvm import GapClassifier, GapFeaturizer, NotLinearError
from gapsvm.core.decode import read_image
from gapsvm.network.backbone.build import get_backbone

pytestmark = pytest.mark.slow

SIZE = (128, 64)


def _images_run() -> int:
    return get_backbone("vgg16", "imagenet", "float32").images_run


@pytest.fixture(scope="session")
def persons_cache(tmp_path_factory, persons, imagenet_ready) -> Path:
    """A feature cache holding all 800 crops at 128x64 (maps included), filled once."""
    d = tmp_path_factory.getbasetemp() / "persons-128x64-cache"
    paths, _ = persons
    GapFeaturizer(input_size=SIZE, cache_dir=d, verbose=0).fit().transform(paths)
    return d


@pytest.fixture(scope="module")
def person_model(persons, persons_cache) -> GapClassifier:
    """LinearSVC head on all 800 crops."""
    paths, labels = persons
    return GapClassifier(input_size=SIZE, cache_dir=persons_cache).fit(paths, labels)


@pytest.fixture(scope="module")
def scenes(shared_data) -> list[str]:
    """A third class for multiclass heads: the 24 smoke photos (no pedestrians)."""
    return sorted(str(p) for p in (shared_data / "smoke").iterdir() if p.suffix != ".csv")


@pytest.fixture(scope="module")
def three_class(persons_slice, scenes):
    paths, labels = persons_slice
    X = list(paths) + scenes[:20]
    y = np.concatenate([labels, np.full(20, "scene")])
    check = list(paths[:3]) + list(paths[-3:]) + scenes[20:]
    return X, y, check


@pytest.fixture(scope="module")
def plain_keras_block5(imagenet_ready):
    import keras

    vgg = keras.applications.VGG16(include_top=False, weights=str(imagenet_weights_file()),
                                   input_shape=(None, None, 3))
    return keras.Model(vgg.input, vgg.get_layer("block5_conv3").output)


# ------------------------------------------------------------------ accuracy


def test_five_fold_accuracy_on_all_800_persons(persons, persons_cache) -> None:
    paths, labels = persons
    before = _images_run()
    scores = cross_val_score(
        GapClassifier(input_size=SIZE, cache_dir=persons_cache), paths, labels,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
    )
    assert _images_run() == before  # every fold was served from the cache
    assert scores.mean() >= 0.97, scores
    assert scores.min() >= 0.94, scores


# ------------------------------------------------------------------ scikit-learn contract


def test_params_clone_and_nested_params_on_the_default_classifier() -> None:
    clf = GapClassifier(LogisticRegression(C=2.0), input_size=(96, 48), weights=None)
    c = clone(clf)
    assert c is not clf and c.classifier is not clf.classifier
    assert c.get_params()["classifier__C"] == 2.0 and c.input_size == (96, 48)

    a, b = GapClassifier(), GapClassifier()
    a.set_params(classifier__C=0.1)
    assert isinstance(a.classifier, LinearSVC) and a.classifier.C == 0.1
    assert b.classifier is None and GapClassifier().classifier is None
    assert clone(a).classifier.C == 0.1


def test_unfitted_model_raises_not_fitted(persons_slice, tmp_path) -> None:
    paths, _ = persons_slice
    clf = GapClassifier(weights=None, cache_dir=None)
    for call in (clf.predict, clf.decision_function, clf.cam, clf.explain):
        with pytest.raises(NotFittedError):
            call(paths[:1])
    with pytest.raises(NotFittedError):
        clf.save(tmp_path / "never.skops")
    assert not list(tmp_path.iterdir())


def test_fit_sets_only_underscore_attributes_and_keeps_string_labels(
    persons_slice, persons_cache
) -> None:
    paths, labels = persons_slice
    clf = GapClassifier(input_size=SIZE, cache_dir=persons_cache)
    params = clf.get_params()
    before = set(vars(clf))
    assert clf.fit(paths, labels) is clf
    new = set(vars(clf)) - before
    assert new and all(k.endswith("_") and not k.startswith("_") for k in new), new
    assert clf.get_params() == params  # fit does not touch constructor parameters
    assert clf.classes_.tolist() == ["not_person", "person"]
    pred = clf.predict(paths[:4])
    assert set(pred.tolist()) <= {"not_person", "person"}
    assert clf.feature_meta_["input_size"] == "128x64"
    assert clf.feature_meta_["weights"]["name"] == "imagenet"


def test_predict_proba_only_for_heads_that_have_it(persons_slice, persons_cache) -> None:
    paths, labels = persons_slice
    assert not hasattr(GapClassifier(), "predict_proba")
    svc = GapClassifier(input_size=SIZE, cache_dir=persons_cache).fit(paths, labels)
    assert not hasattr(svc, "predict_proba")
    lr = GapClassifier(LogisticRegression(max_iter=2000), input_size=SIZE,
                       cache_dir=persons_cache)
    assert hasattr(lr, "predict_proba")
    lr.fit(paths, labels)
    p = lr.predict_proba(paths[:5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(lr.classes_[p.argmax(1)], lr.predict(paths[:5]))


def test_label_errors(persons_slice) -> None:
    paths, labels = persons_slice
    clf = GapClassifier(weights=None, input_size=(32, 32), cache_dir=None)
    with pytest.raises(ValueError, match="got 3 labels for 4 images"):
        clf.fit(paths[:4], labels[:3])
    with pytest.raises(ValueError, match="at least two classes"):
        clf.fit(paths[:2], ["person", "person"])


# ------------------------------------------------------------------ CAM identity


def _heads(persons_slice, three_class):
    paths, labels = persons_slice
    X3, y3, check3 = three_class
    binary = (list(paths), labels, list(paths[:3]) + list(paths[-3:]))
    return {
        "linearsvc-binary": (LinearSVC(), *binary),
        "logreg-3-classes": (LogisticRegression(max_iter=2000), X3, y3, check3),
        "scaler+pca+logreg-3-classes": (
            make_pipeline(StandardScaler(), PCA(n_components=20, random_state=0),
                          LogisticRegression(max_iter=2000)),
            X3, y3, check3,
        ),
    }


def _decision_columns(clf: GapClassifier, X) -> np.ndarray:
    d = clf.decision_function(X)
    return np.stack([-d, d], axis=1) if d.ndim == 1 else d


HEADS = ["linearsvc-binary", "logreg-3-classes", "scaler+pca+logreg-3-classes"]


@pytest.mark.parametrize("head", HEADS)
def test_cam_mean_plus_intercept_is_decision_function(
    head, persons_slice, three_class, persons_cache, tmp_path
) -> None:
    est, X, y, check = _heads(persons_slice, three_class)[head]
    clf = GapClassifier(est, input_size=SIZE, cache_dir=persons_cache).fit(X, y)
    W, b = clf.head_.cam_weights()
    fitted = clf.head_.classifier_
    if head == "linearsvc-binary":
        np.testing.assert_array_equal(b, [-fitted.intercept_[0], fitted.intercept_[0]])
    elif head == "logreg-3-classes":
        np.testing.assert_array_equal(b, fitted.intercept_)

    # float32 maps straight from the network.
    clf.set_params(cache_dir=None)
    want = _decision_columns(clf, check)
    scale = np.abs(want).max()
    for c, label in enumerate(clf.classes_):
        cams = clf.cam(check, target=label, size="features", normalize=False)
        assert cams.shape == (len(check), 8, 4) and cams.dtype == np.float32
        got = cams.mean(axis=(1, 2), dtype=np.float64) + b[c]
        np.testing.assert_allclose(got, want[:, c], rtol=1e-4, atol=1e-4 * scale)

    # float16 maps from the cache: each map value carries a relative rounding error of at
    # most 2**-11, so the mean CAM may move by at most 2**-11 * mean_xy sum_k |W_ck| f_k.
    maps32 = np.asarray(clf.featurizer().transform_maps(check), dtype=np.float64)
    clf.set_params(cache_dir=tmp_path / "cache")
    clf.transform_features(check)  # fills the cache, maps included (cache_maps=True)
    before = _images_run()
    for c, label in enumerate(clf.classes_):
        cams16 = clf.cam(check, target=label, size="features", normalize=False)
        got = cams16.mean(axis=(1, 2), dtype=np.float64) + b[c]
        bound = 2.0**-11 * (maps32 @ np.abs(W[c])).mean(axis=(1, 2))
        err = np.abs(got - want[:, c])
        assert np.all(err <= 1.05 * bound + 1e-6 * scale), (err, bound)
    assert _images_run() == before  # those CAMs came from cached maps


def test_cam_equals_hand_computed_cam_from_plain_keras(
    person_model, plain_keras_block5, persons_slice
) -> None:
    import keras

    paths, _ = persons_slice
    check = list(paths[:3]) + list(paths[-3:])
    x = np.stack([keras.utils.img_to_array(keras.utils.load_img(p)) for p in check])
    maps = np.asarray(
        plain_keras_block5.predict(keras.applications.vgg16.preprocess_input(x), verbose=0),
        dtype=np.float64,
    )
    coef = person_model.head_.classifier_.coef_[0]  # positive = classes_[1] = "person"
    assert person_model.classes_[1] == "person"
    by_hand = maps @ coef
    clf = copy.deepcopy(person_model).set_params(cache_dir=None)
    got = clf.cam(check, target="person", size="features", normalize=False)
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-4 * np.abs(by_hand).max())
    got0 = clf.cam(check, target="not_person", size="features", normalize=False)
    np.testing.assert_allclose(got0, -by_hand, rtol=1e-4, atol=1e-4 * np.abs(by_hand).max())


def test_default_target_is_the_predicted_class(person_model, persons_slice) -> None:
    paths, _ = persons_slice
    check = list(paths[:3]) + list(paths[-3:])
    info = person_model.explain(check)
    np.testing.assert_array_equal(person_model.classes_[info.target], info.predicted)
    np.testing.assert_array_equal(info.predicted, person_model.predict(check))
    per_image = person_model.cam(check, target=list(info.predicted), normalize=False)
    np.testing.assert_allclose(person_model.cam(check, normalize=False), per_image)


# ------------------------------------------------------------------ grid search


def test_grid_search_runs_the_network_once_per_image(persons_slice, imagenet_ready, tmp_path):
    paths, labels = persons_slice
    grid = GridSearchCV(
        GapClassifier(input_size=SIZE, cache_dir=tmp_path / "cache"),
        {"classifier": [LinearSVC(), LogisticRegression(max_iter=2000)],
         "classifier__C": [0.1, 1, 10]},
        cv=5,
    )
    before = _images_run()
    grid.fit(paths, labels)
    assert _images_run() - before == len(paths)
    assert len(grid.cv_results_["params"]) == 6
    assert grid.best_score_ >= 0.9
    assert isinstance(grid.best_estimator_, GapClassifier)
    assert grid.best_estimator_.head_.classifier_.C == grid.best_params_["classifier__C"]
    before = _images_run()
    grid.predict(paths[:5])
    assert _images_run() == before


class _Terminal(io.StringIO):
    """stderr as a terminal: tqdm draws its bar only where ``isatty()`` is true."""

    def isatty(self) -> bool:
        return True


def test_fit_shows_a_progress_bar_on_a_terminal(persons_slice, tmp_path, monkeypatch) -> None:
    from gapsvm.utils import progress

    paths, labels = persons_slice
    n = len(paths)
    runs = {}
    for name, verbose, delay in [("quiet", 0, 0.0), ("default", None, 0.0),
                                 ("cached", None, 60.0), ("always", 2, 60.0)]:
        monkeypatch.setattr(sys, "stderr", _Terminal())
        monkeypatch.setattr(progress, "TERMINAL_DELAY", delay)
        kw = {} if verbose is None else {"verbose": verbose}
        GapClassifier(LogisticRegression(max_iter=5000), weights=None, input_size=(32, 32),
                      cache_dir=tmp_path, **kw).fit(paths, labels)
        runs[name] = sys.stderr.getvalue()
    assert runs["quiet"] == ""
    assert "features: 100%" in runs["default"] and f"{n}/{n}" in runs["default"]
    # A pass that ends before the terminal delay (here: 60 s) draws nothing, as grid-search
    # folds served from the cache do; verbose=2 draws at once.
    assert runs["cached"] == ""
    assert f"{n}/{n}" in runs["always"]


# ------------------------------------------------------------------ other sizes


COMPOSITES = [("coffee", 139, 144), ("coffee", 231, 341), ("chelsea", 30, 314),
              ("chelsea", 166, 282)]


@pytest.fixture(scope="module")
def composites(shared_data, persons):
    """Person crops pasted into real photos without people: (images, crop boxes)."""
    paths, labels = persons
    person = [p for p, lab in zip(paths, labels, strict=True) if lab == "person"]
    images, boxes = [], []
    for i, (name, y0, x0) in enumerate(COMPOSITES):
        img = read_image(shared_data / "smoke" / f"{name}.jpg").copy()
        img[y0 : y0 + 128, x0 : x0 + 64] = read_image(person[37 * i + 5])
        images.append(img)
        boxes.append((y0, x0))
    return images, boxes


def test_input_size_change_applies_without_refit(person_model, composites) -> None:
    images, boxes = composites
    clf = copy.deepcopy(person_model)  # a fitted copy: the module's model stays as it is
    head = clf.head_
    clf.set_params(input_size=None)
    assert clf.head_ is head  # nothing was refitted
    cams = clf.cam(images, target="person", normalize=False)
    assert isinstance(cams, list)  # coffee and chelsea differ in size
    for img, cam, (y0, x0) in zip(images, cams, boxes, strict=True):
        assert cam.shape == img.shape[:2]  # size="image": the photo's own size
        yy, xx = np.unravel_index(np.argmax(cam), cam.shape)
        assert y0 <= yy < y0 + 128 and x0 <= xx < x0 + 64, ((yy, xx), (y0, x0))
    feat = clf.cam(images[:2], target="person", size="features", normalize=False)
    assert feat.shape == (2, 400 // 16, 600 // 16)  # coffee at its own 600x400: 25x37 cells
    # The per-call override on the unchanged model gives the same maps.
    same = person_model.cam(images[:2], target="person", size="features", normalize=False,
                            input_size=None)
    np.testing.assert_allclose(same, feat, rtol=1e-6, atol=1e-6 * np.abs(feat).max())
    assert person_model.input_size == SIZE


def test_image_size_maps_and_lists(person_model, persons_slice, composites) -> None:
    paths, _ = persons_slice
    images, _ = composites
    photo = images[2]  # 300x451
    crop = read_image(paths[0])
    out = person_model.cam([crop, photo])
    assert isinstance(out, list) and [m.shape for m in out] == [(128, 64), photo.shape[:2]]
    for m in out:
        assert m.dtype == np.float32 and m.min() == 0.0 and m.max() == 1.0
    same = person_model.cam([crop, photo], size="features")
    assert isinstance(same, np.ndarray) and same.shape == (2, 8, 4)  # both resized to 128x64


def test_target_errors(person_model, persons_slice) -> None:
    paths, _ = persons_slice
    with pytest.raises(ValueError, match=r"unknown target class 'cat'.*'not_person', 'person'"):
        person_model.cam(paths[:2], target="cat")
    with pytest.raises(ValueError, match="got 3 targets for 2 images"):
        person_model.cam(paths[:2], target=["person"] * 3)
    with pytest.raises(ValueError, match="size must be"):
        person_model.cam(paths[:1], size="original")


def test_other_weights_than_the_head_was_trained_on_are_refused(person_model, persons_slice):
    paths, _ = persons_slice
    clf = copy.deepcopy(person_model).set_params(weights=None)
    with pytest.raises(ValueError, match="use the same weights"):
        clf.predict(paths[:1])


def test_non_linear_head_predicts_but_has_no_cam(persons_slice, persons_cache) -> None:
    paths, labels = persons_slice
    clf = GapClassifier(DecisionTreeClassifier(random_state=0), input_size=SIZE,
                        cache_dir=persons_cache).fit(paths, labels)
    assert clf.predict(paths[:3]).shape == (3,)
    with pytest.raises(NotLinearError, match="DecisionTreeClassifier has no coef_"):
        clf.cam(paths[:1])


def test_explain_skips_unreadable_images(person_model, persons_slice, tmp_path) -> None:
    paths, _ = persons_slice
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    info = person_model.explain([paths[0], str(bad), paths[1]], on_error="skip")
    assert info.ok.tolist() == [True, False, True]
    assert info.cams[1] is None and info.cams[0].shape == (8, 4)
    assert [e.path for e in info.errors] == [str(bad)]
    scores = info.scores
    assert np.isnan(scores[1]).all()
    d = person_model.decision_function([paths[0], paths[1]])
    np.testing.assert_allclose(scores[[0, 2], 1], d, rtol=1e-6)


# ------------------------------------------------------------------ every class at once


@pytest.fixture(scope="module")
def caltech(shared_data, imagenet_ready, tmp_path_factory):
    """caltech101_3 at 224x224 (three classes, photos of differing sizes): a LinearSVC head on
    5 photos per class, 2 other photos per class to explain, and a cache holding them all."""
    from gapsvm.core.scan import load_directory

    paths, labels, _ = load_directory(shared_data / "caltech101_3")
    train = [i for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:5]]
    check = [paths[i] for c in np.unique(labels) for i in np.flatnonzero(labels == c)[5:7]]
    cache = tmp_path_factory.mktemp("caltech-cache")
    clf = GapClassifier(input_size=(224, 224), cache_dir=cache, verbose=0).fit(
        [paths[i] for i in train], labels[train])
    return clf, check


def test_target_all_is_every_class_cam_from_one_pass(caltech) -> None:
    model, check = caltech
    clf = copy.deepcopy(model).set_params(cache_dir=None)  # every call runs the network
    assert list(clf.classes_) == ["airplane", "face", "motorcycle"]
    before = _images_run()
    every = clf.cam(check, target="all", size="features", normalize=False)
    assert _images_run() - before == len(check)  # once per image, not once per class
    assert every.shape == (len(check), 3, 14, 14) and every.dtype == np.float32
    for c, label in enumerate(clf.classes_):
        one = clf.cam(check, target=label, size="features", normalize=False)
        np.testing.assert_array_equal(every[:, c], one)
    # The CAM identity per class: spatial mean plus intercept is that class's score.
    _, b = clf.head_.cam_weights()
    want = clf.decision_function(check)
    got = every.mean(axis=(2, 3), dtype=np.float64) + b
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_target_all_at_image_size_and_in_explain(caltech) -> None:
    clf, check = caltech
    clf.transform_features(check)  # cached maps (float16), so every call below reads them
    before = _images_run()
    every = clf.cam(check, target="all")  # photos of different sizes: a list
    assert isinstance(every, list) and len(every) == len(check)
    per_class = [clf.cam(check, target=label) for label in clf.classes_]
    for i, maps in enumerate(every):
        h, w = read_image(check[i]).shape[:2]
        assert maps.shape == (3, h, w)
        for c in range(3):
            np.testing.assert_array_equal(maps[c], per_class[c][i])  # each scaled on its own
            assert maps[c].min() == 0.0 and maps[c].max() == 1.0
    info = clf.explain(check, target="all")
    assert _images_run() == before
    assert info.all_classes and info.target.shape == (len(check), 3)
    assert info.target_labels[0] == ["airplane", "face", "motorcycle"]
    np.testing.assert_array_equal(info.predicted, clf.predict(check))
    for i in range(len(check)):
        np.testing.assert_array_equal(info.score(i), info.scores[i])
        assert info.cams[i].shape == (3, 14, 14)


def test_target_all_refusals(caltech, tmp_path) -> None:
    clf, check = caltech
    with pytest.raises(ValueError, match="boxes\\(\\) draws one class per image"):
        clf.boxes(check[:1], target="all")
    named = copy.deepcopy(clf)
    named.classes_ = np.array(["airplane", "all", "motorcycle"])
    with pytest.raises(ValueError, match="'all' is ambiguous: this model has a class named"):
        named.cam(check[:1], target="all")
