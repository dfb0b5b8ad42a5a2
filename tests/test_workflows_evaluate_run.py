"""Tests for gapsvm.workflows.evaluate.run (``gapsvm evaluate``): the localisation numbers
against the public metric functions on tiny photos (random VGG16 weights), the command's
handling of boxes CSVs (errors with their line, a byte-order mark), and the command end to
end on three real meeting-room photos with a model trained in the test on INRIA crops, and the
weakly-supervised localisation protocol (accuracy, GT-known, top-1, MaxBoxAccV2, per class) on a
slice of caltech101_3, recomputed from the public API.

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
from gapsvm.core.metrics import (
    best_iou,
    box_area_share,
    center_map,
    corloc,
    energy_in_box,
    iou_curve,
    max_box_accuracy,
    pointing_game,
    top1_localisation,
)
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
    assert pngs == ["p0.png.b.png", "p1.png.a.png"]
    assert cv2.imread(str(tmp_path / "overlays" / "p1.png.a.png")).shape == (80, 64, 3)
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


@slow
def test_every_pair_gets_its_own_overlay_file(tiny_model, tmp_path, capsys) -> None:
    # Before: x.jpg and x.png (same stem) wrote one file while "3 overlay(s)" was printed.
    model, _, d = tiny_model
    model.save(tmp_path / "m.skops")
    imgs = tmp_path / "imgs"
    photo = cv2.imread(str(d / "imgs" / "p0.png"))
    (imgs / "sub").mkdir(parents=True)
    for name in ("x.png", "x.jpg", "sub/x.png"):
        cv2.imwrite(str(imgs / name), photo)
    long = "L" * 246 + ".png"  # its overlay name would be longer than a file name may be
    cv2.imwrite(str(imgs / long), photo)
    f = tmp_path / "b.csv"
    f.write_text(HEADER + "".join(f"{n},b,48,16,80,48\n" for n in
                                  ("x.png", "x.jpg", "sub/x.png", long)) + "x.png,a,0,0,8,8\n")
    out = tmp_path / "out"
    code, printed, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", f, "--images", imgs,
                                 "--out", out, "--faithfulness", "none", "-q")
    assert code == 0, err
    files = sorted(p.relative_to(out / "overlays").as_posix()
                   for p in (out / "overlays").rglob("*") if p.is_file())
    assert len(files) == 5 and "5 overlay(s)" in printed
    assert files[1:] == ["sub/x.png.b.png", "x.jpg.b.png", "x.png.a.png", "x.png.b.png"]
    assert files[0].startswith("L" * 200) and files[0].endswith(".b.png")
    assert len(files[0]) <= 255


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
    assert header.split()[-len(METHODS):] == list(METHODS)
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
    overlay = cv2.cvtColor(cv2.imread(str(out / "overlays" / f"{names[0]}.person.png")),
                           cv2.COLOR_BGR2RGB)
    assert overlay.shape == (320, 640, 3)
    gt0 = next(r for r in rows if r["filename"] == first["filename"])
    x0, y0, x1 = int(gt0["x_min"]), int(gt0["y_min"]), int(gt0["x_max"])
    top_edge = overlay[y0, x0:x1]
    assert ((top_edge == GT_COLOR).all(axis=1) | (top_edge == PRED_COLOR).all(axis=1)).mean() > 0.5
    # The CAM box is in the JSON and drawn in magenta.
    bx = first["boxes"][0]
    assert (overlay[bx[1], bx[0] : bx[2]] == PRED_COLOR).all(axis=1).mean() > 0.5


# ------------------------------------------------------------------ labelled multi-class photos


@pytest.fixture(scope="module")
def caltech_model(tmp_path_factory, caltech_slice, imagenet_ready):
    """LinearSVC (the default head) on 24 caltech101_3 photos at 224x224, saved."""
    d = tmp_path_factory.mktemp("eval-caltech")
    _, paths, labels, _ = caltech_slice
    model = GapClassifier(input_size=(224, 224), cache_dir=d / "cache").fit(paths, labels)
    model.save(d / "m.skops")
    return model, d


def test_evaluate_reports_the_wsol_protocol_on_labelled_classes(
    caltech_slice, caltech_model, tmp_path, capsys
) -> None:
    root, _, _, rows = caltech_slice
    model, d = caltech_model
    subset = tmp_path / "test.csv"
    with open(subset, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    code, printed, err = run_cli(capsys, "evaluate", d / "m.skops", subset, "--images", root,
                                 "--out", out, "--input-size", "224x224", "--faithfulness",
                                 "none", "--cache-dir", d / "cache", "-q")
    assert code == 0, err
    for text in ("classification accuracy", "GT-known loc", "top-1 loc", "MaxBoxAccV2",
                 "gaussian"):
        assert text in printed
    lines = printed.splitlines()
    block = lines[lines.index("per class:") + 1:]
    assert [block.index(c) for c in ("airplane", "face", "motorcycle")] == [0, 5, 10]
    assert block[2].startswith("  GT-known loc")
    rep = json.loads((out / "evaluation.json").read_text())
    assert rep["counts"] == {"images": 18, "pairs": 18, "gt_boxes": 18}
    assert rep["settings"]["scales"] == [[224, 224]]
    assert list(rep["per_class"]) == ["airplane", "face", "motorcycle"]
    assert all("iou_curve" not in r for p in rep["per_image"] for r in p["methods"].values())

    # Independent recomputation from the public API: predict, cam, boxes and the metrics.
    paths = [str(root / r["filename"]) for r in rows]
    labels = [r["label"] for r in rows]
    gts = [[Box(*(int(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")))] for r in rows]
    correct = np.asarray(model.predict(paths)) == np.array(labels)
    ious, curves, whole, gauss = [], [], [], []
    for path, label, gt in zip(paths, labels, gts, strict=True):
        [cam] = model.cam([path], label, normalize=False, input_size=(224, 224))
        ious.append(best_iou(cam_to_boxes(cam, 0.2, "largest")[0], gt))
        curves.append(iou_curve(cam, gt))
        whole.append(best_iou(Box(0, 0, cam.shape[1], cam.shape[0]), gt))
        gauss.append(iou_curve(center_map(cam.shape), gt))
    s = rep["summary"]
    assert [p["predicted"] for p in rep["per_image"]] == list(model.predict(paths))
    assert s["cam"]["accuracy"] == pytest.approx(correct.mean())
    assert s["cam"]["gt_known"] == pytest.approx(corloc(ious))
    assert s["cam"]["top1_loc"] == pytest.approx(top1_localisation(correct, ious))
    assert s["cam"]["maxboxacc_v2"] == pytest.approx(max_box_accuracy(curves).value)
    assert s["uniform"]["gt_known"] == pytest.approx(corloc(whole))  # the whole-image box
    assert s["gaussian"]["maxboxacc_v2"] == pytest.approx(max_box_accuracy(gauss).value)
    airplane = [i for i, lab in enumerate(labels) if lab == "airplane"]
    assert rep["per_class"]["airplane"]["cam"]["gt_known"] == pytest.approx(
        corloc([ious[i] for i in airplane]))
    # Real behaviour: three easy classes from 8 photos each; top-1 never beats either part.
    assert s["cam"]["accuracy"] >= 0.9
    assert s["cam"]["top1_loc"] <= min(s["cam"]["accuracy"], s["cam"]["gt_known"])
