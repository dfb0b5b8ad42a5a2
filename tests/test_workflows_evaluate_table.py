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
from gapsvm.workflows.evaluate import write_report
from gapsvm.workflows.evaluate.table import (
    METHODS,
    PAIR_VALUES,
    ROWS,
    format_table,
    localisation_values,
    summarise,
)

NAN = math.nan


def _pairs(values: dict[str, list]) -> list[dict]:
    """Per-pair entries whose every method has ``values`` (one list entry per pair)."""
    n = len(next(iter(values.values())))
    return [
        {"methods": {m: {k: v[i] for k, v in values.items()} for m in METHODS}}
        for i in range(n)
    ]


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
}


def test_one_registry_of_rows() -> None:
    keys = [row.key for row in ROWS]
    assert len(keys) == len(set(keys))
    assert all(row.better in ("high", "low", "") for row in ROWS)
    assert METHODS == ("cam", *BASELINES)
    assert set(PAIR_VALUES) == {"hit", "hit_inside", "energy", "iou", "n_pred", "n_matched"}


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
              "n_pred": [0], "n_matched": [0]}
    s = summarise(_pairs(values), n_gt=0, faithfulness=False)["cam"]
    assert math.isnan(s["energy_in_box"]) and s["n_no_positive_evidence"] == 1
    assert math.isnan(s["box_recall"]) and math.isnan(s["box_precision"])
    assert "average_drop" not in s and "mean_deletion_curve" not in s
    assert set(s) == {row.key for row in ROWS if not row.faithfulness}


def _report(faithfulness: bool) -> dict:
    summary = summarise(_pairs(CAM_VALUES), n_gt=4, faithfulness=faithfulness)
    summary["random"]["energy_in_box"] = NAN
    return {
        "settings": {"scales": [1.0, 2.0], "mode": "all", "threshold": 0.2,
                     "faithfulness": "features" if faithfulness else "none", "n_steps": 1,
                     "probabilities": "sigmoid(class score)"},
        "counts": {"images": 2, "pairs": 3, "gt_boxes": 4},
        "area_share": 0.125,
        "tolerance_px": {"96x64": 4.2857, "64x80": 4.2857},
        "summary": summary,
    }


def test_table_prints_every_labelled_row_in_registry_order(tmp_path) -> None:
    rep = _report(faithfulness=True)
    lines = format_table(rep).splitlines()
    assert lines[0].startswith("2 images, 3 (image, label) pairs, 4 boxes; CAM at scale x1+x2")
    assert lines[1].split() == ["metric", "best", *METHODS]
    labelled = [row for row in ROWS if row.label is not None]
    assert len(lines) == 2 + len(labelled)
    for row, line in zip(labelled, lines[2:], strict=True):
        name = row.label.format(tol="4.3 px", share=0.125, mode="all")
        assert line.startswith(name)
        cells = line[41:].split()
        assert cells[0] == row.better
        assert cells[1] == row.fmt.format(rep["summary"]["cam"][row.key])
    energy = next(line for line in lines if line.startswith("energy in box"))
    assert energy.split()[-1] == "-"  # NaN
    assert "n_predicted_boxes" not in format_table(rep)
    # Strict JSON (NaN -> null) reads back into the same table.
    write_report(rep, tmp_path / "r.json")
    assert format_table(json.loads((tmp_path / "r.json").read_text())) == format_table(rep)


def test_table_leaves_out_faithfulness_rows_not_computed() -> None:
    text = format_table(_report(faithfulness=False))
    assert "not computed" in text.splitlines()[0]
    assert "Average Drop" not in text and "deletion AUC" not in text
    assert "CorLoc (IoU >= 0.5)" in text


def test_pair_values_are_the_metric_functions() -> None:
    cam = np.zeros((40, 60))
    cam[5:15, 5:20] = 1.0
    cam[25:35, 30:55] = 0.8
    mm = method_maps(cam, np.zeros((3, 4)), 0.5, "all")
    gt = [Box(30, 25, 55, 35), Box(0, 0, 4, 4)]
    got = localisation_values(mm, gt, 3.0)
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
