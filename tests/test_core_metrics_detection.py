"""Tests for gapsvm.core.metrics.detection on hand-computed cases: VOC matching, the
precision-recall curve, average precision, recall at FPPI, the summary and the kinds of
false positive."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gapsvm.core.boxes import Box, iou
from gapsvm.core.detection import Detection
from gapsvm.core.metrics.detection import (
    average_precision,
    best_recall,
    detection_summary,
    false_positive_kinds,
    match_detections,
    precision_recall_curve,
    recall_at_fppi,
)

G1, G2, G3 = (0, 0, 10, 10), (20, 0, 30, 10), (0, 0, 10, 10)
#: Two images: G1 and G2 in image 0, G3 in image 1.
GROUND_TRUTH = [[G1, G2], [G3]]
#: Five detections, listed per image; by decreasing score:
#:
#:   rank  score  image  box        verdict           TP  FP  recall  precision
#:   1     0.9    0      on G1      TP (G1)           1   0   1/3     1
#:   2     0.8    0      on G1      FP (duplicate)    1   1   1/3     1/2
#:   3     0.7    1      on G3      TP (G3)           2   1   2/3     2/3
#:   4     0.6    1      far away   FP                2   2   2/3     1/2
#:   5     0.5    0      on G2      TP (G2)           3   2   1       3/5
#:
#: Precision made non-increasing from the right: 1 up to recall 1/3, max(2/3, 1/2, 3/5) = 2/3
#: up to 2/3, 3/5 up to 1. AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 15/45 + 10/45 + 9/45 = 34/45.
DETECTIONS = [
    [Detection(Box(*G1), 0.9), Detection(Box(*G1), 0.8), Detection(Box(*G2), 0.5)],
    [Detection(Box(*G3), 0.7), Detection(Box(50, 50, 60, 60), 0.6)],
]


def test_matching_and_curve_by_hand() -> None:
    scores, is_tp, n_gt = match_detections(DETECTIONS, GROUND_TRUTH)
    np.testing.assert_array_equal(scores, [0.9, 0.8, 0.7, 0.6, 0.5])
    assert is_tp.tolist() == [True, False, True, False, True]
    assert n_gt == 3
    recall, precision = precision_recall_curve(DETECTIONS, GROUND_TRUTH)
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2, 3 / 5])


def test_average_precision_by_hand() -> None:
    assert average_precision(DETECTIONS, GROUND_TRUTH) == pytest.approx(34 / 45)
    # (box, score) pairs are read as detections.
    pairs = [[(d.box.as_tuple(), d.score) for d in per_image] for per_image in DETECTIONS]
    assert average_precision(pairs, GROUND_TRUTH) == pytest.approx(34 / 45)


def test_average_precision_of_perfect_and_empty_detections() -> None:
    perfect = [[(G1, 2.0), (G2, 1.0)], [(G3, 1.5)]]
    assert average_precision(perfect, GROUND_TRUTH) == 1.0
    assert average_precision([[], []], GROUND_TRUTH) == 0.0
    assert math.isnan(average_precision([[(G1, 1.0)], []], [[], []]))
    # Half the objects found, nothing wrong: precision 1 up to recall 1/2, then 0.
    assert average_precision([[(G1, 1.0)]], [[G1, G2]]) == pytest.approx(0.5)


def test_a_duplicate_is_a_false_positive_even_when_another_box_would_match() -> None:
    # VOC: the second detection's best box (A, IoU 1) is taken, so it is a false positive
    # although B (IoU 80/120 = 0.67) is free.
    a, b = (0, 0, 10, 10), (2, 0, 12, 10)
    _, is_tp, _ = match_detections([[(a, 0.9), (a, 0.8)]], [[a, b]])
    assert is_tp.tolist() == [True, False]


def test_a_detection_in_the_wrong_image_does_not_match() -> None:
    # The detection sits on G2's place, but in image 1, where only G3 is.
    _, is_tp, _ = match_detections([[], [(G2, 1.0)]], GROUND_TRUTH)
    assert is_tp.tolist() == [False]
    assert best_recall([[], [(G2, 1.0)]], GROUND_TRUTH) == 0.0


def test_iou_threshold_is_inclusive() -> None:
    # IoU((0, 0, 10, 10), (0, 0, 10, 5)) = 50 / 100 = 0.5 exactly.
    _, is_tp, _ = match_detections([[((0, 0, 10, 5), 1.0)]], [[(0, 0, 10, 10)]], 0.5)
    assert is_tp.tolist() == [True]
    _, is_tp, _ = match_detections([[((0, 0, 10, 5), 1.0)]], [[(0, 0, 10, 10)]], 0.51)
    assert is_tp.tolist() == [False]


def test_recall_at_fppi_by_hand() -> None:
    # Two images; false positives after each detection: 0, 1, 1, 2, 2.
    assert recall_at_fppi(DETECTIONS, GROUND_TRUTH, fppi=0.0) == pytest.approx(1 / 3)
    assert recall_at_fppi(DETECTIONS, GROUND_TRUTH, fppi=0.5) == pytest.approx(2 / 3)  # <= 1 FP
    assert recall_at_fppi(DETECTIONS, GROUND_TRUTH, fppi=1.0) == 1.0  # <= 2 FP: all kept
    assert best_recall(DETECTIONS, GROUND_TRUTH) == 1.0
    assert recall_at_fppi([[], []], GROUND_TRUTH) == 0.0
    assert math.isnan(recall_at_fppi([[]], [[]]))


def test_recall_at_fppi_keeps_tied_scores_together() -> None:
    # A TP and an FP tie at 0.5: no score cut keeps one without the other, so at 0 FPPI only
    # the 0.9 detection is kept (recall 1/2), although the TP comes first in the list.
    dets = [[((0, 0, 10, 10), 0.9), ((20, 0, 30, 10), 0.5), ((50, 50, 60, 60), 0.5)]]
    gt = [[(0, 0, 10, 10), (20, 0, 30, 10)]]
    assert recall_at_fppi(dets, gt, fppi=0.0) == 0.5
    assert recall_at_fppi(dets, gt, fppi=1.0) == 1.0


def test_detection_summary() -> None:
    assert detection_summary(DETECTIONS, GROUND_TRUTH) == {
        "ap@0.5": pytest.approx(34 / 45),
        "ap@0.3": pytest.approx(34 / 45),
        "recall@1fppi": 1.0,
        "best_recall": 1.0,
        "n_images": 2,
        "n_ground_truth": 3,
        "n_detections": 5,
    }
    # A loose box on G1, IoU 40 / 100 = 0.4: a hit at 0.3 only (recall 1/3 at precision 1).
    loose = [[(Box(0, 0, 10, 4), 1.0)], []]
    s = detection_summary(loose, GROUND_TRUTH, iou_thresholds=(0.5, 0.3))
    assert s["ap@0.5"] == 0.0 and s["ap@0.3"] == pytest.approx(1 / 3)
    assert s["best_recall"] == 0.0 and s["recall@1fppi"] == 0.0 and s["n_detections"] == 1


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="detections for 1 images and ground truth for 2"):
        average_precision([[]], GROUND_TRUTH)
    with pytest.raises(TypeError, match="one list per image"):
        average_precision(DETECTIONS[0][0], GROUND_TRUTH)
    with pytest.raises(TypeError, match="single Detection"):
        average_precision([DETECTIONS[0][0], []], GROUND_TRUTH)
    with pytest.raises(TypeError, match="detection 0 of image 0"):
        average_precision([[3.0], []], GROUND_TRUTH)
    with pytest.raises(ValueError, match="NaN"):
        average_precision([[(G1, float("nan"))], []], GROUND_TRUTH)
    with pytest.raises(ValueError, match="threshold"):
        match_detections(DETECTIONS, GROUND_TRUTH, iou_threshold=0.0)
    with pytest.raises(ValueError, match="fppi"):
        recall_at_fppi(DETECTIONS, GROUND_TRUTH, fppi=-1.0)


#: DETECTIONS with a box on the right half of G2 scored first: IoU 50 / 150 = 1/3, a
#: localisation error. By decreasing score: localisation, TP, duplicate, TP, background, TP.
HALF_ON_G2 = Detection(Box(25, 0, 35, 10), 0.95)
WITH_LOCALISATION = [[HALF_ON_G2, *DETECTIONS[0]], DETECTIONS[1]]


def test_false_positive_kinds_by_hand() -> None:
    kinds = false_positive_kinds(WITH_LOCALISATION, GROUND_TRUTH)
    # Ranks 1-3 (as many as the boxes): localisation, TP, duplicate.
    assert {k: kinds[k] for k in ("top", "true_positives", "background", "localisation",
                                  "duplicate")} == {"top": 3, "true_positives": 1,
                                                    "background": 0, "localisation": 1,
                                                    "duplicate": 1}
    # Flags F T F T F T: precision 1/2 reachable up to recall 1.
    assert kinds["ap"] == pytest.approx(1 / 2)
    assert kinds["ap"] == pytest.approx(average_precision(WITH_LOCALISATION, GROUND_TRUTH))
    # Without the localisation error the flags are DETECTIONS's again.
    assert kinds["ap_without_localisation"] == pytest.approx(34 / 45)
    # F T T F T: 2/3 up to recall 2/3, then 3/5.
    assert kinds["ap_without_duplicate"] == pytest.approx(29 / 45)
    # F T F T T: 3/5 everywhere.
    assert kinds["ap_without_background"] == pytest.approx(3 / 5)
    every = false_positive_kinds(WITH_LOCALISATION, GROUND_TRUTH, top=10)
    assert (every["top"], every["true_positives"], every["background"],
            every["localisation"], every["duplicate"]) == (6, 3, 1, 1, 1)


def test_background_iou_moves_the_line_between_localisation_and_background() -> None:
    # HALF_ON_G2 overlaps G2 by 1/3: background once the line is above that.
    kinds = false_positive_kinds(WITH_LOCALISATION, GROUND_TRUTH, background_iou=0.4, top=6)
    assert (kinds["background"], kinds["localisation"]) == (2, 0)
    # A detection in an image without boxes is background whatever it covers.
    alone = false_positive_kinds([[(G1, 1.0)], [(G1, 2.0)]], [[G1], []])
    assert (alone["true_positives"], alone["background"]) == (0, 1)
    assert alone["ap"] == pytest.approx(1 / 2) and alone["ap_without_background"] == 1.0


def test_removing_a_kind_equals_average_precision_of_the_rest() -> None:
    # Independent check on random boxes: classify each false positive by brute force, drop
    # that kind from the lists and match again.
    rng = np.random.default_rng(0)
    truth = [[(x, y, x + 20, y + 40) for x, y in rng.integers(0, 200, (4, 2))]
             for _ in range(5)]
    # Three jittered copies of each box (hits, duplicates, misplaced ones) and random boxes.
    found = [[((int(x), int(y), int(x) + 20, int(y) + 40), float(rng.normal()))
              for g in per for x, y in g[:2] + rng.normal(0, 7, (3, 2))]
             + [((int(x), int(y), int(x) + 30, int(y) + 30), float(rng.normal()))
                for x, y in rng.integers(0, 200, (6, 2))] for per in truth]
    scores, is_tp, _ = match_detections(found, truth)
    kinds = false_positive_kinds(found, truth, top=len(scores))
    assert kinds["true_positives"] == is_tp.sum() > 0
    assert kinds["background"] + kinds["localisation"] + kinds["duplicate"] == (~is_tp).sum()
    assert min(kinds["background"], kinds["localisation"], kinds["duplicate"]) > 0
    flat = [(i, d) for i, per in enumerate(found) for d in per]
    order = np.argsort([-d[1] for _, d in flat], kind="stable")
    verdict = dict(zip((flat[k][1] for k in order), is_tp, strict=True))
    for kind, test in (("background", lambda o: o < 0.1),
                       ("localisation", lambda o: 0.1 <= o < 0.5),
                       ("duplicate", lambda o: o >= 0.5)):
        def drop(i: int, d: tuple, test: object = test) -> bool:
            overlap = max(iou(d[0], g) for g in truth[i])
            return not verdict[d] and test(overlap)

        rest = [[d for d in per if not drop(i, d)] for i, per in enumerate(found)]
        assert kinds[f"ap_without_{kind}"] == pytest.approx(average_precision(rest, truth))


def test_false_positive_kinds_refuses_bad_levels() -> None:
    for low in (0.6, 0.0):
        with pytest.raises(ValueError, match=r"background_iou must be in \(0, iou_threshold\] "
                                             rf"= \(0, 0.5\], got {low:g}"):
            false_positive_kinds(DETECTIONS, GROUND_TRUTH, background_iou=low)
    with pytest.raises(ValueError, match="top"):
        false_positive_kinds(DETECTIONS, GROUND_TRUTH, top=-1)
