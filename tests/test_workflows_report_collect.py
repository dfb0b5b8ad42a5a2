"""gapsvm.workflows.report.collect: what the report says about a folder (entries, confusion
matrix, findings, ground-truth boxes read by the one strict reader)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import _report
import numpy as np
import pytest
from _report import BLUE, BOXES_HEADER, RED, Page, colour, readable, write_png
from sklearn.metrics import confusion_matrix

from gapsvm import cli
from gapsvm import report as old_report_path  # gapsvm.report, kept by gapsvm._legacy
from gapsvm.core.boxes import Box
from gapsvm.core.boxes_csv import BoxesCSVError
from gapsvm.core.boxes_csv import read_boxes_csv as core_read_boxes_csv
from gapsvm.workflows.report import build_report, read_boxes_csv

trained, labelled_report = _report.trained, _report.labelled_report  # shared fixtures

pytestmark = pytest.mark.slow


def test_confusion_matrix_matches_sklearn(trained, labelled_report):
    rep, page = labelled_report
    model = trained["model"]
    paths, y_true = readable(trained["labelled"])
    y_pred = model.predict(paths)
    labels = [str(c) for c in model.classes_]
    expected = confusion_matrix(y_true, y_pred, labels=labels)
    shown = np.array([[int(page.cells[(t, p)]) for p in labels] for t in labels])
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(rep.confusion, expected)
    # the planted errors really are errors (so the ordering test is not vacuous), and they
    # are asymmetric, so a transposed matrix would not pass
    assert expected[0, 1] >= 1 and expected[1, 0] >= 1
    assert not np.array_equal(expected, expected.T)


def test_flat_folder_has_no_labels(trained, tmp_path):
    model = trained["model"]
    rep = build_report(model, trained["flat"], tmp_path / "out")
    text = rep.path.read_text(encoding="utf-8")
    page = Page(text)
    assert rep.confusion is None and 'id="confusion"' not in text
    paths = sorted(str(p) for p in trained["flat"].glob("*.png"))
    pred = model.predict(paths)
    assert sorted(c["data-name"] for c in page.cards) == ["p0.png", "p1.png", "p2.png"]
    assert all(c["data-true"] == "" for c in page.cards)
    assert not any("miss" in c["class"].split() for c in page.cards)
    for c in page.cards:  # flat: grouped by predicted class
        assert c["section"] == c["data-pred"] == pred[paths.index(str(trained["flat"] /
                                                                    c["data-name"]))]
    assert any("No labels" in f for f in rep.findings)


def _peak(model, path: Path, target: str) -> tuple[np.ndarray, int, int]:
    cam = model.cam([str(path)], target=target, size="image", normalize=False)[0]
    y, x = np.unravel_index(np.argmax(cam), cam.shape)
    return cam, int(x), int(y)


def _write_boxes(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as fh:
        wr = csv.writer(fh)
        wr.writerow(BOXES_HEADER)
        wr.writerows(rows)
    return path


def _hit_and_miss_rows(model, flat: Path) -> tuple[list[list], dict]:
    """Boxes of class red: one around p0's peak, one in the corner farthest from p1's peak,
    and one of another class on p2 (not scored)."""
    cam, x, y = _peak(model, flat / "p0.png", "red")
    h, w = cam.shape
    hit_box = (max(x - 2, 0), max(y - 2, 0), min(x + 3, w), min(y + 3, h))
    _, x1, y1 = _peak(model, flat / "p1.png", "red")
    fx, fy = (0 if x1 >= w // 2 else w - 4), (0 if y1 >= h // 2 else h - 4)
    rows = [["p0.png", "red", *hit_box], ["p1.png", "red", fx, fy, fx + 4, fy + 4],
            ["p2.png", "blue", 0, 0, 32, 32]]
    return rows, {"cam": cam, "peak0": (x, y), "hit_box": hit_box, "peak1": (x1, y1)}


def test_target_and_boxes_localisation(trained, tmp_path):
    model = trained["model"]
    rows, ref = _hit_and_miss_rows(model, trained["flat"])
    cam, (x, y), hit_box, (x1, y1) = ref["cam"], ref["peak0"], ref["hit_box"], ref["peak1"]
    boxes = _write_boxes(tmp_path / "boxes.csv", rows)
    rep = build_report(model, trained["flat"], tmp_path / "out", target="red", boxes=boxes)
    by = {e.name: e for e in rep.entries}
    assert all(e.target == "red" for e in rep.entries)
    assert by["p0.png"].peak_xy == (x, y) and by["p0.png"].hit is True
    inside = np.zeros_like(cam, dtype=bool)
    inside[hit_box[1] : hit_box[3], hit_box[0] : hit_box[2]] = True
    pos = np.maximum(cam, 0)
    assert by["p0.png"].energy == pytest.approx(pos[inside].sum() / pos.sum(), rel=1e-4)
    assert by["p0.png"].box_share == pytest.approx(inside.mean())
    assert by["p1.png"].peak_xy == (x1, y1) and by["p1.png"].hit is False
    assert by["p2.png"].boxes == [] and by["p2.png"].hit is None
    text = rep.path.read_text(encoding="utf-8")
    assert text.count("peak in box") == 1 and text.count("peak outside box") == 1
    summary = [f for f in rep.findings if f.startswith("Map peak inside a ground-truth box")]
    assert summary and "1 of 2" in summary[0] and f"p1.png (peak at x={x1}, y={y1})" in summary[0]
    # what the strict reader returns works as well as its file
    again = build_report(model, trained["flat"], tmp_path / "out2", target="red",
                         boxes=read_boxes_csv(boxes, trained["flat"]))
    assert again.findings == rep.findings


def test_boxes_of_files_not_in_the_folder_are_named(trained, tmp_path):
    # A CSV must name files of the folder (the strict reader); a lookup built by hand may not.
    rep = build_report(trained["model"], trained["flat"], tmp_path / "out", target="red",
                       boxes={"gone.png": [("red", Box(0, 0, 8, 8))]})
    assert any("1 file(s) not in this folder: gone.png" in f for f in rep.findings)
    assert any("no box of the drawn class for any image" in f for f in rep.findings)


def test_bad_boxes_csv_fails_before_any_image_is_run(trained, tmp_path):
    boxes = _write_boxes(tmp_path / "boxes.csv", [
        ["p0.png", "red", 0, 0, 8, 8],
        ["p1.png", "green", 0, 0, 8, 8],  # not a class of the model
        ["p2.png", "red", 0, 0, 8, 8],
        ["gone.png", "red", 0, 0, 8, 8],  # not in the folder
    ])
    out = tmp_path / "out"
    with pytest.raises(BoxesCSVError) as err:
        build_report(trained["model"], trained["flat"], out, target="red", boxes=boxes)
    assert [line for line, _ in err.value.problems] == [3, 5]
    assert "label 'green' is not a class of the model" in str(err.value)
    assert "boxes.csv:5: unknown file 'gone.png'" in str(err.value)
    assert not out.exists()


def test_old_report_path_reads_boxes_with_the_one_strict_reader():
    assert old_report_path.read_boxes_csv is core_read_boxes_csv is read_boxes_csv


def test_cli_report_boxes_with_byte_order_mark(trained, tmp_path, capsys):
    """Spreadsheets save CSVs with a BOM; `report --boxes` once failed on them with
    "missing column(s) filename", while `evaluate` read them."""
    rows, _ = _hit_and_miss_rows(trained["model"], trained["flat"])
    plain = _write_boxes(tmp_path / "plain.csv", rows)
    bom = _write_boxes(tmp_path / "bom.csv", rows, encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    printed = {}
    for csv_path in (plain, bom):
        out = tmp_path / csv_path.stem
        argv = ["report", str(trained["model_path"]), str(trained["flat"]), "--out", str(out),
                "--cache-dir", str(trained["cache"]), "-q", "--target", "red",
                "--boxes", str(csv_path)]
        assert cli.main(argv) == 0
        got = capsys.readouterr()
        assert "missing column" not in got.err
        printed[csv_path.stem] = [ln for ln in got.out.splitlines()
                                  if not ln.startswith("report ->")]
        text = (out / "index.html").read_text(encoding="utf-8")
        assert text.count("peak in box") + text.count("peak outside box") == 2
    assert any(ln.startswith("Map peak inside a ground-truth box: ") and "of 2 images" in ln
               for ln in printed["bom"])
    assert printed["bom"] == printed["plain"]


def test_labels_that_are_no_class_folder_extend_the_confusion_matrix(trained, tmp_path):
    folder = tmp_path / "three"
    rng = np.random.default_rng(5)
    for cls, rgb in (("red", RED), ("blue", BLUE), ("purple", (150, 40, 150))):
        write_png(folder / cls / "x.png", colour(rng, rgb))
    rep = build_report(trained["model"], folder, tmp_path / "out")
    assert rep.labels == ["blue", "red", "purple"]
    pred = trained["model"].predict([str(folder / c / "x.png") for c in rep.labels])
    expected = confusion_matrix(rep.labels, pred, labels=rep.labels)
    np.testing.assert_array_equal(rep.confusion, expected)


def test_training_images_are_counted_and_the_accuracy_marked_optimistic(trained, tmp_path):
    # Three training images under new names (recognised by content), and two new images.
    folder = tmp_path / "mixed"
    train = trained["root"] / "train"
    reused = {"red/again0.png": "red/r0.png", "red/again1.png": "red/r1.png",
              "blue/again.png": "blue/b0.png"}
    for new, old in reused.items():
        (folder / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(train / old, folder / new)
    rng = np.random.default_rng(11)
    write_png(folder / "red" / "fresh.png", colour(rng, RED))
    write_png(folder / "red" / "fresh_but_blue.png", colour(rng, BLUE))  # a likely error
    rep = build_report(trained["model"], folder, tmp_path / "out")
    by = {e.name: e.trained_on for e in rep.entries}
    assert by == {**dict.fromkeys(reused, True), "red/fresh.png": False,
                  "red/fresh_but_blue.png": False}
    new = [e for e in rep.entries if not e.trained_on]
    ok = sum(e.true == p for e, p in zip(new, trained["model"].predict([e.path for e in new]),
                                        strict=True))
    accuracy = [f for f in rep.findings if f.startswith("Accuracy on this folder")]
    assert len(accuracy) == 1
    assert accuracy[0].endswith(
        " This accuracy is optimistic: 3 of these 5 images were training images of this "
        f"model; on the other 2 images it is {100 * ok / 2:.1f}% ({ok} of 2).")
    page = rep.path.read_text(encoding="utf-8")
    assert page.count("training image</span>") == 3


def test_report_on_the_training_folder_says_every_image_was_trained_on(trained, tmp_path,
                                                                      capsys):
    argv = ["report", str(trained["model_path"]), str(trained["root"] / "train"), "--out",
            str(tmp_path / "o"), "--cache-dir", str(trained["cache"]), "-q"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "This accuracy is optimistic: 16 of these 16 images were training images of this " \
           "model; the cross-validated accuracy in the model card, where recorded, is the " \
           "estimate for new images." in out


def test_new_images_and_unrecorded_models_get_no_caveat(trained, labelled_report, tmp_path):
    rep, _ = labelled_report
    assert {e.trained_on for e in rep.entries} == {False}
    assert not any("optimistic" in f or "training images" in f for f in rep.findings)
    # A model fitted through the API records no training images: nothing is claimed.
    from sklearn.base import clone

    model = clone(trained["model"])
    X = np.random.default_rng(0).normal(size=(6, 512)).astype(np.float32)
    model.fit_features(X, ["red", "blue"] * 3, trained["model"].feature_meta_)
    assert not hasattr(model, "training_info_")
    rep = build_report(model, trained["root"] / "train", tmp_path / "o")
    assert {e.trained_on for e in rep.entries} == {None}
    assert not any("optimistic" in f for f in rep.findings)


def test_a_flat_folder_of_training_images_is_counted_too(trained, tmp_path):
    rep = build_report(trained["model"], trained["root"] / "train" / "red", tmp_path / "o")
    assert rep.confusion is None and {e.trained_on for e in rep.entries} == {True}
    assert "8 of these 8 images were training images of this model." in rep.findings
