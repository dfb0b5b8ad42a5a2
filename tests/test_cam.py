"""Tests for gapsvm.cam: the pure-numpy CAM math, checked against independent computations.

No TensorFlow here: the maps are random arrays and the heads are scikit-learn models fitted on
their spatial means, so every identity is checked against scikit-learn's own
``decision_function``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from gapsvm.core.cam import class_activation_map, class_weights, normalize_cam, upsample_cam
from gapsvm.core.overlay import overlay

CAM_PY = Path(__file__).resolve().parents[1] / "gapsvm" / "cam.py"


def _random_maps(rng: np.random.Generator, n: int, h: int, w: int, k: int) -> np.ndarray:
    # Post-ReLU maps are non-negative and sparse; mimic that so means are not all alike.
    maps = rng.gamma(0.7, 2.0, size=(n, h, w, k)) * (rng.random((n, h, w, k)) < 0.6)
    return maps.astype(np.float32)


def test_cam_module_imports_no_deep_learning_framework() -> None:
    tree = ast.parse(CAM_PY.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "cv2", "numpy"}, roots


def test_importing_cam_does_not_load_tensorflow() -> None:
    # A fresh interpreter: in this one another test may already have imported TensorFlow.
    code = (
        "import sys, gapsvm.cam; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_multiclass_cam_mean_plus_intercept_is_decision_function() -> None:
    rng = np.random.default_rng(0)
    maps = _random_maps(rng, 60, 5, 7, 24)
    gap = maps.mean(axis=(1, 2))
    y = np.repeat(["a", "b", "c"], 20)
    gap[y == "b", :8] += 1.0  # make the problem learnable so the weights are not all ~0
    maps[y == "b", :, :, :8] += 1.0
    clf = LogisticRegression(max_iter=2000).fit(gap, y)
    W, b = class_weights(clf.coef_, clf.intercept_, 3)
    want = clf.decision_function(gap)
    for c in range(3):
        cams = class_activation_map(maps, np.tile(W[c], (len(maps), 1)))
        assert cams.shape == (60, 5, 7)
        got = cams.mean(axis=(1, 2), dtype=np.float64) + b[c]
        np.testing.assert_allclose(got, want[:, c], rtol=1e-5, atol=1e-5)


def test_binary_sign_convention_class0_is_minus_w() -> None:
    rng = np.random.default_rng(1)
    maps = _random_maps(rng, 40, 4, 3, 16)
    gap = maps.mean(axis=(1, 2))
    y = np.where(gap[:, 0] + 0.3 * rng.standard_normal(40) > np.median(gap[:, 0]), "yes", "no")
    clf = LinearSVC().fit(gap, y)
    W, b = class_weights(clf.coef_, clf.intercept_, 2)
    np.testing.assert_array_equal(W[1], clf.coef_[0])
    np.testing.assert_array_equal(W[0], -clf.coef_[0])
    np.testing.assert_array_equal(b, [-clf.intercept_[0], clf.intercept_[0]])
    d = clf.decision_function(gap)
    cam1 = np.stack([class_activation_map(m, W[1]) for m in maps])
    cam0 = np.stack([class_activation_map(m, W[0]) for m in maps])
    np.testing.assert_allclose(cam0, -cam1)
    np.testing.assert_allclose(cam1.mean(axis=(1, 2)) + b[1], d, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cam0.mean(axis=(1, 2)) + b[0], -d, rtol=1e-5, atol=1e-5)
    # The class with the larger score is the one scikit-learn predicts (classes_ is sorted).
    scores = np.stack([cam0.mean(axis=(1, 2)) + b[0], cam1.mean(axis=(1, 2)) + b[1]], axis=1)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(axis=1)], clf.predict(gap))


def test_class_weights_rejects_row_count_mismatch() -> None:
    with pytest.raises(ValueError, match="2 weight rows and 2 intercepts for 3 classes"):
        class_weights(np.ones((2, 4)), np.ones(2), 3)


def test_float16_maps_are_accumulated_in_high_precision() -> None:
    rng = np.random.default_rng(2)
    maps = (rng.random((6, 5, 512)) * 60).astype(np.float16)
    w = rng.standard_normal(512)
    want = maps.astype(np.float64) @ w
    got = class_activation_map(maps, w)
    assert got.dtype == np.float32
    # Summing 512 float16 products in float16 would be off by whole units; float32 output
    # rounding is the only error allowed.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_batched_cam_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    maps = _random_maps(rng, 5, 3, 4, 8)
    w = rng.standard_normal((5, 8))
    batch = class_activation_map(maps, w)
    for i in range(5):
        np.testing.assert_allclose(batch[i], class_activation_map(maps[i], w[i]), rtol=1e-6)


def test_channel_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="maps have 8 channels but the weights have 7"):
        class_activation_map(np.zeros((2, 2, 8)), np.zeros(7))
    with pytest.raises(ValueError, match="cannot combine"):
        class_activation_map(np.zeros((3, 2, 2, 8)), np.zeros((2, 8)))


def test_normalize_bounds_per_map() -> None:
    rng = np.random.default_rng(4)
    cams = rng.standard_normal((3, 6, 5)) * np.array([1, 100, 1e-3])[:, None, None]
    out = normalize_cam(cams)
    assert out.dtype == np.float32 and out.shape == cams.shape
    # Each map on its own: its minimum goes to 0 and its maximum to 1, order kept.
    np.testing.assert_allclose(out.min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(out.max(axis=(1, 2)), 1.0)
    for c, o in zip(cams, out, strict=True):
        np.testing.assert_allclose(o, (c - c.min()) / np.ptp(c), atol=1e-6)


def test_normalize_constant_map_is_zero_not_nan() -> None:
    out = normalize_cam(np.full((4, 4), 3.5))
    assert np.all(out == 0.0)


def test_upsample_shape_and_half_pixel_alignment() -> None:
    cam = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    up = upsample_cam(cam, (32, 32))
    assert up.shape == (32, 32) and up.dtype == np.float32
    # Cell i summarises pixels 16i..16i+15 with its centre at 16i + 7.5: the outer half-cells
    # keep the cell's own value, and the middle is a linear ramp between neighbouring cells.
    assert np.all(up[:8, :8] == 0.0) and np.all(up[:8, 24:] == 1.0)
    assert np.all(up[24:, :8] == 2.0) and np.all(up[24:, 24:] == 3.0)
    np.testing.assert_allclose(up[0, 8:24], (np.arange(8, 24) + 0.5 - 8) / 16, atol=1e-6)
    assert upsample_cam(np.zeros((3, 5)), (7, 11)).shape == (7, 11)


def test_upsample_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        upsample_cam(np.zeros((2, 2, 2)), (4, 4))
    with pytest.raises(ValueError, match="positive"):
        upsample_cam(np.zeros((2, 2)), (0, 4))


def test_overlay_is_uint8_rgb_of_image_size_and_red_where_cam_peaks() -> None:
    image = np.full((64, 96, 3), 128, dtype=np.uint8)
    cam = np.zeros((4, 6), dtype=np.float32)
    cam[0, 5] = 1.0  # hottest cell: top right
    cam[3, 0] = -1.0  # coldest cell: bottom left
    out = overlay(image, cam, alpha=0.6)
    assert out.dtype == np.uint8 and out.shape == image.shape
    r, g, b = (out[..., i].astype(int) for i in range(3))
    red = (r > g + 60) & (r > b + 60)
    ys, xs = np.nonzero(red)
    # Red appears around the hottest cell (centre pixel (7.5, 87.5)) and nowhere else.
    assert red[4, 90] and red.sum() > 20
    assert ys.max() < 24 and xs.min() >= 64, (ys.max(), xs.min())
    hot, cold = out[4, 90], out[60, 4]
    # RGB order: the jet map's hot end is red (channel 0), its cold end blue (channel 2).
    assert int(hot[0]) - max(hot[1], hot[2]) > 60, hot
    assert int(cold[2]) - max(cold[0], cold[1]) > 60, cold


def test_overlay_alpha_zero_returns_the_image() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(overlay(image, rng.random((2, 3)), alpha=0.0), image)


def test_overlay_rejects_non_uint8_or_bad_alpha() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        overlay(np.zeros((4, 4, 3), dtype=np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((2, 2)), alpha=1.5)
