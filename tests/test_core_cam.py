"""Tests for gapsvm.core.cam: the pure-numpy CAM math, checked against independent
computations, on examples and as properties (hypothesis).

No TensorFlow here: the maps are random arrays and the heads are scikit-learn models fitted on
their spatial means, so every identity is checked against scikit-learn's own
``decision_function`` or a plain numpy score.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import fresh_python, imported_modules
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from gapsvm.core.cam import class_activation_map, class_weights, normalize_cam, upsample_cam

CAM_PY = Path(__file__).resolve().parents[1] / "gapsvm" / "core" / "cam.py"

# Pure numpy examples are cheap (the profile in conftest.py sets the rest).
FAST = settings(max_examples=60)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
dims = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 24))


@st.composite
def maps_and_weights(draw):
    h, w, k = draw(dims)
    maps = draw(arrays(np.float32, (h, w, k), elements=finite))
    weights = draw(arrays(np.float64, (k,), elements=finite))
    bias = draw(finite)
    return maps, weights, float(bias)


def _tol(maps: np.ndarray, weights: np.ndarray) -> float:
    # The CAM is returned as float32: allow float32 rounding of the largest partial sum.
    return 1e-5 * float(np.abs(maps).sum(axis=(0, 1)) @ np.abs(weights) + 1.0)



def _random_maps(rng: np.random.Generator, n: int, h: int, w: int, k: int) -> np.ndarray:
    # Post-ReLU maps are non-negative and sparse; mimic that so means are not all alike.
    maps = rng.gamma(0.7, 2.0, size=(n, h, w, k)) * (rng.random((n, h, w, k)) < 0.6)
    return maps.astype(np.float32)


def test_cam_module_imports_no_deep_learning_framework() -> None:
    roots = {n.split(".")[0] for n in imported_modules(CAM_PY)}
    # The standard library aside, OpenCV and numpy only.
    assert roots - set(sys.stdlib_module_names) <= {"cv2", "numpy"}, roots


def test_importing_cam_does_not_load_tensorflow() -> None:
    # A fresh interpreter: in this one another test may already have imported TensorFlow.
    code = (
        "import sys, gapsvm.core.cam; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    assert fresh_python(code, timeout=120).stdout.strip() == "[]"


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


def _resize_by_hand(cam: np.ndarray, size_hw: tuple[int, int], kernel) -> np.ndarray:
    """Separable resampling with half-pixel centres and replicated borders, as OpenCV's."""

    def axis(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            x = (o + 0.5) * n_in / n_out - 0.5
            base = int(np.floor(x))
            for j in range(base - 2, base + 3):
                m[o, min(max(j, 0), n_in - 1)] += kernel(x - j)
        return m

    rows, cols = axis(cam.shape[0], size_hw[0]), axis(cam.shape[1], size_hw[1])
    return rows @ cam.astype(np.float64) @ cols.T


def _linear(t: float) -> float:
    return max(0.0, 1.0 - abs(t))


def _cubic(t: float, a: float = -0.75) -> float:  # Keys' kernel with OpenCV's a = -0.75
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0


def test_upsample_interpolations_match_hand_resampling() -> None:
    cam = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    size = (40, 56)  # stride 8, so every output pixel has one exact source position
    bilinear = upsample_cam(cam, size)
    np.testing.assert_allclose(bilinear, _resize_by_hand(cam, size, _linear), atol=1e-5)
    np.testing.assert_array_equal(upsample_cam(cam, size, "bilinear"), bilinear)  # the default
    bicubic = upsample_cam(cam, size, interpolation="bicubic")
    assert bicubic.shape == size and bicubic.dtype == np.float32
    np.testing.assert_allclose(bicubic, _resize_by_hand(cam, size, _cubic), atol=1e-3)
    assert np.abs(bicubic - bilinear).max() > 0.05  # a visibly different map


def test_bicubic_equals_bilinear_on_a_constant_map() -> None:
    flat = np.full((4, 6), 2.5, np.float32)
    np.testing.assert_allclose(upsample_cam(flat, (33, 47), "bicubic"),
                               upsample_cam(flat, (33, 47), "bilinear"), atol=1e-5)


def test_unknown_interpolation_is_a_clear_error() -> None:
    from gapsvm.core.cam import INTERPOLATIONS, fuse_cams

    for bad in ("nearest", "BICUBIC", None):
        with pytest.raises(ValueError, match=r"unknown interpolation .*known: bilinear, bicubic"):
            upsample_cam(np.zeros((2, 2)), (4, 4), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown interpolation"):
        upsample_cam(np.zeros((4, 4)), (4, 4), "cubic")  # checked even when no resize is needed
    with pytest.raises(ValueError, match="unknown interpolation"):
        fuse_cams([np.zeros((2, 2))], (4, 4), "lanczos")
    assert list(INTERPOLATIONS) == ["bilinear", "bicubic"]


# -- properties -----------------------------------------------------------------------------
@FAST
@given(maps_and_weights())
def test_cam_spatial_mean_plus_intercept_is_the_linear_score(mwb) -> None:
    maps, w, b = mwb
    cam = class_activation_map(maps, w)
    assert cam.shape == maps.shape[:2] and cam.dtype == np.float32
    # Independent: score the GAP vector directly, in float64, by explicit summation.
    gap = maps.astype(np.float64).sum(axis=(0, 1)) / (maps.shape[0] * maps.shape[1])
    score = float(sum(gap[k] * w[k] for k in range(len(w)))) + b
    h, wd = maps.shape[:2]
    assert abs(float(cam.astype(np.float64).sum()) / (h * wd) + b - score) <= _tol(maps, w)


@FAST
@given(maps_and_weights(), st.integers(0, 6))
def test_each_cam_cell_is_the_weighted_channel_sum_at_that_cell(mwb, seed) -> None:
    maps, w, _ = mwb
    cam = class_activation_map(maps, w)
    rng = np.random.default_rng(seed)
    y, x = rng.integers(maps.shape[0]), rng.integers(maps.shape[1])
    want = float(np.dot(maps[y, x].astype(np.float64), w))
    assert abs(float(cam[y, x]) - want) <= _tol(maps[y : y + 1, x : x + 1], w)


@FAST
@given(st.integers(1, 4), dims, st.integers(0, 2**31 - 1))
def test_batched_cam_equals_one_map_at_a_time(n, hwk, seed) -> None:
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(n, *hwk)).astype(np.float32)
    weights = rng.normal(size=(n, hwk[2]))
    batched = class_activation_map(maps, weights)
    for i in range(n):
        np.testing.assert_array_equal(batched[i], class_activation_map(maps[i], weights[i]))


@FAST
@given(arrays(np.float64, st.integers(1, 16), elements=finite), finite)
def test_binary_class_weights_are_minus_and_plus_the_single_row(row, intercept):
    W, b = class_weights(row[None, :], np.array([intercept]), 2)
    np.testing.assert_array_equal(W[1], row)
    np.testing.assert_array_equal(W[0], -row)
    assert (b[1], b[0]) == (intercept, -intercept)


# -- normalisation and upsampling ----------------------------------------------------------
@FAST
@given(arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=finite))
def test_normalized_cam_spans_exactly_zero_to_one_and_keeps_the_order(cam):
    out = normalize_cam(cam)
    assert out.shape == cam.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    if cam.max() > cam.min():
        assert out.min() == 0.0 and abs(float(out.max()) - 1.0) < 1e-6
        assert out.flat[np.argmax(cam)] == out.max() and out.flat[np.argmin(cam)] == 0.0
        # Monotone: a larger input cell never gets a smaller normalised value.
        order = np.argsort(cam, axis=None, kind="stable")
        assert np.all(np.diff(out.ravel()[order]) >= -1e-6)
    else:
        assert np.all(out == 0.0)  # a constant map carries no "where": all zero, never NaN


@FAST
@given(
    arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
           elements=finite)
)
def test_normalization_of_a_batch_is_per_map(batch):
    out = normalize_cam(batch)
    for i in range(len(batch)):
        np.testing.assert_array_equal(out[i], normalize_cam(batch[i]))


@FAST
@given(
    arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 8)), elements=finite),
    st.integers(1, 90),
    st.integers(1, 90),
)
def test_upsampling_gives_the_requested_shape_within_the_input_range(cam, h, w):
    up = upsample_cam(cam, (h, w))
    assert up.shape == (h, w) and up.dtype == np.float32
    # Bilinear interpolation is a convex combination of input cells: no overshoot.
    span = float(cam.max()) - float(cam.min())
    slack = 1e-5 * (abs(float(cam.max())) + abs(float(cam.min())) + span + 1)
    assert up.min() >= cam.min() - slack and up.max() <= cam.max() + slack


@FAST
@given(finite, st.integers(1, 6), st.integers(1, 6), st.integers(1, 70), st.integers(1, 70))
def test_upsampling_a_constant_map_stays_constant(value, h, w, H, W):
    up = upsample_cam(np.full((h, w), value, np.float32), (H, W))
    np.testing.assert_allclose(up, np.float32(value), rtol=1e-6, atol=1e-6)


def test_fuse_cams_is_the_mean_of_the_upsampled_maps() -> None:
    # several network inputs of one image: each map upsampled to the image, then averaged
    from gapsvm.core.cam import fuse_cams

    rng = np.random.default_rng(3)
    small, large = rng.random((4, 6)).astype(np.float32), rng.random((8, 12)).astype(np.float32)
    fused = fuse_cams([small, large], (32, 48))
    want = (upsample_cam(small, (32, 48)) + upsample_cam(large, (32, 48))) / 2
    assert fused.shape == (32, 48) and fused.dtype == np.float32
    np.testing.assert_allclose(fused, want, rtol=1e-6)
    np.testing.assert_array_equal(fuse_cams([small], (32, 48)), upsample_cam(small, (32, 48)))
    cubic = fuse_cams([small, large], (32, 48), interpolation="bicubic")
    want = (upsample_cam(small, (32, 48), "bicubic") + upsample_cam(large, (32, 48), "bicubic")) / 2
    np.testing.assert_allclose(cubic, want, rtol=1e-6)
    assert not np.allclose(cubic, fused)
