"""Tests for gapsvm.core.metrics.localisation on hand-made cases whose answer is known from
first principles: pointing game, energy in box, IoU, CorLoc, box matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _metrics import FAST, small_boxes, small_maps
from hypothesis import given
from hypothesis import strategies as st

from gapsvm.core.boxes import Box, boxes_to_mask
from gapsvm.core.metrics.baselines import uniform_map
from gapsvm.core.metrics.localisation import (
    best_iou,
    box_area_share,
    box_recall_precision,
    corloc,
    energy_in_box,
    match_boxes,
    pointing_game,
    scaled_tolerance,
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
