"""Tests for gapsvm.core.metrics.faithfulness on hand-made cases whose answer is known from
first principles: Average Drop, Increase in Confidence, deletion / insertion orders, AUC,
and the exact scores of a linear head on masked feature cells."""

from __future__ import annotations

import numpy as np
import pytest
from _metrics import FAST, small_maps
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gapsvm.core.metrics.baselines import random_map
from gapsvm.core.metrics.faithfulness import (
    auc,
    average_drop,
    deletion_insertion_orders,
    increase_in_confidence,
    linear_gap_curves,
    linear_gap_scores,
    scores_to_probabilities,
)

# --------------------------------------------------------------------------- faithfulness


def test_average_drop_and_increase_in_confidence_known_values() -> None:
    full = [0.8, 0.5]
    masked = [0.4, 0.6]  # a 50 % drop, then an increase (counted as no drop)
    assert average_drop(full, masked) == pytest.approx(25.0)
    assert increase_in_confidence(full, masked) == pytest.approx(50.0)


def test_faithfulness_extremes() -> None:
    assert average_drop([0.3, 0.9], [0.3, 0.9]) == 0.0
    assert increase_in_confidence([0.3, 0.9], [0.3, 0.9]) == 0.0  # equal is not an increase
    assert average_drop([0.3, 0.9], [0.0, 0.0]) == pytest.approx(100.0)
    assert increase_in_confidence([0.3, 0.9], [0.31, 0.95]) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("full", "masked"),
    [
        ([0.0], [0.1]),  # Y must be > 0
        ([-0.2], [0.1]),  # raw decision values are rejected
        ([0.5], [-0.1]),
        ([0.5, 0.4], [0.1]),
        ([], []),
        ([0.5], [float("nan")]),
    ],
)
def test_faithfulness_validation(full: list, masked: list) -> None:
    with pytest.raises(ValueError):
        average_drop(full, masked)
    with pytest.raises(ValueError):
        increase_in_confidence(full, masked)


# --------------------------------------------------------------------------- deletion / insertion


def test_deletion_order_is_decreasing_saliency() -> None:
    cam = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.7, 0.0], [0.4, 0.6, 1.0, 0.05]])
    schedule = deletion_insertion_orders(cam, n_steps=4)
    np.testing.assert_array_equal(schedule.order[:3], [10, 1, 4])  # 1.0, 0.9, 0.8
    np.testing.assert_array_equal(schedule.counts, [0, 3, 6, 9, 12])
    masks = list(schedule.masks())
    assert len(masks) == 5 == schedule.n_steps + 1
    assert not masks[0].any() and masks[-1].all()
    previous = np.zeros_like(masks[0])
    for step, mask in enumerate(masks):
        assert mask.shape == cam.shape
        assert mask.sum() == schedule.counts[step]
        assert (mask >= previous).all()  # monotone: removed pixels stay removed
        new = mask & ~previous
        if previous.any() and new.any():
            assert cam[new].max() < cam[previous].min()
        np.testing.assert_array_equal(mask, schedule.mask(step))
        previous = mask
    np.testing.assert_array_equal(masks[1], cam >= 0.8)


def test_masks_are_independent_copies_and_schedule_is_read_only() -> None:
    schedule = deletion_insertion_orders(np.arange(12.0).reshape(3, 4), n_steps=3)
    gen = schedule.masks()
    first = next(gen)
    first[:] = True
    assert next(gen).sum() == 4
    with pytest.raises(ValueError):
        schedule.order[0] = 5
    with pytest.raises(IndexError):
        schedule.mask(4)


def test_ties_row_major_by_default_random_with_rng() -> None:
    flat = np.zeros((10, 10))
    np.testing.assert_array_equal(deletion_insertion_orders(flat).order, np.arange(100))
    a = deletion_insertion_orders(flat, rng=1).order
    b = deletion_insertion_orders(flat, rng=np.random.default_rng(1)).order
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.arange(100))
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    # Random tie-breaking never overrides saliency.
    cam = np.zeros((10, 10))
    cam[3, :] = 1.0
    assert set(deletion_insertion_orders(cam, rng=7).order[:10]) == set(range(30, 40))


def test_more_steps_than_pixels() -> None:
    schedule = deletion_insertion_orders(np.ones((2, 2)), n_steps=8)
    np.testing.assert_array_equal(schedule.counts, [0, 0, 1, 1, 2, 2, 3, 3, 4])
    np.testing.assert_allclose(schedule.fractions, np.arange(9) // 2 / 4)


def test_full_size_schedule_is_cheap() -> None:
    cam = random_map((320, 640), rng=0)
    schedule = deletion_insertion_orders(cam)  # default 32 steps
    counts = [int(m.sum()) for m in schedule.masks()]
    assert counts == list(schedule.counts)
    assert schedule.order.nbytes <= 320 * 640 * 8


def test_deletion_validation() -> None:
    with pytest.raises(ValueError):
        deletion_insertion_orders(np.ones((3, 3)), n_steps=0)
    with pytest.raises(TypeError):
        deletion_insertion_orders(np.ones((3, 3)), n_steps=2.5)


@FAST
@given(cam=small_maps, n_steps=st.integers(1, 12), seed=st.none() | st.integers(0, 100))
def test_deletion_properties(cam: np.ndarray, n_steps: int, seed: int | None) -> None:
    schedule = deletion_insertion_orders(cam, n_steps=n_steps, rng=seed)
    ranked = cam.ravel()[schedule.order]
    assert (np.diff(ranked) <= 0).all()
    np.testing.assert_array_equal(np.sort(schedule.order), np.arange(cam.size))
    assert schedule.counts[0] == 0 and schedule.counts[-1] == cam.size
    assert (np.diff(schedule.counts) >= 0).all()
    assert np.abs(schedule.fractions - np.linspace(0, 1, n_steps + 1)).max() < 1 / cam.size


def test_auc_known_curves() -> None:
    assert auc([0.7] * 33) == pytest.approx(0.7)
    assert auc(np.linspace(0.0, 1.0, 33)) == pytest.approx(0.5)
    assert auc([1.0, 0.0]) == pytest.approx(0.5)
    assert auc([0.0, 1.0, 1.0]) == pytest.approx(0.75)


@pytest.mark.parametrize("scores", [[0.5], [], [[0.1, 0.2]], [0.1, float("inf")]])
def test_auc_validation(scores: list) -> None:
    with pytest.raises(ValueError):
        auc(scores)


@FAST
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40))
def test_auc_lies_between_curve_extremes(scores: list[float]) -> None:
    value = auc(scores)
    assert min(scores) - 1e-12 <= value <= max(scores) + 1e-12



# ------------------------------------------------------------- faithfulness on feature cells


def test_linear_gap_scores_by_hand() -> None:
    a = np.array([[[1.0, -1.0], [3.0, 0.0]], [[-2.0, 2.0], [6.0, 4.0]]])  # (2, 2, 2 classes)
    b = [0.5, -0.5]
    # No mask: the class scores themselves, mean(A_c) + b_c.
    np.testing.assert_allclose(linear_gap_scores(a, b, np.ones((2, 2))), [2.5, 0.75])
    # Keep only the top-left cell: (1 / 4) + 0.5 and (-1 / 4) - 0.5.
    keep = np.array([[True, False], [False, False]])
    np.testing.assert_allclose(linear_gap_scores(a, b, keep), [0.75, -0.75])
    # A soft mask and a stack of masks; all-zero gives the intercepts.
    soft = np.array([[0.5, 0.0], [0.0, 1.0]])
    expected = [0.5 / 4 + 6 / 4 + 0.5, -0.5 / 4 + 4 / 4 - 0.5]
    np.testing.assert_allclose(linear_gap_scores(a, b, soft), expected)
    stack = linear_gap_scores(a, b, np.stack([np.zeros((2, 2)), np.ones((2, 2))]))
    np.testing.assert_allclose(stack, [[0.5, -0.5], [2.5, 0.75]])
    # One 2-D class map: no class axis in the result.
    assert linear_gap_scores(a[:, :, 0], 0.5, keep) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="intercept"):
        linear_gap_scores(a, [0.5], keep)
    with pytest.raises(ValueError, match="weights must have shape"):
        linear_gap_scores(a, b, np.ones((3, 2)))


def test_linear_gap_scores_equal_a_linear_head_on_masked_pooled_features() -> None:
    """The identity the feature-cell metrics rely on, against scikit-learn itself."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    maps = rng.random((5, 5, 6, 8))  # 5 images, 5 x 6 cells, 8 channels
    clf = LogisticRegression().fit(maps.mean(axis=(1, 2)), [0, 1, 2, 0, 1])
    mask = rng.random((5, 6))
    gap = (maps[0] * mask[:, :, None]).mean(axis=(0, 1))
    expected = clf.decision_function(gap[None])[0]
    class_maps = np.tensordot(maps[0], clf.coef_.T, axes=([2], [0]))
    np.testing.assert_allclose(linear_gap_scores(class_maps, clf.intercept_, mask), expected)


def test_linear_gap_curves_by_hand() -> None:
    a = np.array([[4.0, -2.0], [1.0, 1.0]])  # one class, mean 1
    schedule = deletion_insertion_orders(a, n_steps=4)  # one cell per step: 4, 1, 1, -2
    deletion, insertion = linear_gap_curves(a, 1.0, schedule)
    np.testing.assert_allclose(deletion, [2.0, 1.0, 0.75, 0.5, 1.0])
    np.testing.assert_allclose(insertion, [1.0, 2.0, 2.25, 2.5, 2.0])
    assert deletion[0] == insertion[-1]


@FAST
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3)),
           elements=st.floats(-5.0, 5.0, allow_nan=False)),
    st.integers(1, 12),
    st.integers(0, 2**16),
)
def test_linear_gap_curves_match_mask_by_mask_scores(
    a: np.ndarray, n_steps: int, seed: int
) -> None:
    b = np.linspace(-1.0, 1.0, a.shape[2])
    schedule = deletion_insertion_orders(a[:, :, 0], n_steps, rng=seed)
    deletion, insertion = linear_gap_curves(a, b, schedule)
    masks = np.stack(list(schedule.masks()))
    np.testing.assert_allclose(insertion, linear_gap_scores(a, b, masks), atol=1e-9)
    np.testing.assert_allclose(deletion, linear_gap_scores(a, b, ~masks), atol=1e-9)


def test_linear_gap_curves_rank_by_the_map_is_optimal() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 7))
    best_del, best_ins = linear_gap_curves(a, 0.0, deletion_insertion_orders(a, 7))
    other = rng.normal(size=(6, 7))
    del_o, ins_o = linear_gap_curves(a, 0.0, deletion_insertion_orders(other, 7))
    assert (best_del <= del_o + 1e-12).all() and (best_ins >= ins_o - 1e-12).all()
    with pytest.raises(ValueError, match="schedule"):
        linear_gap_curves(a, 0.0, deletion_insertion_orders(np.ones((2, 2)), 2))


# ------------------------------------------------------------- scores as probabilities


def test_two_class_scores_become_sigmoids_that_sum_to_one() -> None:
    s = np.array([[-2.0, 2.0], [0.0, 0.0], [800.0, -800.0]])
    p = scores_to_probabilities(s)
    np.testing.assert_allclose(p[0], [1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-2.0))])
    np.testing.assert_allclose(p[1], [0.5, 0.5])
    np.testing.assert_array_equal(p[2], [1.0, 0.0])  # no overflow, no NaN
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)


def test_more_classes_give_a_softmax() -> None:
    s = np.array([1.0, 2.0, 3.0])
    e = np.exp(s)
    np.testing.assert_allclose(scores_to_probabilities(s), e / e.sum())
    # Shifting every score leaves a softmax unchanged; huge scores do not overflow.
    np.testing.assert_allclose(scores_to_probabilities(s + 1000.0), e / e.sum())
    stack = scores_to_probabilities(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]))
    np.testing.assert_allclose(stack[0], [1 / 3] * 3)
    assert stack[1].argmax() == 0 and stack[1].sum() == pytest.approx(1.0)
