"""Tests for gapsvm.core.boxes on hand-made maps whose answer is known from first principles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _helpers import imported_modules
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gapsvm.core.boxes import (
    Box,
    as_box,
    as_boxes,
    box_array,
    boxes_to_mask,
    cam_to_boxes,
    draw_boxes,
    iou,
    iou_matrix,
)

FAST = settings(max_examples=60)  # the profile in conftest.py sets the rest


def test_boxes_module_stays_free_of_deep_learning_imports() -> None:
    # Checked statically: importing the package says nothing about this module alone. Every
    # core module is checked the same way in test_architecture.py.
    path = Path(__file__).resolve().parents[1] / "gapsvm" / "core" / "boxes.py"
    names = imported_modules(path)
    roots = {n.split(".")[0] for n in names}
    assert not roots & {"tensorflow", "keras", "torch"}
    ours = {n for n in names if n.startswith("gapsvm")}
    assert all(n.startswith("gapsvm.core.") for n in ours), ours  # the pure core only


# --------------------------------------------------------------------------- Box


def test_box_matches_numpy_slice_convention() -> None:
    b = Box(10, 5, 17, 9)
    assert (b.width, b.height, b.area) == (7, 4, 28)
    assert b.as_tuple() == (10, 5, 17, 9)
    image = np.zeros((20, 30))
    image[b.y_min : b.y_max, b.x_min : b.x_max] = 1
    assert image.sum() == b.area


def test_box_coerces_integral_values_and_rejects_others() -> None:
    b = Box(np.int64(1), 2.0, np.int32(3), 4)
    assert all(type(v) is int for v in b.as_tuple())
    with pytest.raises(ValueError, match="integer"):
        Box(0, 0, 2.5, 3)
    with pytest.raises(ValueError, match="x_max < x_min"):
        Box(5, 0, 4, 3)
    with pytest.raises(TypeError):
        Box(True, 0, 2, 3)
    assert Box(3, 3, 3, 7).area == 0  # empty boxes are allowed


def test_box_equality_ignores_score() -> None:
    assert Box(0, 0, 2, 2, score=0.3) == Box(0, 0, 2, 2, score=0.9)
    assert Box(0, 0, 2, 2) != Box(0, 0, 2, 3)
    assert math.isnan(Box(0, 0, 1, 1).score)


def test_as_box_and_as_boxes() -> None:
    assert as_box((1, 2, 3, 4)) == Box(1, 2, 3, 4)
    assert as_boxes(np.array([[0, 0, 1, 1], [1, 1, 3, 3]])) == [Box(0, 0, 1, 1), Box(1, 1, 3, 3)]
    with pytest.raises(TypeError):
        as_box((1, 2, 3))
    with pytest.raises(TypeError, match="single Box"):
        as_boxes(Box(0, 0, 1, 1))


def test_boxes_to_mask_clips_and_unions() -> None:
    mask = boxes_to_mask((4, 5), [(-2, -2, 2, 1), (1, 0, 3, 2), (10, 10, 12, 12)])
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, 0:3] = True
    expected[1, 1:3] = True
    np.testing.assert_array_equal(mask, expected)


# --------------------------------------------------------------------------- cam_to_boxes


def test_single_rectangle_gives_its_exact_box() -> None:
    cam = np.zeros((20, 30))
    cam[5:9, 10:17] = 1.0
    assert [b.as_tuple() for b in cam_to_boxes(cam)] == [(10, 5, 17, 9)]


def test_largest_component_wins_over_higher_peak() -> None:
    cam = np.zeros((20, 30))
    cam[2:10, 2:12] = 0.5  # big blob, 80 px, lower peak
    cam[15:17, 20:22] = 1.0  # small blob, 4 px, global maximum
    (box,) = cam_to_boxes(cam, mode="largest")
    assert box.as_tuple() == (2, 2, 12, 10)
    assert box.score == 0.5

    every = cam_to_boxes(cam, mode="all")
    # "all" is sorted by peak, so the small, brighter blob comes first.
    assert [b.as_tuple() for b in every] == [(20, 15, 22, 17), (2, 2, 12, 10)]
    assert [b.score for b in every] == [1.0, 0.5]


def test_score_is_peak_inside_component() -> None:
    cam = np.zeros((10, 10))
    cam[2:6, 2:6] = 0.4
    cam[3, 4] = 0.9
    (box,) = cam_to_boxes(cam)
    assert box.score == 0.9


def test_diagonal_touch_is_one_component_under_8_but_two_under_4() -> None:
    cam = np.zeros((8, 8))
    cam[1:3, 1:3] = 1.0
    cam[3:5, 3:5] = 1.0  # touches the first block only at a corner: (2,2)-(3,3)
    assert [b.as_tuple() for b in cam_to_boxes(cam, mode="all")] == [(1, 1, 5, 5)]
    four = cam_to_boxes(cam, mode="all", connectivity=4)
    assert sorted(b.as_tuple() for b in four) == [(1, 1, 3, 3), (3, 3, 5, 5)]


def test_threshold_is_inclusive_and_relative_to_max() -> None:
    cam = np.zeros((5, 20))
    cam[2, 2] = 1.0
    cam[2, 8] = 0.2  # exactly 20 % of the max: kept
    cam[2, 14] = 0.19999  # just below: dropped
    boxes = cam_to_boxes(cam, mode="all")
    assert sorted(b.x_min for b in boxes) == [2, 8]


def test_threshold_extremes() -> None:
    cam = np.array([[0.0, 0.5, 1.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # threshold 1 keeps only the two maxima, which are 4-adjacent.
    assert [b.as_tuple() for b in cam_to_boxes(cam, threshold=1.0)] == [(2, 0, 3, 2)]
    # threshold 0 keeps every non-negative pixel; the -1 only dents the region.
    assert [b.as_tuple() for b in cam_to_boxes(cam, threshold=0.0)] == [(0, 0, 3, 3)]


def test_negative_values_never_form_boxes() -> None:
    cam = np.full((10, 10), -3.0)
    cam[4, 4] = 0.1
    assert [b.as_tuple() for b in cam_to_boxes(cam, mode="all")] == [(4, 4, 5, 5)]


@pytest.mark.parametrize("fill", [0.0, -1.0])
def test_no_positive_value_gives_no_box(fill: float) -> None:
    cam = np.full((6, 7), fill)
    assert cam_to_boxes(cam) == []
    assert cam_to_boxes(cam, mode="all") == []


def test_box_invariant_to_positive_scaling_of_cam() -> None:
    rng = np.random.default_rng(3)
    cam = rng.normal(size=(24, 32))
    expected = [b.as_tuple() for b in cam_to_boxes(cam, mode="all")]
    for factor in (1e-6, 7.3, 255.0):
        assert [b.as_tuple() for b in cam_to_boxes(cam * factor, mode="all")] == expected


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cam": np.zeros((3, 3, 1))}, "2-D"),
        ({"cam": np.zeros((0, 4))}, "empty"),
        ({"cam": np.array([[1.0, np.nan]])}, "NaN"),
        ({"cam": np.array([["a"]])}, "real-valued"),
        ({"threshold": 1.5}, r"\[0, 1\]"),
        ({"threshold": -0.1}, r"\[0, 1\]"),
        ({"threshold": float("nan")}, r"\[0, 1\]"),
        ({"mode": "biggest"}, "mode"),
        ({"connectivity": 6}, "connectivity"),
    ],
)
def test_cam_to_boxes_validation(kwargs: dict, error: str) -> None:
    args = {"cam": np.ones((3, 3))} | kwargs
    with pytest.raises(ValueError, match=error):
        cam_to_boxes(**args)


@FAST
@given(
    cam=arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.floats(-1.0, 1.0, allow_nan=False),
    ),
    threshold=st.floats(0.0, 1.0),
)
def test_boxes_lie_inside_image_and_cover_the_maximum(cam: np.ndarray, threshold: float) -> None:
    h, w = cam.shape
    boxes = cam_to_boxes(cam, threshold=threshold, mode="all")
    if cam.max() <= 0:
        assert boxes == []
        return
    for b in boxes:
        assert 0 <= b.x_min < b.x_max <= w
        assert 0 <= b.y_min < b.y_max <= h
    # Every kept pixel lies in some box, and the highest-peak box holds the argmax.
    covered = boxes_to_mask(cam.shape, boxes)
    assert covered[cam >= threshold * cam.max()].all()
    assert boxes[0].score == cam.max()
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    assert any(
        b.score == cam.max() and b.x_min <= col < b.x_max and b.y_min <= row < b.y_max
        for b in boxes
    )
    # "largest" is one of the "all" boxes.
    (largest,) = cam_to_boxes(cam, threshold=threshold)
    assert largest in boxes


# --------------------------------------------------------------------------- iou


def test_iou_known_values() -> None:
    assert iou(Box(0, 0, 4, 4), Box(0, 0, 4, 4)) == 1.0
    assert iou((0, 0, 2, 2), (5, 5, 7, 7)) == 0.0
    # Sharing an edge is not overlapping with exclusive maxima.
    assert iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0
    # Half of each box overlaps: intersection 4, union 12.
    assert iou((0, 0, 4, 2), (2, 0, 6, 2)) == pytest.approx(1 / 3)
    # One box is the left half of the other.
    assert iou((0, 0, 4, 4), (0, 0, 2, 4)) == pytest.approx(0.5)
    assert iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # empty union


box_strategy = st.builds(
    lambda x, y, w, h: Box(x, y, x + w, y + h),
    st.integers(-5, 20),
    st.integers(-5, 20),
    st.integers(0, 15),
    st.integers(0, 15),
)


@FAST
@given(a=box_strategy, b=box_strategy)
def test_iou_symmetric_bounded_and_consistent_with_masks(a: Box, b: Box) -> None:
    value = iou(a, b)
    assert value == iou(b, a)
    assert 0.0 <= value <= 1.0
    # Cross-check against pixel counting on a grid large enough to hold both boxes.
    ma = boxes_to_mask((40, 40), [Box(a.x_min + 5, a.y_min + 5, a.x_max + 5, a.y_max + 5)])
    mb = boxes_to_mask((40, 40), [Box(b.x_min + 5, b.y_min + 5, b.x_max + 5, b.y_max + 5)])
    union = (ma | mb).sum()
    assert value == pytest.approx((ma & mb).sum() / union if union else 0.0)
    if a.area > 0:
        assert iou(a, a) == 1.0


# --------------------------------------------------------------------------- draw_boxes


def test_draw_boxes_outline_is_on_box_border_pixels() -> None:
    image = np.zeros((12, 10, 3), dtype=np.uint8)
    out = draw_boxes(image, [Box(2, 3, 6, 8)], color=(255, 0, 0), thickness=1)
    red = (out == (255, 0, 0)).all(axis=2)
    expected = np.zeros((12, 10), dtype=bool)
    expected[3, 2:6] = expected[7, 2:6] = True  # top and bottom rows: y_min, y_max - 1
    expected[3:8, 2] = expected[3:8, 5] = True  # left and right columns: x_min, x_max - 1
    np.testing.assert_array_equal(red, expected)
    # Nothing else was painted (in particular not column x_max or row y_max).
    assert out[~expected].sum() == 0


def test_draw_boxes_returns_new_rgb_uint8_and_keeps_input() -> None:
    image = np.full((20, 20, 3), 7, dtype=np.uint8)
    before = image.copy()
    out = draw_boxes(image, [(1, 1, 10, 10)])
    np.testing.assert_array_equal(image, before)
    assert out.dtype == np.uint8 and out.shape == (20, 20, 3)
    assert not np.shares_memory(out, image)
    # Default colour is yellow in RGB order: red and green full, blue zero.
    assert tuple(out[1, 5]) == (255, 255, 0)


def test_draw_boxes_accepts_gray_and_draws_labels() -> None:
    gray = np.zeros((40, 60), dtype=np.uint8)
    box = Box(10, 20, 50, 35, score=0.75)
    plain = draw_boxes(gray, [box])
    labelled = draw_boxes(gray, [box], labels=["0.75"])
    assert plain.shape == (40, 60, 3)
    # The tag goes above the box, where the plain drawing left the image black.
    assert labelled[:18].any() and not plain[:18].any()


def test_draw_boxes_skips_empty_boxes() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    assert not draw_boxes(image, [Box(3, 3, 3, 6)]).any()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"image_rgb": np.zeros((5, 5, 3), dtype=np.float32)}, "uint8"),
        ({"image_rgb": np.zeros((5, 5, 4), dtype=np.uint8)}, "shape"),
        ({"color": (255, 0)}, "color"),
        ({"color": (256, 0, 0)}, "0..255"),
        ({"thickness": 0}, "thickness"),
        ({"labels": ["a", "b"]}, "labels"),
    ],
)
def test_draw_boxes_validation(kwargs: dict, error: str) -> None:
    args = {"image_rgb": np.zeros((5, 5, 3), dtype=np.uint8), "boxes": [(0, 0, 2, 2)]} | kwargs
    with pytest.raises(ValueError, match=error):
        draw_boxes(**args)


def test_iou_matrix_is_iou_pair_by_pair() -> None:
    from gapsvm.core.boxes import iou_matrix

    rng = np.random.default_rng(3)
    corners = rng.integers(0, 30, (40, 2, 2))
    a = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)  # some empty
    got = iou_matrix(a[:25], a[25:])
    want = [[iou(tuple(p), tuple(q)) for q in a[25:]] for p in a[:25]]
    assert got.shape == (25, 15) and got.dtype == np.float64
    assert np.array_equal(got, np.array(want))


def test_box_array_stacks_checked_boxes_for_iou_matrix() -> None:
    boxes = [Box(0, 0, 4, 4), (2, 2, 6, 8), np.array([1, 1, 3, 3])]
    arr = box_array(boxes)
    assert arr.dtype == np.int64 and arr.shape == (3, 4)
    assert [tuple(r) for r in arr] == [b.as_tuple() for b in as_boxes(boxes)]
    assert box_array([]).shape == (0, 4)
    m = iou_matrix(arr, arr)
    assert m[0, 1] == iou(boxes[0], boxes[1]) and np.allclose(np.diag(m), 1.0)
    with pytest.raises(TypeError, match="single Box"):
        box_array(Box(0, 0, 1, 1))
    with pytest.raises(ValueError):
        box_array([(5, 0, 1, 1)])  # x_max < x_min: checked as every box is
