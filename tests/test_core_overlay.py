"""Tests for gapsvm.core.overlay, the one overlay path: the jet blend (:func:`overlay`) and
the picture gapsvm writes (:func:`draw_overlay`: boxes scaled to the display size, the peak
marked)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gapsvm.core.boxes import Box
from gapsvm.core.overlay import GT_COLOR, PRED_COLOR, draw_overlay, overlay

FAST = settings(max_examples=60)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


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


# -- draw_overlay: the picture gapsvm writes ------------------------------------------------
GRAY = 100


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max, y_max) of the True pixels, maxima inclusive."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _colour(out: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(out == np.array(rgb, np.uint8), axis=2)


def test_draw_overlay_without_extras_is_the_plain_overlay() -> None:
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    cam = rng.random((3, 2))
    np.testing.assert_array_equal(draw_overlay(image, cam, alpha=0.4),
                                  overlay(image, cam, alpha=0.4))


def test_draw_overlay_scales_boxes_to_the_display_size() -> None:
    image = np.full((40, 60, 3), GRAY, np.uint8)
    cam = np.zeros((3, 4), np.float32)
    gt, pred = Box(10, 5, 30, 20), Box(40, 24, 56, 36)  # image pixels
    # alpha=0: the heat map adds nothing, so every non-gray pixel is a box or the marker.
    out = draw_overlay(image, cam, alpha=0.0, gt_boxes=[gt], pred_boxes=[pred],
                       display_hw=(80, 120), gt_thickness=1)
    assert out.shape == (80, 120, 3) and out.dtype == np.uint8
    # Twice the size: the boxes' outlines sit on the doubled borders (exclusive maxima, so
    # the last drawn pixel is 2 * x_max - 1), 1 px for the ground truth, 2 px (one pixel
    # either side) for predictions.
    assert _bbox(_colour(out, GT_COLOR)) == (20, 10, 59, 39)
    x0, y0, x1, y1 = _bbox(_colour(out, PRED_COLOR))
    assert abs(x0 - 80) <= 1 and abs(y0 - 48) <= 1 and abs(x1 - 111) <= 1 and abs(y1 - 71) <= 1
    # Inside and outside the boxes, the (resized) image itself.
    assert np.all(out[20:35, 25:55] == GRAY) and np.all(out[:8, :] == GRAY)
    # The same boxes without display_hw are drawn at their own coordinates.
    own = draw_overlay(image, cam, alpha=0.0, gt_boxes=[gt], gt_thickness=1)
    assert own.shape == image.shape and _bbox(_colour(own, GT_COLOR)) == (10, 5, 29, 19)


def test_draw_overlay_marks_the_peak_at_its_display_position() -> None:
    image = np.full((40, 60, 3), GRAY, np.uint8)
    cam = np.zeros((3, 4), np.float32)
    assert not _colour(draw_overlay(image, cam, alpha=0.0), (255, 255, 255)).any()
    out = draw_overlay(image, cam, alpha=0.0, peak_xy=(15, 10), display_hw=(80, 120))
    # Pixel (15, 10) covers display pixels 30..31 x 20..21: the cross is centred on their
    # corner, (31, 21), white over black so it shows on any colour.
    white, black = _colour(out, (255, 255, 255)), _colour(out, (0, 0, 0))
    assert white[21, 31] and white[21, 25] and white[27, 31]  # centre and both arms
    assert black.any() and not black[21, 31]
    changed = np.any(out != GRAY, axis=2)
    x0, y0, x1, y1 = _bbox(changed)
    assert abs((x0 + x1) / 2 - 31) <= 1 and abs((y0 + y1) / 2 - 21) <= 1
    assert x1 - x0 <= 24 and y1 - y0 <= 24  # an 18-px cross of 4-px lines, not a line across
