"""Tests for gapsvm.workflows.evaluate.table: every row's summary against an independent
computation on hand-made per-pair values, and the printed table read from the same rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.metrics import (
    BASELINES,
    best_iou,
    energy_in_box,
    match_boxes,
    method_maps,
    pointing_game,
)
from gapsvm.core.metrics.sweep import MAXBOXACC_THRESHOLDS, iou_curve
from gapsvm.workflows.evaluate import write_report
from gapsvm.workflows.evaluate.table import (
    METHODS,
    PAIR_VALUES,
    ROWS,
    format_table,
    localisation_values,
    summarise,
    summarise_per_class,
)

NAN = math.nan


def _pairs(values: dict[str, list], labels: list[str] | None = None) -> list[dict]:
    """Per-pair entries whose every method has ``values`` (one list entry per pair)."""
    n = len(next(iter(values.values())))
    labels = labels or ["a"] * n
    return [
        {"label": labels[i], "n_gt": 1,
         "methods": {m: {k: v[i] for k, v in values.items()} for m in METHODS}}
        for i in range(n)
    ]


def _step(low: float, high: float) -> np.ndarray:
    """An IoU curve over the 100 thresholds: ``low`` below threshold 0.5, ``high`` from it."""
    return np.where(MAXBOXACC_THRESHOLDS < 0.5, low, high)


CAM_VALUES = {
    "hit": [True, False, True],
    "hit_inside": [False, False, True],
    "energy": [0.5, NAN, 0.25],
    "iou": [0.6, 0.2, 0.5],
    "n_pred": [1, 2, 0],
    "n_matched": [1, 0, 0],
    "full_prob": [0.8, 0.5, 0.9],
    "masked_prob": [0.4, 0.6, 0.9],
    "deletion": [np.array([0.8, 0.2]), np.array([0.5, 0.5]), np.array([0.9, 0.1])],
    "insertion": [np.array([0.1, 0.8]), np.array([0.3, 0.5]), np.array([0.2, 0.9])],
    "correct": [True, True, False],
    "iou_curve": [_step(0.8, 0.1), _step(0.2, 0.4), _step(0.1, 0.75)],
}


def test_one_registry_of_rows() -> None:
    keys = [row.key for row in ROWS]
    assert len(keys) == len(set(keys))
    assert all(row.better in ("high", "low", "") for row in ROWS)
    assert METHODS == ("cam", *BASELINES)
    assert set(PAIR_VALUES) == {"hit", "hit_inside", "energy", "iou", "n_pred", "n_matched",
                                "iou_curve"}


def test_every_row_summarised_as_defined() -> None:
    s = summarise(_pairs(CAM_VALUES), n_gt=4, faithfulness=True)
    assert list(s) == list(METHODS)
    cam = s["cam"]
    assert list(cam) == [row.key for row in ROWS]  # the report keeps the registry's order
    assert cam["pointing_game"] == pytest.approx(2 / 3)
    assert cam["pointing_game_inside"] == pytest.approx(1 / 3)
    assert cam["energy_in_box"] == pytest.approx(0.375)  # the NaN pair has no positive mass
    assert cam["n_no_positive_evidence"] == 1
    assert cam["mean_iou"] == pytest.approx(1.3 / 3)
    assert cam["corloc"] == pytest.approx(2 / 3)  # 0.6 and 0.5 reach IoU 0.5
    assert cam["gt_known"] == cam["corloc"]  # the true class's box: CorLoc by another name
    assert cam["accuracy"] == pytest.approx(2 / 3)
    # Pair 3's box reaches 0.5 but its class is wrong: a top-1 miss.
    assert cam["top1_loc"] == pytest.approx(1 / 3)
    # Worked out from the step curves: IoU 0.3 is best from threshold 0.5 (pairs 2 and 3),
    # IoU 0.5 and 0.7 reach one pair of three on either side (the lowest threshold wins).
    assert cam["maxboxacc_iou30"] == pytest.approx(2 / 3)
    assert cam["maxboxacc_iou50"] == pytest.approx(1 / 3)
    assert cam["maxboxacc_iou70"] == pytest.approx(1 / 3)
    assert cam["maxboxacc_best_threshold"] == {"0.3": 0.5, "0.5": 0.0, "0.7": 0.0}
    assert cam["maxboxacc_v2"] == pytest.approx(4 / 9)
    assert cam["box_recall"] == pytest.approx(1 / 4)  # pooled: 1 matched of 4 boxes
    assert cam["box_precision"] == pytest.approx(1 / 3)  # 1 matched of 3 predictions
    assert cam["n_predicted_boxes"] == 3
    assert cam["average_drop"] == pytest.approx(100 * (0.4 / 0.8) / 3)
    assert cam["increase_in_confidence"] == pytest.approx(100 / 3)
    # Two-point curves: the trapezoid is the mean of the two ends.
    assert cam["deletion_auc"] == pytest.approx(np.mean([0.5, 0.5, 0.5]))
    assert cam["insertion_auc"] == pytest.approx(np.mean([0.45, 0.4, 0.55]))
    np.testing.assert_allclose(cam["mean_deletion_curve"], [2.2 / 3, 0.8 / 3])
    np.testing.assert_allclose(cam["mean_insertion_curve"], [0.6 / 3, 2.2 / 3])
    json.dumps(cam)  # plain Python values


def test_undefined_summaries_are_nan_and_faithfulness_rows_optional() -> None:
    values = {"hit": [False], "hit_inside": [False], "energy": [NAN], "iou": [0.0],
              "n_pred": [0], "n_matched": [0], "correct": [False],
              "iou_curve": [np.zeros(100)]}
    s = summarise(_pairs(values), n_gt=0, faithfulness=False)["cam"]
    assert math.isnan(s["energy_in_box"]) and s["n_no_positive_evidence"] == 1
    assert math.isnan(s["box_recall"]) and math.isnan(s["box_precision"])
    assert "average_drop" not in s and "mean_deletion_curve" not in s
    assert set(s) == {row.key for row in ROWS if not row.faithfulness}


def _legend_start(lines: list[str]) -> int:
    """Index of the first line of the legend under the table."""
    return next(i for i, line in enumerate(lines) if line.startswith("baselines (no model):"))


def _report(faithfulness: bool, labels: list[str] | None = None) -> dict:
    pairs = _pairs(CAM_VALUES, labels)
    summary = summarise(pairs, n_gt=4, faithfulness=faithfulness)
    summary["random"]["energy_in_box"] = NAN
    return {
        "settings": {"scales": [1.0, 2.0], "mode": "all", "threshold": 0.2,
                     "faithfulness": "features" if faithfulness else "none", "n_steps": 1,
                     "probabilities": "sigmoid(class score)"},
        "counts": {"images": 2, "pairs": 3, "gt_boxes": 4},
        "area_share": 0.125,
        "tolerance_px": {"96x64": 4.2857, "64x80": 4.2857},
        "summary": summary,
        "per_class": summarise_per_class(pairs),
    }


def test_table_prints_every_labelled_row_in_registry_order(tmp_path) -> None:
    rep = _report(faithfulness=True)
    lines = format_table(rep).splitlines()
    assert lines[0].startswith("2 images, 3 (image, label) pairs, 4 boxes; CAM at scale x1+x2")
    assert lines[1].split() == ["metric", "best", *METHODS]
    labelled = [row for row in ROWS if row.label is not None]
    legend = _legend_start(lines)
    assert legend == 2 + len(labelled)  # one class: no per-class block
    assert "uniform = whole-image box" in " ".join(lines[legend:])
    assert max(len(line) for line in lines[legend:]) <= max(len(line) for line in lines[:legend])
    for row, line in zip(labelled, lines[2:legend], strict=True):
        name = row.label.format(tol="4.3 px", share=0.125, mode="all")
        assert line.startswith(name)
        cells = line[41:].split()
        assert cells[0] == row.better
        assert cells[1] == row.fmt.format(rep["summary"]["cam"][row.key])
    energy = next(line for line in lines if line.startswith("energy in box"))
    assert energy[41:].split()[1 + METHODS.index("random")] == "-"  # NaN
    assert "n_predicted_boxes" not in format_table(rep)
    # Strict JSON (NaN -> null) reads back into the same table.
    write_report(rep, tmp_path / "r.json")
    assert format_table(json.loads((tmp_path / "r.json").read_text())) == format_table(rep)


def test_table_leaves_out_faithfulness_rows_not_computed() -> None:
    text = format_table(_report(faithfulness=False))
    assert "not computed" in text.splitlines()[0]
    assert "Average Drop" not in text and "deletion AUC" not in text
    assert "GT-known loc (CorLoc, IoU >= 0.5)" in text


def test_pair_values_are_the_metric_functions() -> None:
    cam = np.zeros((40, 60))
    cam[5:15, 5:20] = 1.0
    cam[25:35, 30:55] = 0.8
    mm = method_maps(cam, np.zeros((3, 4)), 0.5, "all")
    gt = [Box(30, 25, 55, 35), Box(0, 0, 4, 4)]
    got = localisation_values(mm, gt, 3.0)
    np.testing.assert_array_equal(got.pop("iou_curve"), iou_curve(cam, gt))
    assert got == {
        "hit": pointing_game(cam, gt, 3.0),
        "hit_inside": pointing_game(cam, gt, 0.0),
        "energy": energy_in_box(cam, gt),
        "iou": best_iou(cam_to_boxes(cam, 0.5, "largest")[0], gt),
        "n_pred": 2,
        "n_matched": len(match_boxes(cam_to_boxes(cam, 0.5, "all"), gt, 0.5)),
    }
    # The peak (5, 5) is sqrt(8) px from the small box: a hit within 3 px, not inside.
    assert got["n_matched"] == 1 and got["hit"] and not got["hit_inside"]


def test_per_class_rows_on_each_labels_pairs_and_printed_per_class(tmp_path) -> None:
    rep = _report(faithfulness=False, labels=["cat", "dog", "cat"])
    per_class = rep["per_class"]
    assert list(per_class) == ["cat", "dog"]
    assert list(per_class["cat"]) == list(METHODS)
    cat, dog = per_class["cat"]["cam"], per_class["dog"]["cam"]
    assert set(cat) == {row.key for row in ROWS if row.per_class}
    # cat: pairs 1 and 3 (right class IoU 0.6; wrong class IoU 0.5); dog: pair 2 (IoU 0.2).
    assert cat["accuracy"] == 0.5 and dog["accuracy"] == 1.0
    assert cat["gt_known"] == 1.0 and dog["gt_known"] == 0.0
    assert cat["top1_loc"] == 0.5 and dog["top1_loc"] == 0.0
    # One threshold for all the class's pairs: pair 1 is right only below 0.5, pair 3 only
    # from 0.5, so no threshold gets both (a per-image best would claim 1.0).
    assert cat["maxboxacc_iou30"] == 0.5 and cat["maxboxacc_iou70"] == 0.5
    assert dog["maxboxacc_iou30"] == 1.0 and dog["maxboxacc_best_threshold"]["0.3"] == 0.5
    text = format_table(rep)
    lines = text.splitlines()
    block = lines[lines.index("per class:") + 1 : _legend_start(lines)]
    printed = [row for row in ROWS if row.per_class == "print"]
    assert len(block) == 2 * (1 + len(printed))  # a line naming the class, then its rows
    assert block[0] == "cat" and block[1 + len(printed)] == "dog"
    assert block[1].startswith("  classification accuracy")
    assert block[1].split()[-len(METHODS):] == ["0.500"] * len(METHODS)
    assert block[2 + len(printed)].split()[-len(METHODS):] == ["1.000"] * len(METHODS)
    # Strict JSON (NaN -> null) reads back into the same table, per-class block included.
    write_report(rep, tmp_path / "r.json")
    assert format_table(json.loads((tmp_path / "r.json").read_text())) == text


def test_fixed_network_inputs_are_named_in_the_header() -> None:
    rep = _report(faithfulness=False)
    rep["settings"]["scales"] = [[224, 224], 2.0]
    assert "CAM at scale 224x224+x2," in format_table(rep).splitlines()[0]
