"""gapsvm.report / ``gapsvm report``: the HTML page a user opens, checked by parsing it.

A seeded random VGG16 (``weights=None``) on tiny synthetic red/blue images keeps this fast: the
report's plumbing is the point, not ImageNet behaviour (tests/test_demo.py covers that).
"""

from __future__ import annotations

import base64
import csv
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from gapsvm import cli
from gapsvm.workflows.report.build import build_report, read_boxes_csv

NASTY = "<img src=x onerror=alert(1)>&\"'.png"


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())


def _colour(rng: np.random.Generator, rgb: tuple[int, int, int], size=(32, 32)) -> np.ndarray:
    noise = rng.integers(-30, 31, size=(*size, 3))
    return np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)


RED, BLUE = (210, 40, 40), (40, 40, 210)


class Page(HTMLParser):
    """Collects the elements the tests read: cards, confusion cells, model card, sections."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict] = []
        self.cells: dict[tuple[str, str], str] = {}
        self.fields: dict[str, str] = {}
        self.imgs: list[dict] = []
        self.errors: list[str] = []
        self.section: str | None = None
        self._cell: tuple | None = None
        self._field: str | None = None
        self._in_errors = False
        self._li: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2" and (a.get("id") or "").startswith("class-"):
            self.section = a["id"][len("class-"):]
        elif tag == "figure":
            self.cards.append({**a, "section": self.section})
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "td" and "data-pred" in a:
            self._cell = (a["data-true"], a["data-pred"])
            self.cells[self._cell] = ""
        elif tag == "td" and "data-field" in a:
            self._field = a["data-field"]
            self.fields[self._field] = ""
        elif tag == "ul" and a.get("id") == "errors":
            self._in_errors = True
        elif tag == "li" and self._in_errors:
            self._li = []

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = self._field = None
        elif tag == "li" and self._li is not None:
            self.errors.append("".join(self._li))
            self._li = None
        elif tag == "ul":
            self._in_errors = False

    def handle_data(self, data):
        if self._cell is not None:
            self.cells[self._cell] += data
        if self._field is not None:
            self.fields[self._field] += data
        if self._li is not None:
            self._li.append(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained through the CLI (features -> train), as a user would."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(3)
    for i in range(8):
        _write(root / "train" / "red" / f"r{i}.png", _colour(rng, RED))
        _write(root / "train" / "blue" / f"b{i}.png", _colour(rng, BLUE))
    cache = root / "cache"
    feats, model = root / "f.joblib", root / "m.skops"
    assert cli.main(["features", str(root / "train"), "--input-size", "32x32", "--weights",
                     "none", "--cache-dir", str(cache), "--out", str(feats), "-q"]) == 0
    assert cli.main(["train", str(feats), "--C", "0.5", "--cv", "3", "--out", str(model)]) == 0
    from gapsvm import load_model

    clf = load_model(model).set_params(cache_dir=cache)
    # Labelled folder: each class holds images of the other colour (misclassified by any
    # sensible model), one of them with a name full of HTML; plus an unreadable file.
    lab = root / "labelled"
    for i in range(4):
        _write(lab / "red" / f"red{i}.png", _colour(rng, RED))
        _write(lab / "blue" / f"blue{i}.png", _colour(rng, BLUE, size=(40, 48)))
    _write(lab / "red" / "looks_blue.png", _colour(rng, BLUE))
    _write(lab / "red" / "looks_blue_too.png", _colour(rng, BLUE))  # asymmetric errors
    _write(lab / "blue" / NASTY, _colour(rng, RED))
    (lab / "red" / "broken.png").write_bytes(b"not a png at all")
    flat = root / "flat"
    for i in range(3):
        _write(flat / f"p{i}.png", _colour(rng, RED if i < 2 else BLUE))
    return {"root": root, "model_path": model, "model": clf, "cache": cache, "labelled": lab,
            "flat": flat}


@pytest.fixture(scope="module")
def labelled_report(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("labelled_out")
    rep = build_report(trained["model"], trained["labelled"], out)
    return rep, Page(rep.path.read_text(encoding="utf-8"))


def _readable(folder: Path) -> tuple[list[str], list[str]]:
    paths = sorted(str(p) for p in folder.rglob("*.png") if p.name != "broken.png")
    return paths, [Path(p).parent.name for p in paths]


def test_model_card_fields(trained, labelled_report):
    model = trained["model"]
    _, page = labelled_report
    f = page.fields
    assert "vgg16" in f["backbone"] and "block5_conv3" in f["backbone"]
    assert model.feature_meta_["weights"]["sha256"] in f["weights"]
    assert model.feature_meta_["weights"]["name"] in f["weights"]
    assert f["input size (training)"] == "32x32"
    assert f["input size (this report)"] == "32x32"
    assert f["head"] == "sklearn.svm._classes.LinearSVC"
    assert "C=0.5" in f["head parameters"] and "max_iter=10000" in f["head parameters"]
    assert f["classes"] == "blue, red"
    info = model.training_info_
    assert f"{info['cv_accuracy_mean']:.4f}" in f["cross-validated accuracy"]
    assert "3-fold" in f["cross-validated accuracy"]
    assert f["training images"].startswith("16")


def test_every_readable_image_is_shown_once_as_a_valid_png(trained, labelled_report):
    _, page = labelled_report
    paths, _ = _readable(trained["labelled"])
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


def test_confusion_matrix_matches_sklearn(trained, labelled_report):
    rep, page = labelled_report
    model = trained["model"]
    paths, y_true = _readable(trained["labelled"])
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


def test_misclassified_first_then_by_score(trained, labelled_report):
    _, page = labelled_report
    model = trained["model"]
    paths, y_true = _readable(trained["labelled"])
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


def test_nasty_file_name_is_escaped(trained, labelled_report):
    rep, page = labelled_report
    text = rep.path.read_text(encoding="utf-8")
    assert NASTY not in text
    assert "onerror=alert(1)>" not in text
    # a parser sees the name as data, and no element gained an event handler
    assert f"blue/{NASTY}" in [c["data-name"] for c in page.cards]
    assert not [i for i in page.imgs if "onerror" in i]


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


def test_target_and_boxes_localisation(trained, tmp_path):
    model = trained["model"]
    cam, x, y = _peak(model, trained["flat"] / "p0.png", "red")
    h, w = cam.shape
    hit_box = (max(x - 2, 0), max(y - 2, 0), min(x + 3, w), min(y + 3, h))
    _, x1, y1 = _peak(model, trained["flat"] / "p1.png", "red")
    # a 4x4 box in the corner farthest from p1's peak
    fx, fy = (0 if x1 >= w // 2 else w - 4), (0 if y1 >= h // 2 else h - 4)
    boxes = tmp_path / "boxes.csv"
    with open(boxes, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["filename", "label", "x_min", "y_min", "x_max", "y_max"])
        wr.writerow(["p0.png", "red", *hit_box])
        wr.writerow(["p1.png", "red", fx, fy, fx + 4, fy + 4])
        wr.writerow(["p2.png", "blue", 0, 0, 32, 32])  # another class: not scored
        wr.writerow(["gone.png", "red", 0, 0, 8, 8])  # not in the folder: said so
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
    assert any("1 file(s) not in this folder: gone.png" in f for f in rep.findings)


def test_bad_boxes_file_names_file_and_line(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("filename,label,x_min,y_min,x_max,y_max\na.png,x,0,0,10,10\nb.png,x,5,5,2,9\n")
    with pytest.raises(ValueError, match=r"b\.csv, line 3"):
        read_boxes_csv(p)
    p.write_text("filename,label,x_min,y_min,x_max,y_max\na.png,x,0.5,0,10,10\n")
    with pytest.raises(ValueError, match=r"line 2"):  # half pixels: another convention
        read_boxes_csv(p)
    p.write_text("filename,x_min\n")
    with pytest.raises(ValueError, match="missing column"):
        read_boxes_csv(p)


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
    with pytest.raises(ValueError, match="max_per_class"):
        build_report(trained["model"], trained["labelled"], tmp_path / "o", max_per_class=0)


def test_unknown_target_and_nonlinear_head_fail_before_reading(trained, tmp_path):
    from sklearn.svm import SVC

    from gapsvm import GapClassifier, NotLinearError

    with pytest.raises(ValueError, match=r"unknown target class 'green'.*blue.*red"):
        build_report(trained["model"], trained["flat"], tmp_path / "o", target="green")
    rng = np.random.default_rng(0)
    nl = GapClassifier(SVC(), weights=None, input_size=(32, 32)).fit_features(
        rng.normal(size=(10, 512)), ["a", "b"] * 5, trained["model"].feature_meta_)
    with pytest.raises(NotLinearError):
        build_report(nl, tmp_path / "does-not-exist", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_cli_report(trained, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["report", str(trained["model_path"]), str(trained["labelled"]), "--out", str(out),
            "--cache-dir", str(trained["cache"]), "-q", "--title", "My <b>title</b>",
            "--note", "a & b"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert f"report -> {out / 'index.html'}" in printed.out
    assert "Accuracy on this folder" in printed.out
    assert "red/broken.png" in printed.err
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>My &lt;b&gt;title&lt;/b&gt;</title>" in text and "a &amp; b" in text
    assert cli.main([*argv, "--strict"]) == 1  # an unreadable file fails a strict run


def test_report_module_does_not_import_tensorflow():
    code = ("import sys, gapsvm.report; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
