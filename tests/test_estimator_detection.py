"""Tests for gapsvm.estimator.detection: GapClassifier.detect on real photos.

A head trained on 48 INRIA crops (128x64, ImageNet weights) looks for people in three of the
meeting photos. Every detection's score is checked against a brute-force loop over windows of
the raw feature maps, scored by the head itself on each window's pooled vector.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gapsvm import GapClassifier
from gapsvm.core.boxes import iou
from gapsvm.core.detection import nms, vote_boxes, window_boxes
from gapsvm.estimator.detection import (
    detections_from,
    explain_pyramid,
    model_window,
)
from gapsvm.network.backbone.build import get_backbone

pytestmark = pytest.mark.slow

SIZE = (128, 64)


@pytest.fixture(scope="module")
def model(persons_slice, imagenet_ready, tmp_path_factory) -> GapClassifier:
    paths, labels = persons_slice
    cache = tmp_path_factory.mktemp("detect-cache")
    return GapClassifier(input_size=SIZE, cache_dir=cache, verbose=0).fit(paths, labels)


@pytest.fixture(scope="module")
def photos(shared_data) -> list[str]:
    names = ("linagora_seg0.jpg", "linagora_seg1008.jpg", "linagora_seg2973.jpg")
    return [str(shared_data / "boxes" / "images" / n) for n in names]


def _brute_force(model, photo, scale, window):
    """Every window's decision value from the raw maps, by loops: (boxes, scores)."""
    res = model.extract([photo], maps=True, input_size=scale)
    maps, hw = res.maps[0].astype(np.float64), res.image_hw[0]
    c = list(model.classes_).index("person")
    h, w = window
    gh, gw = maps.shape[:2]
    scores = []
    for i, j in itertools.product(range(gh - h + 1), range(gw - w + 1)):
        pooled = maps[i:i + h, j:j + w].mean(axis=(0, 1))
        scores.append(model.class_scores(pooled[None])[0, c])
    return window_boxes((gh, gw), window, 1, hw), np.array(scores)


def test_default_window_is_the_training_crop_in_cells(model):
    assert model_window(model) == (8, 4)


def test_scores_are_the_decision_values_of_the_windows_pooled_features(model, photos):
    window = (8, 4)
    dets = model.detect(photos[:1], "person", scales=1.5, window="8x4", nms_iou=0.3,
                        max_detections=20, box_vote=False)[0]
    boxes, scores = _brute_force(model, photos[0], 1.5, window)
    # NMS keeps the best window first; every kept score is some window's decision value.
    assert dets[0].score == pytest.approx(scores.max(), rel=1e-3, abs=5e-3)
    assert tuple(boxes[int(np.argmax(scores))]) == dets[0].box.as_tuple()
    for d in dets:
        k = [n for n, b in enumerate(boxes) if tuple(b) == d.box.as_tuple()]
        assert k, d
        assert scores[k[0]] == pytest.approx(d.score, rel=1e-3, abs=5e-3)


def test_box_voting_moves_the_boxes_and_keeps_the_windows_scores(model, photos):
    # The brute-force windows, suppressed, voted and suppressed again by hand.
    boxes, scores = _brute_force(model, photos[0], 1.5, (8, 4))
    keep = nms(boxes, scores, 0.3)
    voted = vote_boxes(boxes, scores, keep, 0.3)
    again = nms(voted, scores[keep], 0.3, 20)
    dets = model.detect(photos[:1], "person", scales=1.5, window="8x4", max_detections=20)[0]
    assert [d.box.as_tuple() for d in dets] == [tuple(voted[k]) for k in again]
    np.testing.assert_allclose([d.score for d in dets], scores[keep][again], rtol=1e-3,
                               atol=5e-3)
    plain = model.detect(photos[:1], "person", scales=1.5, window="8x4", max_detections=20,
                         box_vote=False)[0]
    assert dets[0].score == pytest.approx(plain[0].score)  # the best window leads both
    grid = {tuple(b) for b in boxes}
    assert any(d.box.as_tuple() not in grid for d in dets)  # voted off the window grid
    for a, b in itertools.combinations(dets, 2):  # and still no two above the NMS overlap
        assert iou(a.box, b.box) <= 0.3


def test_detect_end_to_end_on_three_photos(model, photos):
    found = model.detect(photos, "person", scales="1,1.5", max_detections=15)
    assert len(found) == 3
    for dets, photo in zip(found, photos, strict=True):
        assert 0 < len(dets) <= 15
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        assert all(d.label == "person" for d in dets)
        assert all(0 <= d.box.x_min < d.box.x_max <= 640 and
                   0 <= d.box.y_min < d.box.y_max <= 320 for d in dets), photo
        for a, b in itertools.combinations(dets, 2):
            assert iou(a.box, b.box) <= 0.3


def test_score_threshold_zero_keeps_what_the_head_calls_a_person(model, photos):
    dets = model.detect(photos[:1], "person", scales=1.5, score_threshold=0.0,
                        max_detections=None)[0]
    _, scores = _brute_force(model, photos[0], 1.5, (8, 4))
    assert all(d.score >= 0 for d in dets)
    assert len(dets) <= int((scores >= 0).sum())


def test_one_pyramid_serves_many_settings(model, photos):
    """detections_from reads the explanations only: another window or NMS runs no network."""
    pyramid = explain_pyramid(model, photos[:2], "person", "1,1.5")
    before = get_backbone("vgg16", "imagenet", "float32").images_run
    a = detections_from(list(pyramid.values()), "person", [(8, 4)], nms_iou=0.3)
    b = detections_from(list(pyramid.values()), "person", [(6, 4), (8, 4)], nms_iou=0.5)
    assert get_backbone("vgg16", "imagenet", "float32").images_run == before
    assert a == model.detect(photos[:2], "person", scales="1,1.5", nms_iou=0.3)
    assert len(b[0]) >= 1 and b != a


def test_a_window_larger_than_every_map_finds_nothing(model, photos):
    assert model.detect(photos[:1], "person", scales=1.0, window="40x80") == [[]]


@pytest.mark.parametrize("target", [None, "all", "cat"])
def test_detect_needs_one_known_class(model, photos, target):
    with pytest.raises(ValueError, match=r"person|class"):
        model.detect(photos[:1], target)


@pytest.mark.parametrize(("kw", "match"), [
    ({"nms_iou": 1.5}, "nms_iou"),
    ({"max_detections": 0}, "max_detections"),
    ({"stride": 0}, "stride"),
    ({"score_threshold": float("nan")}, "score_threshold"),
    ({"window": "8by4"}, "HxW"),
    ({"box_vote": "yes"}, "box_vote"),
    ({"scales": "0"}, "scale"),
])
def test_bad_options_fail_before_the_network_runs(model, photos, kw, match):
    before = get_backbone("vgg16", "imagenet", "float32").images_run
    with pytest.raises((ValueError, TypeError), match=match):
        model.detect([photos[2]], "person", **kw)
    assert get_backbone("vgg16", "imagenet", "float32").images_run == before
