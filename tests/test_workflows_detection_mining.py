"""Tests for gapsvm.workflows.detection.mining: hard-negative mining against a brute-force
loop over every window, on a model whose feature maps are made up (tests/_detection.py), so
no network runs; images with boxes are mined away from their boxes."""

from __future__ import annotations

import _detection
import numpy as np
import pytest
from _detection import MadeUpMaps, brute_force, made_up_meta
from _helpers import write_rgb
from sklearn.svm import LinearSVC

from gapsvm.core.boxes import Box, iou
from gapsvm.workflows.detection import mine_hard_negatives

trained, negatives = _detection.trained, _detection.negatives  # shared fixtures

def test_mining_adds_the_windows_the_head_scores_highest(trained, negatives) -> None:
    model, X, y = trained
    refit, report = mine_hard_negatives(model, X, y, negatives, rounds=1, per_image=3,
                                        scales="1,1.5", window="3x2", log=lambda s: None)
    want = brute_force(model, negatives, (1.0, 1.5), (3, 2), 3, 0.3, -1.0)
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
    import gapsvm.workflows.detection.mining as det

    model, X, y = trained
    monkeypatch.setattr(det, "_CHUNK", 2)
    MadeUpMaps.calls.clear()
    images = [*negatives[:3], str(tmp_path / "missing.png"), *negatives[3:]]
    _, report = mine_hard_negatives(model, X, y, images, rounds=1, per_image=3,
                                    scales="1,1.5", window="3x2", log=lambda s: None)
    assert max(n for n, _ in MadeUpMaps.calls) == 2  # never more than a chunk at once
    assert report.n_images == 6 and report.n_unreadable == 1
    want = brute_force(model, negatives, (1.0, 1.5), (3, 2), 3, 0.3, -1.0)
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
                       verbose=0).fit_features(X, y3, made_up_meta())
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



def test_images_with_boxes_are_mined_away_from_them(trained, negatives) -> None:
    model, X, y = trained
    # Windows near the top-left score highest (tests/_detection.py): box that corner.
    avoid = [[Box(0, 0, 8, 16)], [], [Box(0, 0, 16, 32)], [Box(2, 2, 10, 18)], []]
    _, free = mine_hard_negatives(model, X, y, negatives, rounds=1, per_image=50,
                                  scales="1,1.5", window="3x2", log=lambda s: None)
    _, report = mine_hard_negatives(model, X, y, negatives, rounds=1, per_image=50,
                                    scales="1,1.5", window="3x2", avoid_boxes=avoid,
                                    max_iou=0.1, log=lambda s: None)
    got = report.rounds[0]
    assert len(got.scores) > 5
    for k, box in zip(got.images, got.boxes, strict=True):
        assert all(iou(Box(*box), b) < 0.1 for b in avoid[k])
    # Against the brute-force loop: the windows clear of the boxes, then NMS, per image.
    want = []
    for k, image in enumerate(negatives):
        clear = [c for c in brute_force(model, [image], (1.0, 1.5), (3, 2), 10**6, 1.0, -1.0)
                 if all(iou(c[2], b) < 0.1 for b in avoid[k])]
        kept = []
        for cand in clear:
            if len(kept) < 50 and all(iou(cand[2], c[2]) <= 0.3 for c in kept):
                kept.append(cand)
        want += [(k, c[2].as_tuple()) for c in kept]
    assert [(int(k), tuple(b)) for k, b in zip(got.images, got.boxes, strict=True)] == want
    # Without boxes the corner's windows are mined: the boxes made a difference.
    assert any(iou(Box(*b), avoid[int(k)][0]) >= 0.1
               for k, b in zip(free.rounds[0].images, free.rounds[0].boxes, strict=True)
               if avoid[int(k)])


def test_avoid_boxes_needs_one_list_per_image(trained, negatives) -> None:
    model, X, y = trained
    with pytest.raises(ValueError, match="one list per image"):
        mine_hard_negatives(model, X, y, negatives, window="3x2", avoid_boxes=[[]],
                            log=lambda s: None)
