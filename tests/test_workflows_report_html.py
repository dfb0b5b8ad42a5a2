"""gapsvm.workflows.report.html: the page a user opens, checked by parsing it (the
``gapsvm report`` command is test_cli_report.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import _report
import cv2
import numpy as np
import pytest
from _report import NASTY, Page, readable

from gapsvm.core.boxes import Box
from gapsvm.workflows.report import build_report

trained, labelled_report = _report.trained, _report.labelled_report  # shared fixtures

pytestmark = pytest.mark.slow


def test_model_card_fields(trained, labelled_report):
    model = trained["model"]
    _, page = labelled_report
    f = page.fields
    assert "vgg16" in f["backbone"] and "block5_conv3" in f["backbone"]
    assert model.feature_meta_["weights"]["sha256"] in f["weights"]
    assert model.feature_meta_["weights"]["name"] in f["weights"]
    assert f["input size (training)"] == "32x32"
    assert f["input size (this report)"] == "32x32"
    assert f["head"] == "LinearSVC"  # as a user names it, not its private module
    assert "C=0.5" in f["head parameters"] and "max_iter=10000" in f["head parameters"]
    assert f["classes"] == "blue, red"
    info = model.training_info_
    assert f"{info['cv_accuracy_mean']:.4f}" in f["cross-validated accuracy"]
    assert "3-fold" in f["cross-validated accuracy"]
    assert f["training images"].startswith("16")


def test_every_readable_image_is_shown_once_as_a_valid_png(trained, labelled_report):
    _, page = labelled_report
    paths, _ = readable(trained["labelled"])
    expected = {Path(p).relative_to(trained["labelled"]).as_posix() for p in paths}
    names = [c["data-name"] for c in page.cards]
    assert sorted(names) == sorted(expected)
    srcs = [i["src"] for i in page.imgs]
    assert len(srcs) == len(expected)
    for card, img in zip(page.cards, page.imgs, strict=True):
        assert img["src"].startswith("data:image/png;base64,")
        png = np.frombuffer(base64.b64decode(img["src"].split(",", 1)[1]), np.uint8)
        decoded = cv2.imdecode(png, cv2.IMREAD_COLOR)
        assert decoded is not None and decoded.shape[2] == 3
        assert img["alt"] == card["data-name"]
    # the unreadable file is named with its reason, not silently dropped
    assert len(page.errors) == 1 and page.errors[0].startswith("red/broken.png: ")


def test_misclassified_first_then_by_score(trained, labelled_report):
    _, page = labelled_report
    model = trained["model"]
    paths, y_true = readable(trained["labelled"])
    y_pred = model.predict(paths)
    d = model.decision_function(paths)
    rel = [Path(p).relative_to(trained["labelled"]).as_posix() for p in paths]
    wrong = {r for r, t, p in zip(rel, y_true, y_pred, strict=True) if t != p}
    # binary head: classes_[1] scores d, classes_[0] scores -d; the map drawn is the prediction's
    pred_score = {r: (s if p == model.classes_[1] else -s)
                  for r, p, s in zip(rel, y_pred, d, strict=True)}
    assert {c["data-name"] for c in page.cards if "miss" in c["class"].split()} == wrong
    sections = {}
    for c in page.cards:
        sections.setdefault(c["section"], []).append(c)
    assert set(sections) == {"blue", "red"}
    for name, cards in sections.items():
        assert all(c["data-true"] == name for c in cards)
        flags = [c["data-name"] in wrong for c in cards]
        assert flags == sorted(flags, reverse=True), f"misclassified not first in {name}"
        for group in (True, False):
            scores = [float(c["data-score"]) for c in cards if (c["data-name"] in wrong) is group]
            assert scores == sorted(scores, reverse=True)
        for c in cards:
            assert float(c["data-score"]) == pytest.approx(pred_score[c["data-name"]], abs=1e-4)
            assert c["data-pred"] == y_pred[rel.index(c["data-name"])]


def _panel_png(img: dict) -> np.ndarray:
    png = np.frombuffer(base64.b64decode(img["src"].split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_target_all_draws_a_row_of_every_class_per_image(trained, tmp_path):
    model, folder = trained["model"], trained["labelled"]
    paths, _ = readable(folder)
    rel = [Path(p).relative_to(folder).as_posix() for p in paths]
    d = model.decision_function(paths)  # binary: blue scores -d, red scores d
    boxes = {"red/red0.png": [("red", Box(4, 4, 20, 20))]}
    rep = build_report(model, folder, tmp_path / "o", target="all", boxes=boxes)
    page = Page(rep.path.read_text(encoding="utf-8"))
    assert page.fields["map drawn"] == "every class, one row per image"
    assert sorted(c["data-name"] for c in page.cards) == sorted(rel)
    for k, card in enumerate(page.cards):
        panels = [p for p in page.panels if p["card"] == k]
        imgs = [i for i in page.imgs if i["card"] == k]
        assert [p["data-class"] for p in panels] == ["blue", "red"]  # the model's order
        assert len(imgs) == 2
        i = rel.index(card["data-name"])
        for p, img, want in zip(panels, imgs, (-d[i], d[i]), strict=True):
            assert float(p["data-score"]) == pytest.approx(want, abs=1e-4)
            assert p["label"].split()[:2] == [p["data-class"], f"{want:+.3f}"]
            assert img["alt"] == f"{card['data-name']}: map of {p['data-class']}"
            assert ("pred" in p["class"].split()) == (p["data-class"] == card["data-pred"])
        # The ground-truth box (white; jet over these images has no white) is drawn on the
        # panel of its own class only.
        white = [bool((_panel_png(img) == 255).all(axis=2).any()) for img in imgs]
        assert white == ([False, True] if card["data-name"] == "red/red0.png" else [False] * 2)


def test_nasty_file_name_is_escaped(trained, labelled_report):
    rep, page = labelled_report
    text = rep.path.read_text(encoding="utf-8")
    assert NASTY not in text
    assert "onerror=alert(1)>" not in text
    # a parser sees the name as data, and no element gained an event handler
    assert f"blue/{NASTY}" in [c["data-name"] for c in page.cards]
    assert not [i for i in page.imgs if "onerror" in i]


def test_max_per_class_keeps_mistakes_and_full_counts(trained, labelled_report, tmp_path):
    full, _ = labelled_report
    rep = build_report(trained["model"], trained["labelled"], tmp_path / "o", max_per_class=2)
    page = Page(rep.path.read_text(encoding="utf-8"))
    shown = {}
    for c in page.cards:
        shown.setdefault(c["section"], []).append(c)
    wrong = {e.name for e in full.entries if e.misclassified}
    assert all(len(v) <= 2 for v in shown.values())
    assert wrong <= {c["data-name"] for c in page.cards}  # mistakes are never the ones cut
    np.testing.assert_array_equal(rep.confusion, full.confusion)
    assert "more not shown" in rep.path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="max_per_class must be a positive number of "
                                         "overlays, or None for every image; got 0"):
        build_report(trained["model"], trained["labelled"], tmp_path / "o", max_per_class=0)


def test_cli_max_per_class_is_a_usage_error_in_command_line_terms(trained, tmp_path, capsys):
    from gapsvm import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(trained["model_path"]), str(trained["flat"]), "--out",
                  str(tmp_path / "o"), "--max-per-class", "-1"])
    err = capsys.readouterr().err.splitlines()[-1]
    assert exc.value.code == 2 and "None" not in err
    assert err == ("gapsvm report: error: argument --max-per-class: -1 overlays: give 0 (all) "
                   "or a positive count")


def test_pipeline_head_is_named_by_its_steps(trained, tmp_path):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = clone(trained["model"]).set_params(
        classifier=make_pipeline(StandardScaler(), LogisticRegression()))
    X = np.random.default_rng(0).normal(size=(6, 512)).astype(np.float32)
    model.fit_features(X, ["red", "blue"] * 3, trained["model"].feature_meta_)
    rep = build_report(model, trained["flat"], tmp_path / "o")
    head = Page(rep.path.read_text(encoding="utf-8")).fields["head"]
    assert head == "Pipeline(StandardScaler, LogisticRegression)"


def test_report_module_does_not_import_tensorflow():
    # gapsvm.report is the old path, served lazily: touch a name so the package really loads
    code = ("import sys, gapsvm.report; gapsvm.report.build_report; "
            "import gapsvm.workflows.report.collect, gapsvm.workflows.report.html; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_card_says_how_a_detection_head_was_trained():
    """Box supervision and mined hard negatives are named, not counted as training images."""
    from gapsvm.workflows.report.html import _training_rows

    boxed = dict(_training_rows({"supervision": "box-supervised: crops of the boxes in b.csv",
                                 "n_photos": 20, "n_positives": 261, "n_negatives": 400,
                                 "n_images": 661}))
    assert "training images" not in boxed
    assert boxed["supervision"].startswith("box-supervised") and "261 box crop(s)" in \
        boxed["supervision"] and "20 photo(s)" in boxed["supervision"]
    mined = dict(_training_rows({"n_images": 800, "hard_negatives": {
        "n_added": 565, "rounds_run": 2, "n_images": 400, "source": "not_person",
        "scales": "2,3,4"}}))
    assert mined["training images"] == "800"
    assert mined["hard negatives"] == ("565 window(s) mined in 2 round(s) from 400 image(s) of "
                                       "not_person at scales 2,3,4")
