"""Tests for gapsvm.workflows.evaluate.calibrate: the threshold (and input) chosen on one
half of a set, checked against an independent count with ``cam_to_boxes``, is the other
half's threshold when it is scored; sets sharing an image are refused.

A stand-in model serves synthetic maps (no network): each image's map is a pyramid of
concentric squares on a positive floor, so each threshold keeps one square, and the halves'
boxes favour different thresholds.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from _helpers import write_rgb

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.metrics import MAXBOXACC_THRESHOLDS, best_iou, iou_curve
from gapsvm.workflows.evaluate import evaluate
from gapsvm.workflows.evaluate.calibrate import calibrate, check_disjoint

N = 20  # image side: maps are at image resolution, so upsampling changes nothing


def _pyramid(floor: float = 0.5) -> np.ndarray:
    c = (N - 1) / 2
    y, x = np.mgrid[:N, :N]
    return floor + 1.0 - np.maximum(abs(y - c), abs(x - c)) / N


def _square(side: int, dx: int = 0) -> Box:
    lo = (N - side) // 2
    return Box(lo + dx, lo, lo + side + dx, lo + side)


class StandIn:
    """What calibrate() and evaluate() use of a GapClassifier, on fixed maps."""

    backbone = "vgg16"
    classes_ = np.array(["a", "b"])

    def __init__(self, maps_by_size):
        self.maps_by_size = maps_by_size  # input size -> the (N, N) map of every image
        self.asked: list = []
        self.head_ = SimpleNamespace(
            cam_weights=lambda: (np.ones((2, 1)), np.zeros(2)),
            predict=lambda gap: np.array(["a"] * len(gap)),
        )

    def extract(self, paths, *, maps, input_size):
        self.asked.append(input_size)
        m = self.maps_by_size[input_size][:, :, None]
        return SimpleNamespace(maps=[m] * len(paths), image_hw=[(N, N)] * len(paths),
                               gap=np.zeros((len(paths), 1), np.float32))


def _halves(tmp_path):
    """Two halves of one set: small central objects to calibrate on, large ones to score."""
    def ann(k: int, box: Box) -> Annotation:
        path = write_rgb(tmp_path / f"i{k}.png", np.full((N, N, 3), k, np.uint8))
        return Annotation(path.name, str(path), (N, N), "a", [box])

    cal = [ann(k, _square(8, dx=k % 2)) for k in range(6)]
    scored = [ann(k, _square(18)) for k in range(6, 12)]
    return cal, scored


def _gt_known(cam: np.ndarray, anns, t: float) -> float:
    """GT-known at threshold ``t``, counted the way boxes() draws them (not by the sweep)."""
    return float(np.mean([best_iou(cam_to_boxes(cam, t)[0], a.boxes) >= 0.5 for a in anns]))


def test_scoring_uses_the_calibration_halfs_threshold_not_its_own(tmp_path) -> None:
    cal, scored = _halves(tmp_path)
    cam = _pyramid()
    model = StandIn({1.0: cam})
    got = calibrate(model, cal, name="cal.csv")
    grid = [float(t) for t in MAXBOXACC_THRESHOLDS]
    on_cal = [_gt_known(cam, cal, t) for t in grid]
    on_scored = [_gt_known(cam, scored, t) for t in grid]
    assert got.threshold == grid[int(np.argmax(on_cal))]
    assert got.gt_known == max(on_cal) == 1.0
    assert got.candidates["x1"] == on_cal
    # The scored half would pick another threshold, and does worse at the calibrated one.
    own = grid[int(np.argmax(on_scored))]
    assert own != got.threshold and on_scored[grid.index(got.threshold)] < max(on_scored)
    # The sweep on the min-max map would have chosen differently on this positive floor:
    # calibration chooses in the units boxes() uses (a fraction of the maximum).
    minmax = np.mean([iou_curve(cam, a.boxes) >= 0.5 for a in cal], axis=0)
    assert grid[int(np.argmax(minmax))] != got.threshold
    assert got.source == "calibrated on cal.csv (6 images)"

    report = evaluate(model, scored, threshold=got.threshold, threshold_source=got.source,
                      faithfulness="none")
    assert report["settings"]["threshold"] == got.threshold
    assert report["settings"]["threshold_source"] == "calibrated on cal.csv (6 images)"
    assert report["summary"]["cam"]["gt_known"] == on_scored[grid.index(got.threshold)]
    default = evaluate(model, scored, faithfulness="none")
    assert default["settings"]["threshold_source"] == "default 0.2"


def test_the_input_size_is_chosen_among_candidates(tmp_path) -> None:
    cal, _ = _halves(tmp_path)
    flat = np.ones((N, N))  # at x2 the map says nothing: its box is the whole image
    model = StandIn({1.0: _pyramid(), 2.0: flat})
    got = calibrate(model, cal, candidates=[(2.0,), (1.0,), (1.0, 2.0)])
    assert got.scales == (1.0,) and got.gt_known == 1.0
    assert got.candidates["x2"] == [0.0] * len(MAXBOXACC_THRESHOLDS)
    assert sorted(set(model.asked)) == [1.0, 2.0]  # each input extracted once per chunk
    assert len(model.asked) == 2


def test_sets_sharing_an_image_are_refused(tmp_path) -> None:
    cal, scored = _halves(tmp_path)
    check_disjoint(cal, scored)  # disjoint: fine
    with pytest.raises(ValueError, match=r"share 1 image\(s\) \(e.g. 'i0.png'\)"):
        check_disjoint(cal, [*scored, cal[0]])
    # The same content under another name is the same image.
    copy = tmp_path / "sub" / "copy.png"
    copy.parent.mkdir()
    shutil.copy(cal[2].path, copy)
    renamed = Annotation("sub/copy.png", str(copy), (N, N), "a", [_square(18)])
    with pytest.raises(ValueError, match=r"sub/copy\.png.*calibrate on other images"):
        check_disjoint(cal, [*scored, renamed])
