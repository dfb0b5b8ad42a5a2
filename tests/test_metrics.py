"""Tests for gapsvm.metrics on hand-made cases whose answer is known from first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gapsvm.core.boxes import Box, boxes_to_mask
from gapsvm.core.metrics import (
    auc,
    average_drop,
    best_iou,
    box_area_share,
    box_recall_precision,
    center_box,
    center_map,
    corloc,
    deletion_insertion_orders,
    energy_in_box,
    increase_in_confidence,
    linear_gap_curves,
    linear_gap_scores,
    match_boxes,
    pointing_game,
    random_map,
    scaled_tolerance,
    uniform_map,
)

# No example database: the suite must not leave a .hypothesis/ folder in the checkout.
FAST = settings(max_examples=60, deadline=None, database=None)

small_maps = arrays(
    np.float64,
    st.tuples(st.integers(1, 10), st.integers(1, 10)),
    elements=st.floats(-1.0, 1.0, allow_nan=False),
)
small_boxes = st.lists(
    st.builds(
        lambda x, y, w, h: Box(x, y, x + w, y + h),
        st.integers(-3, 12),
        st.integers(-3, 12),
        st.integers(0, 8),
        st.integers(0, 8),
    ),
    max_size=4,
)


def _peak_map(shape: tuple[int, int] = (101, 101), at: tuple[int, int] = (50, 50)) -> np.ndarray:
    cam = np.zeros(shape)
    cam[at] = 1.0
    return cam


# --------------------------------------------------------------------------- pointing game


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((224, 300), 15.0), ((448, 640, 3), 30.0), ((640, 320), 15 * 320 / 224)],
)
def test_scaled_tolerance_uses_shorter_side(shape: tuple[int, ...], expected: float) -> None:
    assert scaled_tolerance(shape) == pytest.approx(expected)


def test_scaled_tolerance_custom_reference() -> None:
    assert scaled_tolerance((100, 100), base=10, reference=50) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        scaled_tolerance((100, 100), reference=0)


@pytest.mark.parametrize(
    ("box", "tolerance", "hit"),
    [
        ((65, 40, 80, 60), 15, True),  # nearest box column 65: exactly 15 px right of col 50
        ((65, 40, 80, 60), 14.99, False),
        ((66, 40, 80, 60), 15, False),  # 16 px
        ((59, 62, 70, 70), 15, True),  # (9, 12) px: distance exactly 15
        ((59, 63, 70, 70), 15, False),  # (9, 13) px: about 15.8
        ((30, 40, 41, 60), 10, True),  # x_max 41 is exclusive: last column 40 is 10 px left
        ((30, 40, 41, 60), 9.99, False),
        ((30, 40, 40, 60), 10, False),  # last column 39: 11 px
        ((50, 50, 51, 51), 0, True),  # the maximum's own pixel
        ((51, 50, 52, 51), 0, False),
    ],
)
def test_pointing_game_tolerance_border(box: tuple, tolerance: float, hit: bool) -> None:
    assert pointing_game(_peak_map(), [box], tolerance=tolerance) is hit


def test_pointing_game_any_box_counts() -> None:
    far = (0, 0, 5, 5)
    near = (48, 48, 53, 53)
    assert pointing_game(_peak_map(), [far, near], tolerance=0)
    assert not pointing_game(_peak_map(), [far], tolerance=0)


def test_pointing_game_ties_use_first_maximum_in_row_major_order() -> None:
    cam = np.zeros((100, 100))
    cam[10, 80] = cam[80, 10] = 1.0  # (10, 80) comes first row-major
    assert pointing_game(cam, [(78, 8, 83, 13)], tolerance=0)
    assert not pointing_game(cam, [(8, 78, 13, 83)], tolerance=0)


def test_pointing_game_ignores_boxes_outside_image_and_empty_lists() -> None:
    assert not pointing_game(_peak_map(), [(200, 200, 210, 210)], tolerance=1000)
    assert not pointing_game(_peak_map(), [], tolerance=1000)


def test_pointing_game_validation() -> None:
    with pytest.raises(ValueError):
        pointing_game(_peak_map(), [(0, 0, 1, 1)], tolerance=-1)
    with pytest.raises(ValueError):
        pointing_game(np.zeros(5), [(0, 0, 1, 1)])


@FAST
@given(cam=small_maps, boxes=small_boxes, tolerance=st.floats(0.0, 6.0))
def test_pointing_game_matches_brute_force(
    cam: np.ndarray, boxes: list[Box], tolerance: float
) -> None:
    # Reference: is any pixel of the clipped union within `tolerance` of the argmax pixel?
    mask = boxes_to_mask(cam.shape, boxes)
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    rr, cc = np.nonzero(mask)
    expected = bool(((rr - row) ** 2 + (cc - col) ** 2 <= tolerance**2).any())
    assert pointing_game(cam, boxes, tolerance=tolerance) is expected


# --------------------------------------------------------------------------- energy


def _two_mass_map() -> np.ndarray:
    cam = np.zeros((10, 10))
    cam[0, 0] = 1.0  # inside (0, 0, 2, 2)
    cam[9, 9] = 3.0  # outside
    return cam


def test_energy_in_box_known_share() -> None:
    assert energy_in_box(_two_mass_map(), [(0, 0, 2, 2)]) == pytest.approx(0.25)


def test_energy_overlapping_boxes_not_double_counted() -> None:
    # Summing per-box energies would give 0.5 here.
    assert energy_in_box(_two_mass_map(), [(0, 0, 2, 2), (0, 0, 3, 3)]) == pytest.approx(0.25)


def test_energy_ignores_negative_values() -> None:
    cam = _two_mass_map()
    cam[5, 5] = -10.0
    cam[1, 1] = -10.0
    assert energy_in_box(cam, [(0, 0, 2, 2)]) == pytest.approx(0.25)


def test_energy_edge_cases() -> None:
    cam = _two_mass_map()
    assert energy_in_box(cam, [(0, 0, 10, 10)]) == 1.0
    assert energy_in_box(cam, [(-5, -5, 50, 50)]) == 1.0  # clipped to the image
    assert energy_in_box(cam, []) == 0.0
    assert math.isnan(energy_in_box(np.zeros((4, 4)), [(0, 0, 2, 2)]))
    assert math.isnan(energy_in_box(-np.ones((4, 4)), [(0, 0, 2, 2)]))


def test_box_area_share_counts_union_once() -> None:
    assert box_area_share((10, 10), [(0, 0, 5, 10), (0, 0, 5, 5)]) == 0.5
    assert box_area_share((10, 10, 3), [(0, 0, 100, 100)]) == 1.0
    assert box_area_share((10, 10), []) == 0.0


@FAST
@given(cam=small_maps, boxes=small_boxes)
def test_energy_properties(cam: np.ndarray, boxes: list[Box]) -> None:
    h, w = cam.shape
    value = energy_in_box(cam, boxes)
    whole = energy_in_box(cam, [(0, 0, w, h)])
    if (cam > 0).any():
        assert 0.0 <= value <= 1.0
        assert whole == 1.0
    else:
        assert math.isnan(value) and math.isnan(whole)
    # A uniform map puts exactly the covered share of its mass in the boxes.
    assert energy_in_box(uniform_map(cam.shape), boxes) == box_area_share(cam.shape, boxes)


# --------------------------------------------------------------------------- box metrics


def test_best_iou() -> None:
    gts = [(0, 0, 2, 4), (10, 10, 14, 14)]
    assert best_iou((0, 0, 4, 4), gts) == pytest.approx(0.5)
    assert best_iou(Box(10, 10, 14, 14), gts) == 1.0
    assert best_iou(None, gts) == 0.0
    assert best_iou((0, 0, 4, 4), []) == 0.0


def test_corloc_threshold_is_inclusive() -> None:
    assert corloc([0.5, 0.49, 0.9, 0.0]) == 0.5
    assert corloc([0.5, 0.49, 0.9, 0.0], threshold=0.9) == 0.25
    assert corloc(np.array([1.0])) == 1.0


@pytest.mark.parametrize(
    ("ious", "threshold"),
    [([], 0.5), ([0.5, 1.2], 0.5), ([0.5, float("nan")], 0.5), ([0.5], 0.0), ([[0.5]], 0.5)],
)
def test_corloc_validation(ious: list, threshold: float) -> None:
    with pytest.raises(ValueError):
        corloc(ious, threshold=threshold)


def test_two_predictions_on_one_object_give_recall_1_precision_half() -> None:
    gt = [(0, 0, 10, 10)]
    preds = [(0, 0, 10, 10), (0, 0, 10, 6)]  # IoU 1.0 and 0.6
    assert box_recall_precision(preds, gt) == (1.0, 0.5)
    # Each ground truth is matched once, to the highest-IoU prediction, whatever the order.
    assert match_boxes(preds, gt) == [(0, 0)]
    assert match_boxes(preds[::-1], gt) == [(1, 0)]


def test_matching_iou_threshold_is_inclusive() -> None:
    gt = [(0, 0, 10, 10)]
    assert match_boxes([(0, 0, 10, 5)], gt) == [(0, 0)]  # IoU exactly 0.5
    assert match_boxes([(0, 0, 10, 4)], gt) == []  # IoU 0.4
    assert box_recall_precision([(0, 0, 10, 4)], gt) == (0.0, 0.0)


def test_one_to_one_matching_of_several_objects() -> None:
    gts = [(0, 0, 10, 10), (20, 0, 30, 10)]
    preds = [(21, 0, 30, 10), (0, 0, 9, 10), (50, 50, 60, 60)]
    assert sorted(match_boxes(preds, gts)) == [(0, 1), (1, 0)]
    recall, precision = box_recall_precision(preds, gts)
    assert recall == 1.0 and precision == pytest.approx(2 / 3)


def test_recall_precision_undefined_cases_are_nan() -> None:
    recall, precision = box_recall_precision([], [(0, 0, 2, 2)])
    assert recall == 0.0 and math.isnan(precision)
    recall, precision = box_recall_precision([(0, 0, 2, 2)], [])
    assert math.isnan(recall) and precision == 0.0
    with pytest.raises(ValueError):
        box_recall_precision([(0, 0, 2, 2)], [(0, 0, 2, 2)], threshold=0.0)


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


# --------------------------------------------------------------------------- baselines


def test_center_map_peaks_at_centre_and_is_symmetric() -> None:
    odd = center_map((5, 7))
    assert np.unravel_index(np.argmax(odd), odd.shape) == (2, 3)
    assert odd[2, 3] == 1.0 and (odd > 0).all() and (odd <= 1).all()
    even = center_map((4, 6, 3))
    assert even.shape == (4, 6)
    np.testing.assert_allclose(even, even[::-1, :])
    np.testing.assert_allclose(even, even[:, ::-1])
    central = even[1:3, 2:4]
    np.testing.assert_allclose(central, central.max())
    assert central.max() == even.max()
    with pytest.raises(ValueError):
        center_map((5, 5), sigma=0)


def test_center_map_sigma_is_relative_to_each_side() -> None:
    wide = center_map((5, 25))  # centre (2, 12)
    # Two rows (2/5 of the height) and ten columns (10/25 of the width) from the centre are
    # the same relative offset, so the values agree despite the aspect ratio.
    assert wide[0, 12] == pytest.approx(wide[2, 22])
    assert wide[2, 22] == pytest.approx(math.exp(-0.5 * (10 / (0.25 * 25)) ** 2))


def test_uniform_map() -> None:
    np.testing.assert_array_equal(uniform_map((3, 4, 3)), np.ones((3, 4)))


def test_random_map_is_reproducible_bounded_and_smooth() -> None:
    a = random_map((50, 70), rng=3)
    np.testing.assert_array_equal(a, random_map((50, 70), rng=np.random.default_rng(3)))
    assert not np.array_equal(a, random_map((50, 70), rng=4))
    assert a.shape == (50, 70) and a.min() >= 0.0 and a.max() <= 1.0
    # Per-pixel uniform noise has mean |neighbour difference| of 1/3; cells of 16 px are
    # smooth, so the difference is roughly 16 times smaller.
    assert np.abs(np.diff(a, axis=1)).mean() < 0.06
    assert np.abs(np.diff(a, axis=0)).mean() < 0.06


def test_random_map_with_unit_cells_is_the_raw_noise() -> None:
    np.testing.assert_array_equal(
        random_map((6, 9), rng=5, cell=1), np.random.default_rng(5).random((6, 9))
    )
    with pytest.raises(ValueError):
        random_map((6, 9), rng=5, cell=0)


@pytest.mark.parametrize(
    ("shape", "fraction", "expected"),
    [
        ((100, 200), 0.5, (50, 25, 150, 75)),
        ((100, 200, 3), 1.0, (0, 0, 200, 100)),
        ((5, 5), 0.5, (1, 1, 4, 4)),  # 2.5 rounds up to 3, margins of 1 on each side
        ((10, 10), 0.01, (4, 4, 5, 5)),  # never empty
    ],
)
def test_center_box(shape: tuple, fraction: float, expected: tuple) -> None:
    assert center_box(shape, fraction).as_tuple() == expected


def test_center_box_validation() -> None:
    with pytest.raises(ValueError):
        center_box((10, 10), 0.0)
    with pytest.raises(ValueError):
        center_box((10, 10), 1.5)


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
