"""Tests for gapsvm.estimator.explanation.Explanation, what ``GapClassifier.explain`` returns:
a frozen record whose CAMs add up to the head's scores.

The pure tests build an Explanation from a scikit-learn head fitted on random maps, so each
score is scikit-learn's own ``decision_function``; one slow test checks ``explain`` itself on
a randomly initialised network.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gapsvm import Explanation
from gapsvm.core.cam import class_activation_map
from gapsvm.core.decode import ImageReadError
from gapsvm.core.head import GapHead

CLASSES = np.array(["bird", "cat", "dog"])


@pytest.fixture(scope="module")
def explanation() -> tuple[Explanation, np.ndarray]:
    """Four images, the second unreadable; maps (5, 3, 16); returns (explanation, decision)."""
    rng = np.random.default_rng(0)
    y = np.repeat(CLASSES, 10)
    centers = rng.normal(size=(3, 16)) * 2
    maps = np.maximum(rng.normal(size=(30, 5, 3, 16)) + centers[np.repeat([0, 1, 2], 10)]
                      [:, None, None, :], 0).astype(np.float32)
    head = GapHead(LogisticRegression(max_iter=2000)).fit(maps.mean(axis=(1, 2)), y)
    W, b = head.cam_weights()
    picked = maps[[0, 11, 12, 25]]
    decision = head.classifier_.decision_function(picked.mean(axis=(1, 2)))
    scores = decision.copy()
    scores[1] = np.nan
    target = np.array([2, -1, 1, 0])  # any class may be explained, not only the predicted one
    cams = [None if t < 0 else class_activation_map(m, W[t])
            for m, t in zip(picked, target, strict=True)]
    error = ImageReadError("b.jpg", "empty file (0 bytes)")
    e = Explanation(cams=cams, classes=CLASSES, target=target,
                    predicted=head.predict(picked.mean(axis=(1, 2))), scores=scores,
                    intercepts=b, image_hw=[(80, 48), None, (80, 48), (90, 50)],
                    input_hw=[(80, 48), None, (80, 48), (80, 48)], errors=[error])
    return e, decision


def test_it_is_frozen(explanation) -> None:
    e, _ = explanation
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.cams = []  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.target = np.zeros(4, int)  # type: ignore[misc]


def test_len_ok_and_target_labels(explanation) -> None:
    e, _ = explanation
    assert len(e) == 4
    assert e.ok.dtype == bool and e.ok.tolist() == [True, False, True, True]
    assert e.target_labels == ["dog", None, "cat", "bird"]
    assert [err.path for err in e.errors] == ["b.jpg"]


def test_score_is_mean_cam_plus_intercept(explanation) -> None:
    e, decision = explanation
    for i in np.flatnonzero(e.ok):
        t = e.target[i]
        by_cam = float(e.cams[i].astype(np.float64).mean()) + float(e.intercepts[t])
        assert e.score(i) == pytest.approx(by_cam, rel=1e-5, abs=1e-5)
        # ... which is scikit-learn's own decision value for that class.
        assert e.score(i) == pytest.approx(float(decision[i, t]), rel=1e-5, abs=1e-5)
    assert np.isnan(e.scores[1]).all()


def test_every_class_per_image_scores_and_labels(explanation) -> None:
    # target="all": one (n_classes, h', w') stack per image, one row of class indices each.
    e, decision = explanation
    rng = np.random.default_rng(2)
    stacks = [None if not ok else rng.normal(size=(3, 5, 3)).astype(np.float32)
              for ok in e.ok]
    target = np.where(e.ok[:, None], np.arange(3), -1)
    every = dataclasses.replace(e, cams=stacks, target=target)
    assert every.all_classes and not e.all_classes
    assert every.target_labels == [["bird", "cat", "dog"], None, ["bird", "cat", "dog"],
                                   ["bird", "cat", "dog"]]
    for i in np.flatnonzero(e.ok):
        np.testing.assert_allclose(every.score(i), decision[i], rtol=1e-5, atol=1e-5)
    assert every.ok.tolist() == [True, False, True, True]


def test_errors_default_to_none_found() -> None:
    e = Explanation(cams=[], classes=CLASSES, target=np.zeros(0, int),
                    predicted=np.zeros(0, CLASSES.dtype), scores=np.zeros((0, 3)),
                    intercepts=np.zeros(3), image_hw=[], input_hw=[])
    assert e.errors == [] and len(e) == 0 and e.ok.tolist() == []


@pytest.mark.slow
def test_explain_returns_an_explanation_whose_cams_give_the_decision_function(tmp_path):
    from gapsvm import GapClassifier

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    images[6:, :, :, 0] = 255  # a learnable difference: the second class is red
    y = np.array(["plain"] * 6 + ["red"] * 6)
    clf = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=(32, 32),
                        cache_dir=None).fit(images, y)
    e = clf.explain(images[[0, 7]])
    assert isinstance(e, Explanation) and len(e) == 2 and e.ok.all()
    decision = clf.decision_function(images[[0, 7]])
    for i in range(2):
        cam = e.cams[i].astype(np.float64)
        assert cam.shape == (2, 2)  # 32x32 at stride 16
        assert e.score(i) == pytest.approx(cam.mean() + e.intercepts[e.target[i]], rel=1e-4,
                                           abs=1e-4)
        sign = 1 if e.target[i] == 1 else -1  # binary: class 1 has +w, class 0 has -w
        assert e.score(i) == pytest.approx(sign * decision[i], rel=1e-4, abs=1e-4)
    np.testing.assert_array_equal(e.predicted, clf.predict(images[[0, 7]]))
    assert e.target_labels == list(e.predicted)  # by default each image's prediction


def test_the_old_dict_keys_still_read_with_a_deprecation_warning() -> None:
    # explain() returned a dict before 0.2; scripts that index it keep working, warned.
    exp = Explanation(
        cams=[np.ones((2, 2), np.float32), None], classes=np.array(["a", "b"]),
        target=np.array([1, -1]), predicted=np.array(["b", "a"]),
        scores=np.array([[0.0, 1.0], [np.nan, np.nan]]), intercepts=np.array([0.0, 0.5]),
        image_hw=[(4, 4), None], input_hw=[(4, 4), None],
    )
    with pytest.warns(DeprecationWarning, match=r"use \.cams instead"):
        assert exp["cams"] is exp.cams
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(exp["ok"], [True, False])
    with pytest.raises(KeyError):
        exp["classes_"]
