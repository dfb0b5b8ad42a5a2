"""Tests for gapsvm.workflows.detection: hard-negative mining (against a brute-force loop over
every window, on a model whose feature maps are made up, so no network runs) and box
supervision (crops against the boxes, negatives against IoU); one slow test runs both on real
data."""

from __future__ import annotations

import csv
import zlib

import numpy as np
import pytest
from _helpers import write_rgb
from sklearn.svm import LinearSVC

from gapsvm.core import validation as val
from gapsvm.core.boxes import Box, iou
from gapsvm.core.decode import ImageReadError, read_image
from gapsvm.estimator.classifier import GapClassifier
from gapsvm.network.extraction import ExtractionResult
from gapsvm.network.featurizer import features_metadata
from gapsvm.workflows.detection import mine_hard_negatives, negative_windows, train_from_boxes

C = 6  # channels of the made-up maps
STRIDE = 4  # pixels per made-up feature cell, at each scale


def _maps(image: np.ndarray, scale: float) -> np.ndarray:
    """An image's made-up feature maps at ``scale``: seeded by its pixels, so the same at
    every call (as the cache makes them)."""
    h, w = image.shape[:2]
    seed = [zlib.crc32(image.tobytes()), round(scale * 100)]
    rng = np.random.default_rng(seed)
    grid = (round(h * scale / STRIDE), round(w * scale / STRIDE))
    # Windows near the top-left look like the positive class, so the head scores them high.
    maps = rng.normal(size=(*grid, C))
    maps[: grid[0] // 2, : grid[1] // 2] += 0.8
    return maps.astype(np.float32)


class MadeUpMaps(GapClassifier):
    """A GapClassifier whose ``extract`` makes maps up instead of running a network."""

    calls: list = []  # noqa: RUF012 (the test reads what extract was asked)

    def extract(self, X, *, maps=False, input_size="fit", on_error="raise", map_fn=None):
        sources, names = val.check_images(X)
        type(self).calls.append((len(sources), input_size))
        n = len(sources)
        res = ExtractionResult(gap=np.full((n, C), np.nan, np.float32), maps=[None] * n,
                               image_hw=[None] * n, input_hw=[None] * n)
        for i, src in enumerate(sources):
            if not isinstance(src, np.ndarray):
                res.errors.append(ImageReadError(names[i], "not an image"))
                continue
            m = _maps(src, input_size)
            res.gap[i] = m.mean(axis=(0, 1))
            res.maps[i] = map_fn(i, m) if map_fn is not None else m
            res.image_hw[i] = src.shape[:2]
        return res


def _meta(input_size=(64, 32)) -> dict:
    backbone = {"backbone": "vgg16", "layer": "block5_conv3", "stride": STRIDE,
                "weights": {"name": "random(seed=0)", "sha256": "cd" * 32},
                "precision": "float32"}
    return features_metadata(backbone, input_size)


@pytest.fixture
def trained():
    """A binary head on made-up GAP vectors: 'pos' around +0.8, 'neg' around 0."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0.8, 0.3, (20, C)), rng.normal(0, 0.3, (20, C))])
    y = np.array(["pos"] * 20 + ["neg"] * 20)
    model = MadeUpMaps(LinearSVC(max_iter=10000), weights=None, input_size=(64, 32),
                       verbose=0)
    model.fit_features(X.astype(np.float32), y, _meta())
    model.training_info_ = {"n_images": 40, "features_file": "f.joblib"}
    return model, X.astype(np.float32), y


@pytest.fixture
def negatives():
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(5)]


def _cell_edges(n_cells: int, n_pixels: int) -> list[int]:
    return [int(np.rint(i * n_pixels / n_cells)) for i in range(n_cells + 1)]


def _brute_force(model, images, scales, window, per_image, nms_iou, margin):
    """Every window of every image and scale scored one at a time, then greedy NMS by hand."""
    wh, ww = window
    picked = []
    for k, image in enumerate(images):
        found = []
        for s in scales:
            m = _maps(image, s).astype(np.float64)
            rows = _cell_edges(m.shape[0], image.shape[0])
            cols = _cell_edges(m.shape[1], image.shape[1])
            for y in range(m.shape[0] - wh + 1):
                for x in range(m.shape[1] - ww + 1):
                    v = m[y:y + wh, x:x + ww].reshape(-1, C).mean(axis=0)
                    score = float(model.head_.decision_function(v[None])[0])
                    box = Box(cols[x], rows[y], cols[x + ww], rows[y + wh])
                    if score > margin:
                        found.append((score, box, v, s))
        found.sort(key=lambda t: -t[0])
        kept = []
        for cand in found:
            if len(kept) < per_image and all(iou(cand[1], b[1]) <= nms_iou for b in kept):
                kept.append(cand)
        picked += [(k, *c) for c in kept]
    return picked


def test_mining_adds_the_windows_the_head_scores_highest(trained, negatives) -> None:
    model, X, y = trained
    refit, report = mine_hard_negatives(model, X, y, negatives, rounds=1, per_image=3,
                                        scales="1,1.5", window="3x2", log=lambda s: None)
    want = _brute_force(model, negatives, (1.0, 1.5), (3, 2), 3, 0.3, -1.0)
    got = report.rounds[0]
    assert len(want) > 5 and len(got.scores) == len(want)
    for i, (k, score, box, v, s) in enumerate(want):
        assert got.images[i] == k and got.scales[i] == s
        assert tuple(got.boxes[i]) == box.as_tuple()
        assert got.scores[i] == pytest.approx(score, abs=1e-6)
        np.testing.assert_allclose(got.vectors[i], v, atol=1e-5)
    assert refit is not model and report.n_added == len(want)
    assert report.target == "pos" and report.negative_label == "neg"


def test_refit_scores_the_mined_windows_lower_and_records_the_mining(trained, negatives):
    model, X, y = trained
    refit, report = mine_hard_negatives(model, X, y, negatives, rounds=1, per_image=3,
                                        scales="1,1.5", window="3x2", log=lambda s: None)
    mined = report.rounds[0]
    before = model.head_.decision_function(mined.vectors)
    after = refit.head_.decision_function(mined.vectors)
    assert after.mean() < before.mean() - 0.1
    assert np.mean(after < before) > 0.9
    # The original model is untouched, and the refit one says what was added, and from where.
    assert "hard_negatives" not in model.training_info_
    info = refit.training_info_
    assert info["features_file"] == "f.joblib" and info["n_images"] == 40
    hn = info["hard_negatives"]
    assert hn["n_added"] == len(mined.scores) and hn["added_per_round"] == [hn["n_added"]]
    assert hn["source"] == "5 image(s) given" and hn["scales"] == "x1,x1.5"
    assert hn["windows"] == "3x2" and hn["negative_label"] == "neg"
    assert hn["rounds_run"] == 1 and hn["n_training_before"] == 40


def test_later_rounds_add_new_windows_only_and_stop_when_nothing_is_hard(trained, negatives):
    model, X, y = trained
    _, report = mine_hard_negatives(model, X, y, negatives, rounds=3, per_image=2,
                                        scales="1,1.5", window="3x2", log=lambda s: None)
    seen = set()
    for r in report.rounds:
        keys = {(int(i), float(s), tuple(b)) for i, s, b in zip(r.images, r.scales, r.boxes,
                                                                   strict=True)}
        assert not keys & seen and len(keys) == len(r.scores)
        seen |= keys
    # A margin no window reaches: nothing mined, the model comes back as it was.
    same, rep = mine_hard_negatives(model, X, y, negatives, rounds=2, margin=50.0,
                                    scales="1", window="3x2", log=lambda s: None)
    assert rep.n_added == 0 and len(rep.rounds) == 1
    np.testing.assert_array_equal(same.head_.decision_function(X),
                                  model.head_.decision_function(X))
    assert same.training_info_["hard_negatives"]["n_added"] == 0


def test_mining_works_in_chunks_and_skips_unreadable_images(trained, negatives, tmp_path,
                                                            monkeypatch) -> None:
    import gapsvm.workflows.detection as det

    model, X, y = trained
    monkeypatch.setattr(det, "_CHUNK", 2)
    MadeUpMaps.calls.clear()
    images = [*negatives[:3], str(tmp_path / "missing.png"), *negatives[3:]]
    _, report = mine_hard_negatives(model, X, y, images, rounds=1, per_image=3,
                                    scales="1,1.5", window="3x2", log=lambda s: None)
    assert max(n for n, _ in MadeUpMaps.calls) == 2  # never more than a chunk at once
    assert report.n_images == 6 and report.n_unreadable == 1
    want = _brute_force(model, negatives, (1.0, 1.5), (3, 2), 3, 0.3, -1.0)
    assert len(report.rounds[0].scores) == len(want)
    assert 3 not in report.rounds[0].images  # the unreadable one gave nothing


def test_mining_reads_a_folder_and_names_it(trained, tmp_path) -> None:
    model, X, y = trained
    folder = tmp_path / "negs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        write_rgb(folder / f"n{i}.png", rng.integers(0, 256, (32, 16, 3), dtype=np.uint8))
    refit, report = mine_hard_negatives(model, X, y, folder, rounds=1, scales="1",
                                        window="3x2", log=lambda s: None)
    assert report.n_images == 3 and report.source == str(folder)
    assert refit.training_info_["hard_negatives"]["source"] == str(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        mine_hard_negatives(model, X, y, tmp_path / "empty", rounds=1, scales="1",
                            window="3x2", log=lambda s: None)


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "cat"}, "unknown target class 'cat'"),
    ({"negative_label": "pos"}, "is the target itself"),
    ({"rounds": 0}, "rounds"),
    ({"per_image": 0}, "per_image"),
    ({"window": "3y2"}, "window"),
    ({"scales": "-1"}, "positive"),
])
def test_mining_refuses_bad_options(trained, negatives, kwargs, message) -> None:
    model, X, y = trained
    with pytest.raises(ValueError, match=message):
        mine_hard_negatives(model, X, y, negatives, **{"window": "3x2", **kwargs},
                            log=lambda s: None)


def test_a_multiclass_model_needs_target_and_negative_label(trained, negatives) -> None:
    _, X, _ = trained
    y3 = np.array(["a", "b", "c", "d"] * 10)
    model = MadeUpMaps(LinearSVC(max_iter=10000), weights=None, input_size=(64, 32),
                       verbose=0).fit_features(X, y3, _meta())
    with pytest.raises(ValueError, match="give target="):
        mine_hard_negatives(model, X, y3, negatives, window="3x2", log=lambda s: None)
    with pytest.raises(ValueError, match="give negative_label="):
        mine_hard_negatives(model, X, y3, negatives, target="a", window="3x2",
                            log=lambda s: None)
    _, report = mine_hard_negatives(model, X, y3, negatives, target="a",
                                        negative_label="d", rounds=1, scales="1,1.5",
                                        window="3x2", log=lambda s: None)
    assert report.n_added > 0
    W, b = model.head_.cam_weights()
    got = report.rounds[0]
    np.testing.assert_allclose(got.scores, got.vectors.astype(np.float64) @ W[0] + b[0],
                               atol=1e-5)


# -- box supervision -------------------------------------------------------------------------
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
                                 y, _meta((128, 64)))

    monkeypatch.setattr(GapClassifier, "fit", fake_fit)
    model = train_from_boxes(csv_path, images, negatives_per_image=4, seed=3, weights=None,
                             log=lambda s: None)
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
    assert model.input_size == (128, 64)
    # The same seed gives the same crops; only the photos asked for are used.
    train_from_boxes(csv_path, images, negatives_per_image=4, seed=3, weights=None,
                     log=lambda s: None)
    assert all(np.array_equal(a, b) for a, b in zip(X, seen["X"], strict=True))
    train_from_boxes(csv_path, images, negatives_per_image=2, filenames=["b.png"],
                     weights=None, log=lambda s: None)
    assert seen["y"].tolist() == ["person", "not_person", "not_person"]
    with pytest.raises(ValueError, match="have no box"):
        train_from_boxes(csv_path, images, filenames=["c.png"], log=lambda s: None)


def _locate(photo: np.ndarray, crop: np.ndarray) -> list[Box]:
    """Every box of ``photo`` whose pixels are ``crop``."""
    h, w = crop.shape[:2]
    H, W = photo.shape[:2]
    return [Box(x, y, x + w, y + h) for y in range(H - h + 1) for x in range(W - w + 1)
            if np.array_equal(photo[y:y + h, x:x + w], crop)]
