"""``gapsvm evaluate --detect`` (gapsvm/workflows/evaluate/detection.py): detections pooled
over images and chunks against a hand-computed case, one class at a time on its own images,
the ``boxes(mode="all")`` baseline scored by its mean CAM, and the printed table. The fast
tests use a stand-in model; one slow test checks the real model against its own API."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from _evaluate import tiny_eval_model

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.detection import Detection
from gapsvm.workflows.evaluate import detection as wd
from gapsvm.workflows.evaluate.detection import (
    evaluate_detection,
    format_detection_table,
    scored_boxes,
)


# -- the baseline's scores ------------------------------------------------------------------
def test_scored_boxes_are_the_all_mode_boxes_scored_by_their_mean_plus_intercept() -> None:
    cam = np.zeros((10, 12))
    cam[1, 1:3] = cam[2, 1] = 3.0  # an L: its box (1, 1, 3, 3) holds one zero cell
    cam[6:9, 5:7] = 1.0  # a block: its box is the block
    got = scored_boxes(cam, -0.5, 0.2, label="person")
    assert [d.box.as_tuple() for d in got] == [b.as_tuple() for b in cam_to_boxes(cam, 0.2,
                                                                                   "all")]
    assert [d.box.as_tuple() for d in got] == [(1, 1, 3, 3), (5, 6, 7, 9)]
    assert [d.score for d in got] == pytest.approx([9 / 4 - 0.5, 1.0 - 0.5])
    assert all(isinstance(d, Detection) and d.label == "person" for d in got)
    # No positive evidence, no box (as boxes() gives none).
    assert scored_boxes(-np.ones((4, 4)), 3.0, 0.2) == []


# -- pooling, with a stand-in model and detect ----------------------------------------------
A, B, C = "imgs/a.png", "imgs/b.png", "imgs/c.png"

#: Fake detections. At IoU 0.5, by score: TP, FP, TP (IoU 0.81), FP, FP ((20, 25, 30, 35)
#: has IoU 1/3 with (20, 20, 30, 30): a match at 0.3 only).
DETECTIONS = {
    A: [Detection((0, 0, 10, 10), 0.9), Detection((40, 40, 50, 50), 0.8),
        Detection((20, 25, 30, 35), 0.5)],
    B: [Detection((1, 1, 10, 10), 0.7), Detection((20, 20, 30, 30), 0.6)],
    C: [Detection((0, 0, 5, 5), 0.4)],
}


def _cam(blob: tuple[int, int, int, int], value: float) -> np.ndarray:
    cam = np.zeros((50, 50), dtype=np.float32)
    x0, y0, x1, y1 = blob
    cam[y0:y1, x0:x1] = value
    return cam


#: The baseline's maps (at image size already): a's region is a true box, b's a false one.
CAMS = {A: _cam((0, 0, 10, 10), 2.0), B: _cam((30, 30, 40, 40), 1.0), C: _cam((0, 0, 5, 5), 1.0)}


class _Model:
    """What evaluate_detection asks of a model: classes, and explain at image size."""

    classes_ = np.array(["cat", "person"])

    def __init__(self) -> None:
        self.explained: list[tuple[tuple[str, ...], object, object]] = []

    def explain(self, paths, target, input_size="fit"):
        self.explained.append((tuple(paths), target, input_size))
        return SimpleNamespace(cams=[CAMS[p] for p in paths], intercepts=np.array([0.0, -0.25]),
                               image_hw=[(50, 50)] * len(paths))


@pytest.fixture
def fake_detect(monkeypatch) -> list:
    calls: list = []

    def detect_of(model, paths, target, **options):
        calls.append((tuple(paths), target, options))
        return SimpleNamespace(detections=[DETECTIONS[p] for p in paths], errors=[])

    monkeypatch.setattr(wd, "detect_of", detect_of)
    return calls


ANNS = [
    Annotation("a.png", A, (50, 50), "person", [Box(0, 0, 10, 10), Box(20, 20, 30, 30)]),
    Annotation("b.png", B, (50, 50), "person", [Box(0, 0, 10, 10)]),
    Annotation("c.png", C, (50, 50), "cat", [Box(0, 0, 5, 5)]),
]


def test_detections_are_pooled_over_images_and_chunks(fake_detect) -> None:
    model = _Model()
    options = {"scales": (2.0,), "window": ((8, 4),), "stride": 1, "nms_iou": 0.3,
               "score_threshold": None, "max_detections": 100}
    done: list[int] = []
    rep = evaluate_detection(model, ANNS, detect_options=options, chunk_size=1,
                             progress=done.append)
    person = rep["per_class"]["person"]["detect"]
    # By hand, IoU 0.5: precision 1, 1/2, 2/3, 1/2, 2/5 at recall 1/3, 1/3, 2/3, 2/3, 2/3.
    assert person["ap@0.5"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    # IoU 0.3: the last one matches too: recall 1 at precision 3/5.
    assert person["ap@0.3"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5)
    # 1 FPPI over 2 images allows 2 false positives: the first four detections.
    assert person["recall@1fppi"] == pytest.approx(2 / 3)
    assert person["best_recall"] == pytest.approx(2 / 3)
    assert (person["n_images"], person["n_ground_truth"], person["n_detections"]) == (2, 3, 5)
    # Each class on the images with its boxes only, with the options as given.
    assert [c[:2] for c in fake_detect] == [((A,), "person"), ((B,), "person"), ((C,), "cat")]
    assert all(c[2] == options for c in fake_detect)
    assert rep["per_class"]["cat"]["detect"]["ap@0.5"] == 1.0
    # In the top 3 (as many as boxes), b's (40, 40, 50, 50) touches no box: background.
    # Below, b's (20, 20, 30, 30) is background too (b has no box there) and a's
    # (20, 25, 30, 35), IoU 1/3, a localisation error.
    kinds = rep["false_positives"]["person"]
    assert {k: kinds[k] for k in ("top", "true_positives", "background", "localisation",
                                  "duplicate")} == {"top": 3, "true_positives": 2,
                                                    "background": 1, "localisation": 0,
                                                    "duplicate": 0}
    assert kinds["ap"] == pytest.approx(person["ap@0.5"])
    # Without the two background ones: T, T, F at recall 1/3, 2/3.
    assert kinds["ap_without_background"] == pytest.approx(2 / 3)
    assert done == [1, 1, 1]
    assert rep["settings"]["scales"] == [2.0] and rep["settings"]["window"] == [[8, 4]]


def test_the_baseline_is_the_all_mode_boxes_scored_by_their_mean(fake_detect) -> None:
    model = _Model()
    rep = evaluate_detection(model, ANNS, chunk_size=8)
    base = rep["per_class"]["person"]["boxes_all"]
    # a's region is its first box (score 2 - 0.25), b's region matches nothing (1 - 0.25):
    # recall 1/3 at precision 1, then a false positive.
    assert base["ap@0.5"] == pytest.approx(1 / 3)
    assert base["best_recall"] == pytest.approx(1 / 3) and base["n_detections"] == 2
    # One explain per image and network input: the model's recorded inputs, else x1.
    assert model.explained == [((A, B), "person", 1.0), ((C,), "cat", 1.0)]
    settings = rep["settings"]["baseline"]
    assert settings["threshold"] == 0.2 and settings["scales"] == [1.0]
    assert "mean" in settings["score"]
    model.box_threshold_, model.box_scales_ = 0.6, (2.0,)
    model.explained.clear()
    rep = evaluate_detection(model, ANNS[:1])
    assert model.explained == [((A,), "person", 2.0)]
    assert rep["settings"]["baseline"]["threshold"] == 0.6


def test_bad_input_is_refused_before_any_work(fake_detect) -> None:
    with pytest.raises(ValueError, match="no annotations"):
        evaluate_detection(_Model(), [])
    dog = Annotation("d.png", "d.png", (50, 50), "dog", [Box(0, 0, 5, 5)])
    with pytest.raises(ValueError):
        evaluate_detection(_Model(), [*ANNS, dog])
    assert fake_detect == []


def test_the_table_has_a_row_per_method_and_says_n_a_for_undefined(fake_detect) -> None:
    rep = evaluate_detection(_Model(), ANNS[:2])
    text = format_detection_table(rep)
    lines = text.splitlines()
    assert lines[0] == "detection of 'person': 2 image(s), 3 box(es), pooled"
    assert lines[1].split() == ["AP@0.5", "AP@0.3", "recall@1FPPI", "best", "recall",
                                "detections"]
    assert lines[2].split() == ["detect", "0.556", "0.756", "0.667", "0.667", "5"]
    assert lines[3].split()[:2] == ['boxes(mode="all")', "0.333"]
    assert lines[4] == ("detect's 3 best-scored: 2 true positives; false: 1 background, "
                        "0 localisation, 0 duplicate")
    assert lines[5] == ("AP@0.5 0.556; without the false ones of a kind: background 0.667, "
                        "localisation 0.556, duplicate 0.556")
    rep["per_class"]["person"]["detect"]["ap@0.5"] = math.nan
    assert format_detection_table(rep).splitlines()[2].split()[1] == "n/a"


# -- the real model -------------------------------------------------------------------------
@pytest.mark.slow
def test_real_model_matches_its_own_detect_and_boxes(tmp_path) -> None:
    from gapsvm.core.metrics.detection import detection_summary

    model, anns, _ = tiny_eval_model(tmp_path)
    options = {"scales": (1.0, 1.5), "window": "2x2", "max_detections": 5}
    rep = evaluate_detection(model, anns, detect_options=options)
    for ann in anns:
        dets = model.detect([ann.path], ann.label, **options)
        got = rep["per_class"][ann.label]
        assert got["detect"] == pytest.approx(detection_summary(dets, [ann.boxes]), nan_ok=True)
        # The baseline: boxes(mode="all") of the API, scored on the API's raw CAM.
        [boxes] = model.boxes([ann.path], ann.label, mode="all")
        cam = model.cam([ann.path], ann.label, normalize=False)[0]
        b = model.explain([ann.path], ann.label).intercepts[list(model.classes_).index(
            ann.label)]
        base = [[(bx, float(cam[bx.y_min:bx.y_max, bx.x_min:bx.x_max].mean()) + b)
                 for bx in boxes]]
        assert got["boxes_all"] == pytest.approx(detection_summary(base, [ann.boxes]),
                                                 nan_ok=True)
