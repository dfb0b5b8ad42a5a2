"""Property-based tests (hypothesis) for the pure CAM math and the head folding.

Every property is checked against an independent computation: the class score is recomputed
from the spatial mean of the maps with plain numpy (or taken from scikit-learn's own
``decision_function``), never from gapsvm's CAM code. No TensorFlow is involved.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC

from gapsvm.core.cam import class_activation_map, class_weights, normalize_cam, upsample_cam
from gapsvm.core.head import GapHead, effective_linear
from gapsvm.core.overlay import overlay

# Pure numpy examples are cheap; examples that fit a scikit-learn head cost ~10 ms each.
# database=None: no .hypothesis folder in the checkout; a failure prints its example.
_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
FAST = settings(max_examples=60, **_COMMON)
FIT = settings(max_examples=25, **_COMMON)

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


# -- heads fitted by scikit-learn: folding and the binary sign convention ------------------
HEADS = {
    "logreg": lambda: LogisticRegression(max_iter=2000),
    "linearsvc": lambda: LinearSVC(max_iter=20000),
    "ridge": RidgeClassifier,
    "std+logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "minmax+svc": lambda: make_pipeline(MinMaxScaler(), LinearSVC(max_iter=20000)),
    "maxabs+ridge": lambda: make_pipeline(MaxAbsScaler(), RidgeClassifier()),
    "pca+logreg": lambda: make_pipeline(PCA(4), LogisticRegression(max_iter=2000)),
    "std+pcaw+svc": lambda: make_pipeline(
        StandardScaler(), PCA(4, whiten=True), LinearSVC(max_iter=20000)
    ),
}


def _fit(rng: np.random.Generator, name: str, n_classes: int, hwk: tuple[int, int, int]):
    h, w, k = hwk
    n = 12 * n_classes
    y = np.repeat(np.arange(n_classes), 12)
    # Class-dependent post-ReLU-like maps, so the heads learn something non-trivial.
    centers = rng.normal(size=(n_classes, k)) * 2
    maps = np.maximum(rng.normal(size=(n, h, w, k)) + centers[y][:, None, None, :], 0)
    maps = maps.astype(np.float32)
    labels = np.array([f"class {c}" for c in range(n_classes)])[y]
    head = GapHead(HEADS[name]()).fit(maps.mean(axis=(1, 2)), labels)
    return head, maps


@FIT
@given(
    st.sampled_from(sorted(HEADS)),
    st.integers(2, 4),
    st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(5, 12)),
    st.integers(0, 2**31 - 1),
)
def test_folded_head_cams_add_up_to_sklearn_decision_function(name, n_classes, hwk, seed):
    rng = np.random.default_rng(seed)
    head, maps = _fit(rng, name, n_classes, hwk)
    W, b = head.cam_weights()
    assert W.shape == (n_classes, hwk[2]) and b.shape == (n_classes,)
    gap = maps.mean(axis=(1, 2))
    dec = np.asarray(head.classifier_.decision_function(gap), dtype=np.float64)
    scores = np.empty((len(maps), n_classes))
    for c in range(n_classes):
        cams = class_activation_map(maps, np.tile(W[c], (len(maps), 1)))
        scores[:, c] = cams.astype(np.float64).mean(axis=(1, 2)) + b[c]
    scale = max(1.0, float(np.abs(dec).max()))
    if n_classes == 2:
        # scikit-learn's binary convention: positive decision means classes_[1]; gapsvm
        # gives class 1 the row +w and class 0 the row -w, with intercepts +b and -b.
        np.testing.assert_allclose(scores[:, 1], dec, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(scores[:, 0], -dec, rtol=1e-4, atol=1e-4 * scale)
    else:
        np.testing.assert_allclose(scores, dec, rtol=1e-4, atol=1e-4 * scale)
    # The class with the largest CAM-derived score is the one scikit-learn predicts.
    pred = head.predict(gap)
    clear = np.sort(scores, axis=1)[:, -1] - np.sort(scores, axis=1)[:, -2] > 1e-3 * scale
    np.testing.assert_array_equal(head.classes_[scores.argmax(axis=1)][clear], pred[clear])


@FIT
@given(st.sampled_from(sorted(HEADS)), st.integers(0, 2**31 - 1))
def test_effective_linear_is_the_affine_map_on_unseen_points(name, seed):
    rng = np.random.default_rng(seed)
    head, _ = _fit(rng, name, 3, (2, 2, 8))
    W, b = effective_linear(head.classifier_)
    X_new = rng.normal(size=(7, 8)) * 3  # off the training distribution on purpose
    got = np.asarray(head.classifier_.decision_function(X_new))
    want = X_new @ W.T + b
    # Steps fitted on float32 features keep float32 parameters: allow their rounding.
    scale = max(1.0, float(np.abs(got).max()))
    np.testing.assert_allclose(want.ravel() if got.ndim == 1 else want, got, rtol=1e-5,
                               atol=1e-5 * scale)


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


@FAST
@given(
    st.integers(1, 40), st.integers(1, 40),
    arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=finite),
    st.floats(0.0, 1.0), st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_overlay_keeps_the_image_size_and_blends_within_bounds(H, W, cam, alpha, seed):
    image = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = overlay(image, cam, alpha=alpha)
    assert out.shape == image.shape and out.dtype == np.uint8
    if alpha == 0.0:
        np.testing.assert_array_equal(out, image)
    # Each pixel is alpha * heat + (1 - alpha) * image, so it moves at most alpha * 255.
    assert np.abs(out.astype(int) - image.astype(int)).max() <= alpha * 255 + 1
