"""Tests for gapsvm.core.metrics.sweep on hand-made cases: the threshold sweep of
weakly-supervised localisation, MaxBoxAccV2 and top-1 localisation."""

from __future__ import annotations

import numpy as np
import pytest
from _metrics import FAST, small_boxes, small_maps
from hypothesis import given
from hypothesis import strategies as st

from gapsvm.core.boxes import Box, cam_to_boxes, iou
from gapsvm.core.metrics.localisation import corloc
from gapsvm.core.metrics.sweep import (
    MAXBOXACC_THRESHOLDS,
    box_ious,
    iou_curve,
    max_box_accuracy,
    minmax_normalize,
    threshold_boxes,
    top1_localisation,
)

# --------------------------------------------------------------- WSOL: sweep and MaxBoxAccV2

#: Two blobs: A (2x2, peak 4) at the top left and B (3x2 of ones, more pixels, lower peak).
#: Min-max normalised: A is 0.5 with a 1.0 at (2, 2), B is 0.25, the rest 0.
TWO_BLOBS = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 2, 2, 0, 1, 1],
        [0, 2, 4, 0, 1, 1],
        [0, 0, 0, 0, 1, 1],
    ],
    dtype=np.float64,
)
SWEEP = [0.0, 0.2, 0.3, 0.6, 1.0]


def test_threshold_boxes_by_hand() -> None:
    got = threshold_boxes(TWO_BLOBS, SWEEP)
    assert got.tolist() == [
        [0, 0, 6, 4],  # 0 keeps every pixel: the whole image
        [4, 1, 6, 4],  # 0.2 keeps A and B; B has more pixels (6 > 4), though a lower peak
        [1, 1, 3, 3],  # 0.3 keeps A only
        [2, 2, 3, 3],  # 0.6 and 1.0 keep the peak pixel
        [2, 2, 3, 3],
    ]
    # Only the shape counts: any positive scale and offset give the same boxes.
    np.testing.assert_array_equal(threshold_boxes(3 * TWO_BLOBS - 7, SWEEP), got)


def test_iou_curve_by_hand() -> None:
    gt = [Box(1, 1, 3, 3)]  # exactly blob A
    np.testing.assert_allclose(iou_curve(TWO_BLOBS, gt, SWEEP), [4 / 24, 0, 1, 1 / 4, 1 / 4])
    # The best of several ground-truth boxes counts.
    two = [Box(1, 1, 3, 3), Box(4, 1, 6, 4)]
    np.testing.assert_allclose(iou_curve(TWO_BLOBS, two, SWEEP), [6 / 24, 1, 1, 1 / 4, 1 / 4])
    assert iou_curve(TWO_BLOBS, [], SWEEP).tolist() == [0.0] * 5


def test_a_flat_map_boxes_the_whole_image_at_every_threshold() -> None:
    np.testing.assert_array_equal(minmax_normalize(np.full((3, 5), -2.0)), np.ones((3, 5)))
    assert threshold_boxes(np.full((3, 5), 7.0)).tolist() == [[0, 0, 5, 3]] * 100


@FAST
@given(small_maps, st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.99, 1.0]))
def test_threshold_boxes_are_cam_to_boxes_of_the_normalised_map(cam, t) -> None:
    # An independent path: the library's own CAM boxes on the min-max normalised map, whose
    # maximum is 1, so "threshold * max" is the threshold (same ties: more pixels, then peak).
    [expected] = cam_to_boxes(minmax_normalize(cam), t, "largest")
    assert threshold_boxes(cam, [t])[0].tolist() == list(expected.as_tuple())


@FAST
@given(small_boxes, small_boxes)
def test_box_ious_is_iou_pair_by_pair(boxes, gts) -> None:
    got = box_ious(boxes, gts)
    assert got.shape == (len(boxes), len(gts))
    for i, b in enumerate(boxes):
        for j, g in enumerate(gts):
            assert got[i, j] == pytest.approx(iou(b, g))


def test_max_box_accuracy_by_hand() -> None:
    curves = [
        [4 / 24, 0.0, 1.0, 0.25, 0.25],  # TWO_BLOBS against blob A, from above
        [0.4, 0.6, 0.35, 0.8, 0.1],
    ]
    got = max_box_accuracy(curves, SWEEP)
    # IoU 0.3: hits per threshold (F,T) (F,T) (T,T) (F,T) (F,F) -> best 1.0 at 0.3.
    # IoU 0.5: (F,F) (F,T) (T,F) (F,T) (F,F) -> best 0.5, first reached at 0.2.
    # IoU 0.7: (F,F) (F,F) (T,F) (F,T) (F,F) -> best 0.5 at 0.3.
    assert got.per_iou == {0.3: 1.0, 0.5: 0.5, 0.7: 0.5}
    assert got.best_threshold == {0.3: 0.3, 0.5: 0.2, 0.7: 0.3}
    assert got.value == pytest.approx(2 / 3)
    np.testing.assert_allclose(got.curves[0], [0.5, 0.5, 1.0, 0.5, 0.0])
    # The IoU levels are inclusive: exactly 0.5 counts at 0.5.
    assert max_box_accuracy([[0.5]], [0.0]).per_iou[0.5] == 1.0


def test_max_box_accuracy_checks_its_input() -> None:
    with pytest.raises(ValueError, match="match the thresholds"):
        max_box_accuracy(np.zeros((2, 3)), SWEEP)
    with pytest.raises(ValueError, match="match the thresholds"):
        max_box_accuracy(np.zeros((0, 100)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        max_box_accuracy([[1.5] * 5], SWEEP)
    with pytest.raises(ValueError, match="thresholds"):
        threshold_boxes(TWO_BLOBS, [0.5, 1.5])


def test_default_sweep_is_choes_grid() -> None:
    assert len(MAXBOXACC_THRESHOLDS) == 100
    assert MAXBOXACC_THRESHOLDS[0] == 0.0 and MAXBOXACC_THRESHOLDS[-1] == 0.99
    assert MAXBOXACC_THRESHOLDS[37] == 0.37  # the grid is exact, not 0.37000000000000005


def test_top1_localisation_counts_a_wrong_class_as_a_miss_even_with_a_right_box() -> None:
    # Pair 2 has a perfect box but the wrong class; pair 3 the right class but a poor box.
    assert top1_localisation([True, False, True], [0.9, 1.0, 0.3]) == pytest.approx(1 / 3)
    assert corloc([0.9, 1.0, 0.3]) == pytest.approx(2 / 3)  # GT-known counts pair 2
    assert top1_localisation([False, False], [1.0, 1.0]) == 0.0
    assert top1_localisation([True], [0.5]) == 1.0  # inclusive
    with pytest.raises(ValueError, match="one value per pair"):
        top1_localisation([True], [0.5, 0.6])


def test_a_component_inside_anothers_hole_is_still_seen() -> None:
    # A one-pixel ring (44 pixels) around a solid 8x8 blob (64 pixels) in its hole: the blob
    # is the largest component, though the ring's outer border encloses it.
    cam = np.zeros((16, 16))
    cam[1:13, 1:13] = 1.0
    cam[2:12, 2:12] = 0.0
    cam[3:11, 3:11] = 0.9
    assert threshold_boxes(cam, [0.5]).tolist() == [[3, 3, 11, 11]]
    assert threshold_boxes(cam, [0.95]).tolist() == [[1, 1, 13, 13]]  # the ring alone
