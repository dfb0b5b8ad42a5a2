"""Tests for gapsvm.estimator.box_settings: a calibration recorded on a model survives
``.skops`` save and load (loading safely), and is the default of ``GapClassifier.boxes``."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import head_only_model

from gapsvm import load_model, save_model
from gapsvm.core.boxes import cam_to_boxes
from gapsvm.core.cam import upsample_cam
from gapsvm.estimator.box_settings import box_inputs, box_threshold, record_box_calibration
from gapsvm.estimator.explanation import Explanation


def _pyramid(n: int = 12) -> np.ndarray:
    """Concentric squares: higher thresholds keep smaller central squares."""
    y, x = np.mgrid[:n, :n]
    return (1.0 - np.maximum(abs(y - n / 2 + 0.5), abs(x - n / 2 + 0.5)) / n).astype(np.float32)


def _stand_in_explain(model, calls: list, targets: list | None = None):
    """``model.explain`` answering with a fixed map (no network); records the inputs asked
    (and the targets, in ``targets``). It predicts the first class at input 2.0, else the
    second, so a fused map that mixed predictions would mix classes."""
    def explain(X, target=None, *, input_size="fit", on_error="raise"):
        calls.append(input_size)
        if targets is not None:
            targets.append(target)
        n = len(X)
        cam = _pyramid() * (2.0 if input_size == 2.0 else 1.0)
        pred = 0 if input_size == 2.0 else 1
        tgt = pred if target is None else int(np.flatnonzero(model.classes_ == target[0])[0])
        return Explanation(
            cams=[cam] * n, classes=model.classes_, target=np.full(n, tgt),
            predicted=np.array([model.classes_[pred]] * n), scores=np.zeros((n, 2)),
            intercepts=np.zeros(2), image_hw=[(48, 48)] * n, input_hw=[(12, 12)] * n,
            errors=[],
        )
    return explain


def test_threshold_source_is_given_recorded_or_default() -> None:
    model = head_only_model()
    assert box_threshold(model) == (0.2, "default 0.2")
    assert box_threshold(model, 0.4) == (0.4, "given")
    record_box_calibration(model, 0.37, [(224, 224)], "calibrated on cal.csv (10 images)")
    assert box_threshold(model) == (0.37, "calibrated on cal.csv (10 images)")
    assert box_threshold(model, 0.4) == (0.4, "given")  # a given threshold still wins


def test_recorded_calibration_survives_a_safe_save_and_load(tmp_path) -> None:
    model = head_only_model()
    record_box_calibration(model, np.float64(0.45), [2.0, (224, 224)],
                           "calibrated on c.csv (3 images)")
    path = save_model(model, tmp_path / "m.skops", require_safe_load=True)
    back = load_model(path, check_weights=False)  # trusted=False: only trusted types
    assert back.box_threshold_ == 0.45 and type(back.box_threshold_) is float
    assert back.box_scales_ == (2.0, (224, 224))
    assert box_threshold(back) == (0.45, "calibrated on c.csv (3 images)")


def test_boxes_default_to_the_recorded_threshold_and_inputs(tmp_path) -> None:
    fresh = head_only_model()
    calls: list = []
    X = [np.zeros((48, 48, 3), np.uint8)]
    cam = upsample_cam(_pyramid(), (48, 48))
    record_box_calibration(fresh, 0.8, [2.0], "calibrated on c.csv (3 images)")
    model = load_model(save_model(fresh, tmp_path / "m.skops"), check_weights=False)
    # Before calibration: the CAM paper's 0.2 at the fitting size.
    fresh = head_only_model()
    fresh.explain = _stand_in_explain(fresh, calls)
    assert fresh.boxes(X) == [cam_to_boxes(cam, 0.2)]
    assert calls == ["fit"]
    model.explain = _stand_in_explain(model, calls)
    calls.clear()
    got = model.boxes(X)
    assert got == [cam_to_boxes(cam * 2.0, 0.8)] != [cam_to_boxes(cam, 0.2)]
    assert calls == [2.0]  # the recorded input, not the fitting size
    # A given threshold or input size still wins.
    calls.clear()
    assert model.boxes(X, threshold=0.2, input_size=None) == [cam_to_boxes(cam, 0.2)]
    assert calls == [None]
    with pytest.raises(ValueError, match="threshold"):
        model.boxes(X, threshold=1.5)


def test_boxes_over_several_inputs_explain_one_class_the_first_inputs_prediction(
        tmp_path) -> None:
    model = head_only_model()
    record_box_calibration(model, 0.5, [2.0, 1.0], "calibrated on c.csv (3 images)")
    calls: list = []
    targets: list = []
    model.explain = _stand_in_explain(model, calls, targets)
    X = [np.zeros((48, 48, 3), np.uint8)] * 2
    got = model.boxes(X)
    assert calls == [2.0, 1.0]
    # The second input explains the class predicted at the first, not its own prediction.
    assert targets == [None, [model.classes_[0]] * 2]
    fused = (upsample_cam(_pyramid() * 2.0, (48, 48)) + upsample_cam(_pyramid(), (48, 48))) / 2
    assert got == [cam_to_boxes(fused, 0.5)] * 2


def test_box_inputs_are_the_recorded_ones_only_for_fit() -> None:
    model = head_only_model()
    assert box_inputs(model) == ("fit",)
    record_box_calibration(model, 0.5, [2.0, (224, 224)], "calibrated on c.csv (3 images)")
    assert box_inputs(model) == (2.0, (224, 224))
    assert box_inputs(model, 1.5) == (1.5,)
