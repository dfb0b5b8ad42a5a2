"""Made-up feature maps for the detection workflow tests (tests/test_workflows_detection_*):
a GapClassifier whose ``extract`` invents maps from each image's pixels, so no network runs,
a head trained on made-up GAP vectors, and a brute-force loop over every window."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from gapsvm.core import validation as val
from gapsvm.core.boxes import Box, iou
from gapsvm.core.decode import ImageReadError, read_image
from gapsvm.estimator.classifier import GapClassifier
from gapsvm.network.extraction import ExtractionResult
from gapsvm.network.featurizer import features_metadata

C = 6  # channels of the made-up maps
STRIDE = 4  # pixels per made-up feature cell, at each scale


def made_up_maps(image: np.ndarray, scale: float) -> np.ndarray:
    """An image's made-up feature maps at ``scale``: seeded by its pixels, so the same at
    every call (as the cache makes them). ``"fit"`` (a crop at the model's size) is scale 1."""
    scale = 1.0 if scale == "fit" else scale
    h, w = image.shape[:2]
    seed = [zlib.crc32(image.tobytes()), round(scale * 100)]
    rng = np.random.default_rng(seed)
    grid = (round(h * scale / STRIDE), round(w * scale / STRIDE))
    # Windows near the top-left look like the positive class, so the head scores them high.
    maps = rng.normal(size=(*grid, C))
    maps[: grid[0] // 2, : grid[1] // 2] += 0.8
    return maps.astype(np.float32)


class MadeUpMaps(GapClassifier):
    """A GapClassifier whose ``extract`` makes maps up instead of running a network (image
    files are read; a path that cannot be read is an error, as in the real extract)."""

    calls: list = []  # noqa: RUF012 (the test reads what extract was asked)

    def extract(self, X, *, maps=False, input_size="fit", on_error="raise", map_fn=None):
        sources, _ = val.check_images(X)
        type(self).calls.append((len(sources), input_size))
        n = len(sources)
        res = ExtractionResult(gap=np.full((n, C), np.nan, np.float32), maps=[None] * n,
                               image_hw=[None] * n, input_hw=[None] * n)
        for i, src in enumerate(sources):
            try:
                src = src if isinstance(src, np.ndarray) else read_image(src)
            except ImageReadError as exc:
                res.errors.append(exc)
                continue
            m = made_up_maps(src, input_size)
            res.gap[i] = m.mean(axis=(0, 1))
            res.maps[i] = map_fn(i, m) if map_fn is not None else m
            res.image_hw[i] = src.shape[:2]
        return res


def made_up_meta(input_size=(64, 32)) -> dict:
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
    model.fit_features(X.astype(np.float32), y, made_up_meta())
    model.training_info_ = {"n_images": 40, "features_file": "f.joblib"}
    return model, X.astype(np.float32), y


@pytest.fixture
def negatives():
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(5)]


def cell_edges(n_cells: int, n_pixels: int) -> list[int]:
    return [int(np.rint(i * n_pixels / n_cells)) for i in range(n_cells + 1)]


def brute_force(model, images, scales, window, per_image, nms_iou, margin):
    """Every window of every image and scale scored one at a time, then greedy NMS by hand."""
    wh, ww = window
    picked = []
    for k, image in enumerate(images):
        found = []
        for s in scales:
            m = made_up_maps(image, s).astype(np.float64)
            rows = cell_edges(m.shape[0], image.shape[0])
            cols = cell_edges(m.shape[1], image.shape[1])
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

