"""Tests for gapsvm.workflows.evaluate.run (``gapsvm evaluate``): the localisation numbers
against the public metric functions on tiny photos (random VGG16 weights), the command's
handling of boxes CSVs (errors with their line, a byte-order mark), and the command end to
end on three real meeting-room photos with a model trained in the test on INRIA crops.

The metric math is tested on hand-made cases in test_core_metrics_*.py and test_core_boxes.py,
the table in test_workflows_evaluate_table.py, the CSV reader alone in test_core_boxes_csv.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _evaluate import HEADER, tiny_eval_model
from _helpers import run_cli

from gapsvm import GapClassifier
from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.metrics import box_area_share, energy_in_box, pointing_game
from gapsvm.core.overlay import GT_COLOR, PRED_COLOR, evaluation_overlay
from gapsvm.network.backbone.build import get_backbone
from gapsvm.workflows.evaluate import METHODS, evaluate, format_table, write_report

# Only the tests that run the network are slow: the overlay test is not.
slow = pytest.mark.slow


# ------------------------------------------------------------------ overlays


def test_evaluation_overlay_draws_gt_and_predictions_in_their_colours() -> None:
    img = np.full((40, 60, 3), 90, np.uint8)
    cam = np.zeros((40, 60))
    out = evaluation_overlay(img, cam, [Box(30, 5, 50, 35)], [Box(2, 3, 20, 30)])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[3, 2:20] == GT_COLOR).all()  # top edge of the gt box
    assert (out[5, 30:50] == PRED_COLOR).all()  # top edge of the prediction
    assert not (out[20, 40] == PRED_COLOR).all()  # outlines only
    assert (img == 90).all()  # input untouched


# ------------------------------------------------------------------ random weights, tiny images


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_eval_model(tmp_path_factory.mktemp("tiny-eval"))


@slow
def test_boxes_method_matches_the_cam_and_checks_arguments_first(tiny_model) -> None:
    model, anns, _ = tiny_model
    paths = [a.path for a in anns]
    cams = model.cam(paths, "b", normalize=False, input_size=None)
    for mode in ("largest", "all"):
        got = model.boxes(paths, "b", threshold=0.3, mode=mode, input_size=None)
        assert got == [cam_to_boxes(c, 0.3, mode) for c in cams]
    # Bad arguments fail before any image goes through the network.
    bb = get_backbone("vgg16", None, "float32")
    before = bb.images_run
    fresh = [np.full((48, 48, 3), 7, np.uint8)]
    with pytest.raises(ValueError, match="threshold"):
        model.boxes(fresh, threshold=1.5)
    with pytest.raises(ValueError, match="mode"):
        model.boxes(fresh, mode="biggest")
    assert bb.images_run == before


@slow
def test_localisation_numbers_and_baselines_on_tiny_photos(tiny_model, tmp_path) -> None:
    model, anns, _ = tiny_model
    # Fill the cache first, so evaluate() and cam() below both read its float16 maps.
    model.featurizer().extract([a.path for a in anns], input_size=1.0)
    rep = evaluate(model, anns, mode="all", threshold=0.3, faithfulness="none",
                   out_dir=tmp_path, seed=3)
    assert rep["counts"] == {"images": 2, "pairs": 2, "gt_boxes": 3}
    assert "average_drop" not in rep["summary"]["cam"]
    cams = [
        model.cam([a.path], a.label, normalize=False, input_size=1.0)[0] for a in anns
    ]
    for a, cam, row in zip(anns, cams, rep["per_image"], strict=True):
        r = row["methods"]["cam"]
        assert r["energy"] == pytest.approx(energy_in_box(cam, a.boxes), rel=1e-5)
        assert r["hit_inside"] == pointing_game(cam, a.boxes, 0)
        assert row["boxes"] == [list(b.as_tuple()) for b in cam_to_boxes(cam, 0.3, "all")]
        assert row["area_share"] == box_area_share(a.image_hw, a.boxes)
        # The uniform map spreads its energy evenly: exactly the boxes' area share.
        assert row["methods"]["uniform"]["energy"] == pytest.approx(row["area_share"])
        # The centre baseline's box is the centred half-size box.
        assert row["methods"]["centre"]["n_pred"] == 1
    assert rep["area_share"] == pytest.approx(np.mean([r["area_share"] for r in rep["per_image"]]))
    pngs = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert pngs == ["p0.b.png", "p1.a.png"]
    assert cv2.imread(str(tmp_path / "overlays" / "p1.a.png")).shape == (80, 64, 3)
    # Reproducible: the same seed gives the same random baseline.
    again = evaluate(model, anns, mode="all", threshold=0.3, faithfulness="none", seed=3)
    assert again["summary"]["random"] == rep["summary"]["random"]
    # Strict JSON (NaN -> null) that reads back into the same table.
    write_report(rep, tmp_path / "r.json")
    back = json.loads((tmp_path / "r.json").read_text())
    assert format_table(back) == format_table(rep)
    with pytest.raises(ValueError, match="not a class"):
        evaluate(model, [Annotation("p0.png", anns[0].path, (64, 96), "zebra", [Box(0, 0, 1, 1)])])
    with pytest.raises(ValueError, match="threshold"):
        evaluate(model, anns, threshold=2.0)


@slow
def test_cli_reports_csv_errors_with_line(tiny_model, tmp_path, capsys) -> None:
    model, _, d = tiny_model
    model.save(tmp_path / "m.skops")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "p0.png,b,0,0,97,10\n")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", bad, "--images",
                           d / "imgs", "--out", tmp_path / "out", "-q")
    assert code == 1
    assert f"{bad}:2: " in err and "outside the 96x64 image" in err
    assert not (tmp_path / "out").exists()  # nothing run, nothing written


@slow
def test_cli_reads_a_boxes_csv_saved_with_a_byte_order_mark(tiny_model, tmp_path,
                                                             capsys) -> None:
    """Spreadsheets save "CSV UTF-8" with a BOM before the header: same result as without."""
    model, anns, d = tiny_model
    model.save(tmp_path / "m.skops")
    rows = HEADER + "p0.png,b,48,16,80,48\np1.png,a,0,0,32,40\np1.png,a,32,40,64,80\n"
    reports = []
    for name, encoding in (("bom.csv", "utf-8-sig"), ("plain.csv", "utf-8")):
        f = tmp_path / name
        f.write_text(rows, encoding=encoding)
        out = tmp_path / name.replace(".csv", "")
        code, printed, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", f, "--images",
                                     d / "imgs", "--out", out, "--faithfulness", "none", "-q")
        assert code == 0, err
        assert "pointing game" in printed
        reports.append(json.loads((out / "evaluation.json").read_text()))
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    bom, plain = reports
    assert bom["counts"] == {"images": 2, "pairs": 2, "gt_boxes": 3}
    assert [(p["filename"], p["label"], p["n_gt"]) for p in bom["per_image"]] == [
        (a.filename, a.label, len(a.boxes)) for a in anns
    ]
    assert bom["summary"] == plain["summary"]


# ------------------------------------------------------------------ real photos, end to end


@pytest.fixture(scope="module")
def person_model_file(tmp_path_factory, persons_slice, imagenet_ready) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("eval-real")
    paths, labels = persons_slice
    model = GapClassifier(input_size=(128, 64), cache_dir=d / "cache").fit(paths, labels)
    model.save(d / "m.skops")
    return d / "m.skops", d / "cache"


def test_evaluate_command_on_real_boxed_photos(
    shared_data, person_model_file, tmp_path, capsys
) -> None:
    boxes_dir = shared_data / "boxes"
    if not (boxes_dir / "boxes.csv").is_file():
        pytest.fail(f"the boxed photos are missing: {boxes_dir}")
    model_path, cache = person_model_file
    with open(boxes_dir / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["filename"] for r in rows})[:3]
    subset = tmp_path / "three.csv"
    with open(subset, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["filename"] in names)
    out = tmp_path / "out"
    from gapsvm.estimator.persist import load_model

    model = load_model(model_path)
    model.set_params(cache_dir=cache)
    paths = [str(boxes_dir / "images" / n) for n in names]
    # The network runs here, once; the command and the checks below read the same cached maps.
    model.featurizer().extract(paths, input_size=1.0)
    code, printed, _ = run_cli(capsys, "evaluate", model_path, subset, "--images",
                               boxes_dir / "images", "--out", out, "--cache-dir", cache, "-q")
    assert code == 0, printed
    header = next(line for line in printed.splitlines() if line.startswith("metric"))
    assert header.split()[-4:] == list(METHODS)
    for row in ("pointing game", "energy in box", "CorLoc", "deletion AUC", "Average Drop"):
        assert row in printed

    rep = json.loads((out / "evaluation.json").read_text())
    n_boxes = sum(r["filename"] in names for r in rows)
    assert rep["counts"] == {"images": 3, "pairs": 3, "gt_boxes": n_boxes}
    s = rep["summary"]
    # Real behaviour, with a big margin: the person CAM puts far more of its mass on the
    # people than their area share (about 0.1 here) and than the model-free baselines.
    assert s["cam"]["energy_in_box"] > 2.5 * rep["area_share"]
    assert s["cam"]["energy_in_box"] > s["centre"]["energy_in_box"] + 0.15
    assert s["uniform"]["energy_in_box"] == pytest.approx(rep["area_share"])
    # Insertion by CAM order beats every baseline order (optimal for the linear head).
    assert s["cam"]["insertion_auc"] > max(s[m]["insertion_auc"] for m in METHODS[1:])

    # Independent recomputation of the CAM rows from the public API.
    cams = model.cam(paths, "person", normalize=False, input_size=1.0)
    hits, energies = [], []
    for name, cam in zip(names, cams, strict=True):
        gt = [Box(int(r["x_min"]), int(r["y_min"]), int(r["x_max"]), int(r["y_max"]))
              for r in rows if r["filename"] == name]
        hits.append(pointing_game(cam, gt, 15.0 * 320 / 224))
        energies.append(energy_in_box(cam, gt))
    assert s["cam"]["pointing_game"] == pytest.approx(np.mean(hits))
    assert s["cam"]["energy_in_box"] == pytest.approx(np.mean(energies), rel=1e-4)

    # One overlay per photo at the photo's size, with the gt outlines in white.
    first = rep["per_image"][0]
    overlay = cv2.cvtColor(cv2.imread(str(out / "overlays" / f"{Path(names[0]).stem}.person.png")),
                           cv2.COLOR_BGR2RGB)
    assert overlay.shape == (320, 640, 3)
    gt0 = next(r for r in rows if r["filename"] == first["filename"])
    x0, y0, x1 = int(gt0["x_min"]), int(gt0["y_min"]), int(gt0["x_max"])
    top_edge = overlay[y0, x0:x1]
    assert ((top_edge == GT_COLOR).all(axis=1) | (top_edge == PRED_COLOR).all(axis=1)).mean() > 0.5
    # The CAM box is in the JSON and drawn in magenta.
    bx = first["boxes"][0]
    assert (overlay[bx[1], bx[0] : bx[2]] == PRED_COLOR).all(axis=1).mean() > 0.5
