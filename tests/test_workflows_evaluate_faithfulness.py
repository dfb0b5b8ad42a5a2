"""Tests for gapsvm.workflows.evaluate.faithfulness: the feature-cell numbers against
scikit-learn's own ``decision_function`` on masked maps, and the image-space option against
independent network passes (random VGG16 weights, tiny images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _evaluate import sigmoid as _sigmoid
from _evaluate import tiny_eval_model

from gapsvm.core.metrics import auc
from gapsvm.workflows.evaluate import METHODS, evaluate
from gapsvm.workflows.evaluate.faithfulness import curves_to_aucs, feature_faithfulness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_eval_model(tmp_path_factory.mktemp("tiny-eval"))


def test_feature_faithfulness_by_hand() -> None:
    """One class map of 2 x 2 cells: every number follows from the linear head."""
    a = np.array([[4.0, -2.0], [1.0, 1.0]])
    class_maps = np.stack([-a, a], axis=-1)  # two classes: s_0 = -s_1
    b = np.array([-0.5, 0.5])
    got = feature_faithfulness(class_maps, b, 1, a, 4, np.random.default_rng(0))
    assert got["full_prob"] == pytest.approx(_sigmoid(a.mean() + 0.5))
    # The mask is the map's positive part over its maximum: 1, 0, 1/4, 1/4.
    weights = np.array([[1.0, 0.0], [0.25, 0.25]])
    assert got["masked_prob"] == pytest.approx(_sigmoid((weights * a).mean() + 0.5))
    # Cells by decreasing saliency: 4, 1, 1, -2 (ties at random, same values either way).
    np.testing.assert_allclose(got["deletion"], _sigmoid(np.array([1, 0, -0.25, -0.5, 0]) + 0.5))
    np.testing.assert_allclose(got["insertion"], _sigmoid(np.array([0, 1, 1.25, 1.5, 1]) + 0.5))


def test_curves_become_their_aucs_per_pair() -> None:
    pairs = [{"methods": {"cam": {"deletion": [1.0, 0.0], "insertion": [0.0, 0.5], "hit": 1},
                          "uniform": {"hit": 0}}}]
    curves_to_aucs(pairs)
    assert pairs[0]["methods"]["cam"] == {"hit": 1, "deletion_auc": auc([1.0, 0.0]),
                                          "insertion_auc": auc([0.0, 0.5])}
    assert pairs[0]["methods"]["uniform"] == {"hit": 0}


def test_feature_cell_faithfulness_is_exact_for_the_linear_head(tiny_model) -> None:
    """Curves recomputed independently: mask the maps, pool, ask scikit-learn's head."""
    model, anns, _ = tiny_model
    ann = anns[0]
    n_steps = 6
    # Without the cache both sides see the same float32 maps (the cache stores float16).
    cache = model.cache_dir
    model.set_params(cache_dir=None, input_size=1.0)
    try:
        rep = evaluate(model, [ann], scales=[1.0], n_steps=n_steps, faithfulness="features")
        maps = np.asarray(
            model.featurizer().extract([ann.path], maps=True).maps[0], np.float64
        )
        d = model.decision_function([ann.path])[0]
    finally:
        model.set_params(cache_dir=cache, input_size=None)
    cam_summary = rep["summary"]["cam"]
    clf = model.head_.classifier_
    W = clf.coef_[0]  # decision_function > 0 means class "b", the target
    cam = maps @ W
    # The evaluation ranks cells by the CAM; continuous values have no ties to break.
    order = np.argsort(-cam.ravel(), kind="stable")
    n = cam.size
    deletion, insertion = [], []
    for i in range(n_steps + 1):
        chosen = np.zeros(n, bool)
        chosen[order[: i * n // n_steps]] = True
        chosen = chosen.reshape(cam.shape)
        for keep, curve in ((~chosen, deletion), (chosen, insertion)):
            gap = (maps * keep[:, :, None]).mean(axis=(0, 1))
            curve.append(_sigmoid(clf.decision_function(gap[None]))[0])
    np.testing.assert_allclose(cam_summary["mean_deletion_curve"], deletion, rtol=1e-6)
    np.testing.assert_allclose(cam_summary["mean_insertion_curve"], insertion, rtol=1e-6)
    # The unmasked probability is the model's own decision value through a sigmoid.
    full = rep["per_image"][0]["methods"]["cam"]["full_prob"]
    assert full == pytest.approx(_sigmoid(d), rel=1e-6)
    # Average Drop masks with the CAM's positive part scaled to [0, 1].
    e = np.maximum(cam, 0) / cam.max()
    masked = _sigmoid(clf.decision_function((maps * e[:, :, None]).mean(axis=(0, 1))[None]))
    assert rep["per_image"][0]["methods"]["cam"]["masked_prob"] == pytest.approx(masked[0])
    # A map of ones masks nothing: no drop, no increase.
    assert rep["summary"]["uniform"]["average_drop"] == 0.0
    assert rep["summary"]["uniform"]["increase_in_confidence"] == 0.0
    # Ranking by the CAM is optimal for the linear head: no baseline deletes faster.
    for m in ("centre", "uniform", "random"):
        assert cam_summary["deletion_auc"] <= rep["summary"][m]["deletion_auc"] + 1e-12
        assert cam_summary["insertion_auc"] >= rep["summary"][m]["insertion_auc"] - 1e-12



def test_image_space_faithfulness_matches_network_passes(tiny_model) -> None:
    model, anns, _ = tiny_model
    ann = anns[0]
    rep = evaluate(model, [ann], faithfulness="image", image_steps=2)
    clf = model.head_.classifier_
    fz = model.featurizer().set_params(cache_dir=None)
    img = cv2.cvtColor(cv2.imread(ann.path), cv2.COLOR_BGR2RGB)

    def prob(images):
        gap = fz.extract(images, input_size=1.0).gap
        return _sigmoid(clf.decision_function(gap))

    black = np.zeros_like(img)
    blurred = cv2.GaussianBlur(img, (11, 11), 5.0)
    p_black, p_blur = prob([black, blurred])
    for m in METHODS:
        curve_del = rep["summary"][m]["mean_deletion_curve"]
        curve_ins = rep["summary"][m]["mean_insertion_curve"]
        assert len(curve_del) == 3
        assert curve_del[-1] == pytest.approx(p_black, abs=1e-5)  # everything deleted
        assert curve_ins[0] == pytest.approx(p_blur, abs=1e-5)  # nothing inserted yet
        assert curve_del[0] == curve_ins[-1] == rep["per_image"][0]["methods"][m]["full_prob"]
    # The uniform map keeps the image as it is: exactly no drop and no increase.
    uni = rep["per_image"][0]["methods"]["uniform"]
    assert uni["masked_prob"] == uni["full_prob"] == pytest.approx(prob([img])[0], abs=1e-5)
    assert rep["summary"]["uniform"]["average_drop"] == 0.0
    assert rep["summary"]["uniform"]["increase_in_confidence"] == 0.0


