"""Tests for gapsvm.core.detection: window means against brute force and a linear head,
window boxes by hand, greedy NMS by hand and against a brute-force greedy, box voting by
hand."""

from __future__ import annotations

import numpy as np
import pytest

from gapsvm.core.boxes import Box, iou
from gapsvm.core.detection import (
    WINDOW_GRAMMAR,
    Detection,
    default_window,
    detections_from_arrays,
    nms,
    parse_windows,
    scored_windows,
    vote_boxes,
    window_boxes,
    window_means,
)


def brute_means(a: np.ndarray, window: tuple[int, int], stride: int) -> np.ndarray:
    h, w = window
    rows = range(0, a.shape[0] - h + 1, stride)
    cols = range(0, a.shape[1] - w + 1, stride)
    out = [[a[y:y + h, x:x + w].mean(axis=(0, 1)) for x in cols] for y in rows]
    return np.array(out).reshape(len(rows), len(cols), *a.shape[2:])


@pytest.mark.parametrize("shape", [(7, 9), (6, 5, 3), (1, 1), (12, 4, 2)])
@pytest.mark.parametrize("window", [(1, 1), (2, 3), (4, 2), (1, 4)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_window_means_equal_brute_force(shape, window, stride) -> None:
    a = np.random.default_rng(sum(shape) + stride).normal(3.0, 2.0, shape)
    got = window_means(a, window, stride)
    want = brute_means(a, window, stride)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_window_larger_than_the_map_gives_an_empty_array() -> None:
    assert window_means(np.ones((3, 3)), (4, 1)).shape == (0, 3)
    assert window_means(np.ones((3, 3, 5)), (1, 4)).shape == (3, 0, 5)
    boxes, scores = scored_windows(np.ones((3, 3)), 0.5, [(4, 4)], (48, 48))
    assert boxes.shape == (0, 4) and boxes.dtype == np.int64 and scores.shape == (0,)
    assert window_boxes((3, 3), (4, 4), 1, (48, 48)).shape == (0, 4)


def test_window_score_is_the_linear_heads_decision_on_the_pooled_window() -> None:
    # The head's decision on the window's GAP features equals mean(cam over window) + b.
    rng = np.random.default_rng(0)
    features = rng.random((9, 11, 16))  # non-negative, as ReLU features are
    w, b = rng.normal(size=16), -0.7
    cam = features @ w
    window, stride = (4, 3), 2
    boxes, scores = scored_windows(cam, b, [window], (144, 176), stride)
    pooled = window_means(features, window, stride)  # the GAP of each window's cells
    np.testing.assert_allclose(scores, (pooled @ w + b).reshape(-1), atol=1e-12)
    for k, (x0, y0, x1, y1) in enumerate(boxes):  # 16-pixel cells: box = cells * 16
        crop = features[y0 // 16:y1 // 16, x0 // 16:x1 // 16]
        assert crop.shape[:2] == window
        assert scores[k] == pytest.approx(crop.mean(axis=(0, 1)) @ w + b, abs=1e-12)


def test_scored_windows_concatenate_every_shape_in_order() -> None:
    rng = np.random.default_rng(1)
    cam = rng.normal(size=(6, 8))
    windows = [(2, 2), (3, 5), (9, 1)]  # the last does not fit and adds nothing
    boxes, scores = scored_windows(cam, 1.5, windows, (60, 80), stride=1)
    want_scores = np.concatenate([brute_means(cam, w, 1).reshape(-1) + 1.5 for w in windows])
    want_boxes = np.concatenate([window_boxes(cam.shape, w, 1, (60, 80)) for w in windows])
    np.testing.assert_allclose(scores, want_scores, atol=1e-12)
    np.testing.assert_array_equal(boxes, want_boxes)
    assert len(scores) == 5 * 7 + 4 * 4


def test_window_boxes_by_hand() -> None:
    # 3x4 cells of 16 pixels, 2x2 windows: 2 rows x 3 columns of positions, row-major.
    np.testing.assert_array_equal(
        window_boxes((3, 4), (2, 2), 1, (48, 64)),
        [[0, 0, 32, 32], [16, 0, 48, 32], [32, 0, 64, 32],
         [0, 16, 32, 48], [16, 16, 48, 48], [32, 16, 64, 48]],
    )
    # 3x3 cells over 10x10 pixels: edges round(0, 3.33, 6.67, 10) = 0, 3, 7, 10.
    np.testing.assert_array_equal(
        window_boxes((3, 3), (1, 2), 2, (10, 10)), [[0, 0, 7, 3], [0, 7, 7, 10]]
    )


def test_window_means_refuse_bad_arguments() -> None:
    a = np.zeros((4, 4))
    for window in [(0, 1), (2,), (1.5, 2), (True, 1), "2x2"]:
        with pytest.raises(ValueError, match="window"):
            window_means(a, window)
    for stride in [0, -1, 1.0]:
        with pytest.raises(ValueError, match="stride"):
            window_means(a, (1, 1), stride)
    with pytest.raises(ValueError, match="NaN"):
        window_means(np.array([[np.nan]]), (1, 1))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        window_means(np.zeros(4), (1, 1))


# -------------------------------------------------------------------------------- NMS


def brute_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def test_nms_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [5, 0, 15, 10]])
    scores = np.array([0.9, 0.8, 0.7, 0.85])
    # IoU(0, 1) = 90 / 110 = 0.82, IoU(0, 3) = 50 / 150 = 0.33, box 2 overlaps nothing.
    assert nms(boxes, scores, 0.5).tolist() == [0, 3, 2]
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, 0.5, max_keep=2).tolist() == [0, 3]
    assert nms(boxes, scores, 1.0).tolist() == [0, 3, 1, 2]  # IoU is never > 1


def test_nms_ties_and_edges() -> None:
    # Identical boxes with equal scores: the lower index is kept.
    assert nms([[0, 0, 4, 4], [0, 0, 4, 4]], [1.0, 1.0]).tolist() == [0]
    # Sharing an edge is no overlap (exclusive maxima), even at threshold 0.
    assert nms([[0, 0, 2, 2], [2, 0, 4, 2]], [1.0, 0.5], 0.0).tolist() == [0, 1]
    empty = nms(np.zeros((0, 4)), np.zeros(0))
    assert empty.shape == (0,) and empty.dtype == np.int64


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.3, 0.5, 0.9])
def test_nms_equals_brute_force_greedy(threshold) -> None:
    rng = np.random.default_rng(int(threshold * 10))
    xy = rng.integers(0, 40, size=(80, 2))
    wh = rng.integers(0, 20, size=(80, 2))  # some empty boxes
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.integers(0, 10, size=80).astype(float)  # many ties
    assert nms(boxes, scores, threshold).tolist() == brute_nms(boxes, scores, threshold)


def test_nms_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="2 scores for 1 boxes"):
        nms([[0, 0, 1, 1]], [1.0, 2.0])
    with pytest.raises(ValueError, match="whole numbers"):
        nms([[0, 0, 1.5, 1]], [1.0])
    with pytest.raises(ValueError, match="x_max >= x_min"):
        nms([[3, 0, 1, 1]], [1.0])
    with pytest.raises(ValueError, match="finite"):
        nms([[0, 0, 1, 1]], [np.nan])
    with pytest.raises(ValueError, match="iou_threshold"):
        nms([[0, 0, 1, 1]], [1.0], 1.5)


# ------------------------------------------------------------------------ box voting


def test_vote_boxes_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10], [40, 0, 50, 10]])
    scores = np.array([3.0, 1.0, 2.0, 5.0])
    # Around box 0: IoU with 1 is 80/120, with 2 is 60/140 = 0.43, with 3 none. Weights are
    # the scores above the cluster's lowest: 2, 0, 1. x_min = (2*0 + 1*4) / 3 = 1.33 -> 1,
    # x_max = (2*10 + 1*14) / 3 = 11.33 -> 11. Box 3 is alone: unchanged.
    voted = vote_boxes(boxes, scores, [3, 0], 0.3)
    assert voted.tolist() == [[40, 0, 50, 10], [1, 0, 11, 10]]
    assert voted.dtype == np.int64
    # At 0.5 box 2 no longer votes (0.43): weights 2 (box 0) and 0 (box 1) leave box 0.
    assert vote_boxes(boxes, scores, [0], 0.5).tolist() == [[0, 0, 10, 10]]


def test_vote_boxes_ignore_the_scores_unit_and_offset() -> None:
    rng = np.random.default_rng(3)
    xy = rng.integers(0, 60, size=(50, 2))
    boxes = np.concatenate([xy, xy + rng.integers(8, 20, size=(50, 2))], axis=1)
    scores = rng.normal(size=50)
    keep = nms(boxes, scores, 0.3)
    voted = vote_boxes(boxes, scores, keep, 0.3)
    np.testing.assert_array_equal(vote_boxes(boxes, 7.5 * scores - 4.0, keep, 0.3), voted)
    # Every voted box lies inside the hull of the boxes that voted for it.
    for row, k in zip(voted, keep, strict=True):
        near = [b for b in boxes if iou(b, boxes[k]) > 0.3] + [boxes[k]]
        lo, hi = np.min(near, axis=0), np.max(near, axis=0)
        assert (lo <= row).all() and (row <= hi).all()


def test_vote_boxes_equal_scores_and_empty_input() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10]])
    assert vote_boxes(boxes, [1.0, 1.0], [0]).tolist() == [[0, 0, 10, 10]]  # no one above
    out = vote_boxes(np.zeros((0, 4)), np.zeros(0), [])
    assert out.shape == (0, 4) and out.dtype == np.int64
    with pytest.raises(ValueError, match="outside"):
        vote_boxes(boxes, [1.0, 2.0], [2])
    with pytest.raises(ValueError, match="scores must be finite"):
        vote_boxes(boxes, [1.0, np.inf], [0])


# ------------------------------------------------------------------- windows and detections


def test_parse_windows() -> None:
    assert parse_windows("8x4") == ((8, 4),)
    assert parse_windows(" 8x4, 10X5 ,8x4") == ((8, 4), (10, 5))
    assert parse_windows((8, 4)) == ((8, 4),)
    assert parse_windows([(8, 4), "10x5", np.array([2, 2])]) == ((8, 4), (10, 5), (2, 2))


@pytest.mark.parametrize("bad", ["", " , ", "8", "8x", "axb", "8x4x2", "8x-4", "2.5x4", 5,
                                 [(8, 4, 1)], [], "8x0"])
def test_parse_windows_refuses_text_outside_the_grammar(bad) -> None:
    with pytest.raises(ValueError) as info:
        parse_windows(bad)
    assert WINDOW_GRAMMAR in str(info.value)


def test_default_window() -> None:
    assert default_window((128, 64), 16) == (8, 4)
    assert default_window((130, 70), 16) == (8, 4)
    assert default_window((10, 40), 16) == (1, 2)
    with pytest.raises(ValueError, match="stride"):
        default_window((128, 64), 0)


def test_detections_from_arrays() -> None:
    dets = detections_from_arrays(np.array([[0, 0, 4, 4], [1, 2, 3, 4]]), [0.5, -1.0], "cat")
    assert dets == [Detection(Box(0, 0, 4, 4), 0.5, "cat"), Detection(Box(1, 2, 3, 4), -1.0,
                                                                      "cat")]
    assert all(type(d.box.x_min) is int and type(d.score) is float for d in dets)
    assert detections_from_arrays(np.zeros((0, 4)), []) == []
    assert Detection((0, 0, 2, 2), 1).box == Box(0, 0, 2, 2)
    with pytest.raises(ValueError, match="NaN"):
        Detection(Box(0, 0, 1, 1), float("nan"))

