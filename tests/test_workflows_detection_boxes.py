"""Tests for gapsvm.workflows.detection.boxes: box supervision (crops against the boxes,
negatives against IoU) and the mining of the photos' own box-free windows, on made-up
feature maps (tests/_detection.py), so no network runs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from _detection import C, MadeUpMaps, made_up_meta
from _helpers import write_rgb

from gapsvm.core.boxes import Box, iou
from gapsvm.core.decode import read_image
from gapsvm.estimator.classifier import GapClassifier
from gapsvm.workflows.detection import negative_windows, train_from_boxes


def test_negative_windows_overlap_no_box_and_copy_their_shapes() -> None:
    rng = np.random.default_rng(0)
    boxes = [Box(10, 20, 40, 80), Box(100, 10, 120, 50)]
    wins = negative_windows((120, 200), boxes, 30, rng)
    assert len(wins) == 30
    for w in wins:
        assert all(iou(w, b) < 0.1 for b in boxes)
        assert 0 <= w.x_min < w.x_max <= 200 and 0 <= w.y_min < w.y_max <= 120
        assert any(0.75 <= w.height / b.height <= 1.3 and 0.75 <= w.width / b.width <= 1.3
                   for b in boxes)
    again = negative_windows((120, 200), boxes, 30, np.random.default_rng(0))
    assert again == wins  # seeded
    # A photo full of boxes leaves no room: fewer windows, not an endless loop.
    assert negative_windows((50, 50), [Box(0, 0, 50, 50)], 5, rng) == []


def _boxed_photos(tmp_path):
    rng = np.random.default_rng(4)
    images = tmp_path / "photos"
    images.mkdir()
    rows = [("a.png", "person", 4, 6, 20, 40), ("a.png", "person", 50, 10, 66, 42),
            ("b.png", "person", 30, 20, 50, 60)]
    for name in ("a.png", "b.png"):
        write_rgb(images / name, rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))
    csv_path = tmp_path / "boxes.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "label", "x_min", "y_min", "x_max", "y_max"])
        w.writerows(rows)
    return csv_path, images, rows


def test_train_from_boxes_cuts_the_boxes_and_negatives_elsewhere(tmp_path, monkeypatch):
    csv_path, images, rows = _boxed_photos(tmp_path)
    seen = {}

    def fake_fit(self, X, y):  # the crops and labels a real fit would see
        seen["X"], seen["y"] = X, np.asarray(y)
        return self.fit_features(np.zeros((len(X), C)) + (np.asarray(y) == "person")[:, None],
                                 y, made_up_meta((128, 64)))

    monkeypatch.setattr(GapClassifier, "fit", fake_fit)
    model = train_from_boxes(csv_path, images, negatives_per_image=4, seed=3, weights=None,
                             mining_rounds=0, log=lambda s: None)
    X, y = seen["X"], seen["y"]
    assert y.tolist() == ["person"] * 2 + ["not_person"] * 4 + ["person"] + ["not_person"] * 4
    photo = {n: read_image(images / n) for n in ("a.png", "b.png")}
    positives = [x for x, lab in zip(X, y, strict=True) if lab == "person"]
    for crop, (name, _, x0, y0, x1, y1) in zip(positives, rows, strict=True):
        np.testing.assert_array_equal(crop, photo[name][y0:y1, x0:x1])
    # Every negative crop is a window of its photo that overlaps no box of it.
    for k, name in ((slice(2, 6), "a.png"), (slice(7, 11), "b.png")):
        boxes = [Box(*r[2:]) for r in rows if r[0] == name]
        for crop in X[k]:
            hits = _locate(photo[name], crop)
            assert hits, "negative crop not found in its photo"
            assert any(all(iou(h, b) < 0.1 for b in boxes) for h in hits)
    info = model.training_info_
    assert info["supervision"].startswith("box-supervised")
    assert (info["n_positives"], info["n_negatives"], info["n_photos"]) == (3, 8, 2)
    assert info["boxes_csv"] == "boxes.csv" and len(info["train_keys"]) == 2
    assert "hard_negatives" not in info  # mining_rounds=0
    assert model.input_size == (128, 64)
    # The same seed gives the same crops; only the photos asked for are used.
    train_from_boxes(csv_path, images, negatives_per_image=4, seed=3, weights=None,
                     mining_rounds=0, log=lambda s: None)
    assert all(np.array_equal(a, b) for a, b in zip(X, seen["X"], strict=True))
    train_from_boxes(csv_path, images, negatives_per_image=2, filenames=["b.png"],
                     weights=None, mining_rounds=0, log=lambda s: None)
    assert seen["y"].tolist() == ["person", "not_person", "not_person"]
    with pytest.raises(ValueError, match="have no box"):
        train_from_boxes(csv_path, images, filenames=["c.png"], log=lambda s: None)


def _locate(photo: np.ndarray, crop: np.ndarray) -> list[Box]:
    """Every box of ``photo`` whose pixels are ``crop``."""
    h, w = crop.shape[:2]
    H, W = photo.shape[:2]
    return [Box(x, y, x + w, y + h) for y in range(H - h + 1) for x in range(W - w + 1)
            if np.array_equal(photo[y:y + h, x:x + w], crop)]


def test_train_from_boxes_mines_the_photos_box_free_windows(tmp_path, monkeypatch) -> None:
    import gapsvm.workflows.detection.boxes as boxes_module

    csv_path, images, rows = _boxed_photos(tmp_path)

    def fit(self, X, y):  # made-up maps (no network), as detect and mining will see them
        return self.fit_features(self.extract(X).gap, y, made_up_meta(self.input_size))

    reports = []

    def spy(*args, **kwargs):
        out = mine(*args, **kwargs)
        reports.append(out[1])
        return out

    mine = boxes_module.mine_hard_negatives
    monkeypatch.setattr(MadeUpMaps, "fit", fit)
    monkeypatch.setattr(boxes_module, "GapClassifier", MadeUpMaps)
    monkeypatch.setattr(boxes_module, "mine_hard_negatives", spy)
    options = {"input_size": (32, 32), "negatives_per_image": 4, "seed": 3, "weights": None,
               "verbose": 0, "log": lambda s: None}
    plain = train_from_boxes(csv_path, images, mining_rounds=0, **options)
    assert reports == []
    model = train_from_boxes(csv_path, images, mining_rounds=1, mining_scales="1,1.5",
                             mining_window="3x2", mining_per_image=5, **options)
    (report,) = reports
    got = report.rounds[0]
    assert len(got.scores) > 3 and report.n_images == 2
    photo_boxes = [[Box(*r[2:]) for r in rows if r[0] == name] for name in ("a.png", "b.png")]
    for k, box in zip(got.images, got.boxes, strict=True):  # clear of every box of its photo
        assert all(iou(Box(*box), b) < 0.1 for b in photo_boxes[k])
    info = model.training_info_
    assert info["supervision"].startswith("box-supervised")
    assert info["hard_negatives"]["n_added"] == len(got.scores)
    # The refit head scores the mined windows lower than the head before mining did.
    before = plain.head_.decision_function(got.vectors)
    after = model.head_.decision_function(got.vectors)
    if plain.classes_[1] != "person":
        before, after = -before, -after
    assert after.mean() < before.mean()


def test_mining_needs_a_single_label(tmp_path) -> None:
    csv_path, images, _ = _boxed_photos(tmp_path)
    text = csv_path.read_text().replace("b.png,person", "b.png,chair")
    csv_path.write_text(text)
    with pytest.raises(ValueError, match="mining needs one label"):
        train_from_boxes(csv_path, images, weights=None, log=lambda s: None)
