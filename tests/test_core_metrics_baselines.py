"""Tests for gapsvm.core.metrics.baselines: the centre, uniform and random maps, the centre
box, and the registry ``gapsvm evaluate`` reads them from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.metrics import box_area_share, energy_in_box
from gapsvm.core.metrics.baselines import (
    BASELINES,
    BaselineInput,
    MethodMaps,
    center_box,
    center_map,
    method_maps,
    pool_to_grid,
    random_map,
    uniform_map,
)


def test_center_map_peaks_at_centre_and_is_symmetric() -> None:
    odd = center_map((5, 7))
    assert np.unravel_index(np.argmax(odd), odd.shape) == (2, 3)
    assert odd[2, 3] == 1.0 and (odd > 0).all() and (odd <= 1).all()
    even = center_map((4, 6, 3))
    assert even.shape == (4, 6)
    np.testing.assert_allclose(even, even[::-1, :])
    np.testing.assert_allclose(even, even[:, ::-1])
    central = even[1:3, 2:4]
    np.testing.assert_allclose(central, central.max())
    assert central.max() == even.max()
    with pytest.raises(ValueError):
        center_map((5, 5), sigma=0)
    with pytest.raises(TypeError):
        center_map((5, 5), sigma="0.25")


def test_center_map_sigma_is_relative_to_each_side() -> None:
    wide = center_map((5, 25))  # centre (2, 12)
    # Two rows (2/5 of the height) and ten columns (10/25 of the width) from the centre are
    # the same relative offset, so the values agree despite the aspect ratio.
    assert wide[0, 12] == pytest.approx(wide[2, 22])
    assert wide[2, 22] == pytest.approx(math.exp(-0.5 * (10 / (0.25 * 25)) ** 2))


def test_uniform_map() -> None:
    np.testing.assert_array_equal(uniform_map((3, 4, 3)), np.ones((3, 4)))


def test_random_map_is_reproducible_bounded_and_smooth() -> None:
    a = random_map((50, 70), rng=3)
    np.testing.assert_array_equal(a, random_map((50, 70), rng=np.random.default_rng(3)))
    assert not np.array_equal(a, random_map((50, 70), rng=4))
    assert a.shape == (50, 70) and a.min() >= 0.0 and a.max() <= 1.0
    # Per-pixel uniform noise has mean |neighbour difference| of 1/3; cells of 16 px are
    # smooth, so the difference is roughly 16 times smaller.
    assert np.abs(np.diff(a, axis=1)).mean() < 0.06
    assert np.abs(np.diff(a, axis=0)).mean() < 0.06


def test_random_map_with_unit_cells_is_the_raw_noise() -> None:
    np.testing.assert_array_equal(
        random_map((6, 9), rng=5, cell=1), np.random.default_rng(5).random((6, 9))
    )
    with pytest.raises(ValueError):
        random_map((6, 9), rng=5, cell=0)


@pytest.mark.parametrize(
    ("shape", "fraction", "expected"),
    [
        ((100, 200), 0.5, (50, 25, 150, 75)),
        ((100, 200, 3), 1.0, (0, 0, 200, 100)),
        ((5, 5), 0.5, (1, 1, 4, 4)),  # 2.5 rounds up to 3, margins of 1 on each side
        ((10, 10), 0.01, (4, 4, 5, 5)),  # never empty
    ],
)
def test_center_box(shape: tuple, fraction: float, expected: tuple) -> None:
    assert center_box(shape, fraction).as_tuple() == expected


def test_center_box_validation() -> None:
    with pytest.raises(ValueError):
        center_box((10, 10), 0.0)
    with pytest.raises(ValueError):
        center_box((10, 10), 1.5)


# ------------------------------------------------------------- maps on the feature grid


def test_pool_to_grid_averages_each_cell() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((48, 80))
    grid = pool_to_grid(image, (3, 5))
    expected = image.reshape(3, 16, 5, 16).mean(axis=(1, 3))  # 16 x 16 pixels per cell
    np.testing.assert_allclose(grid, expected, rtol=1e-6)
    assert grid.dtype == np.float64
    same = pool_to_grid(expected.astype(np.float32), (3, 5))
    assert same.dtype == np.float64
    np.testing.assert_array_equal(same, expected.astype(np.float32))


def test_method_maps_boxes_follow_the_mode() -> None:
    cam = np.zeros((40, 60))
    cam[5:15, 5:20] = 1.0
    cam[25:35, 30:55] = 0.8
    grid = np.zeros((3, 4))
    largest = method_maps(cam, grid, 0.5, "largest")
    assert largest.largest == largest.predicted == cam_to_boxes(cam, 0.5, "largest")
    everything = method_maps(cam, grid, 0.5, "all")
    assert everything.largest == largest.largest
    assert everything.predicted == cam_to_boxes(cam, 0.5, "all")
    assert len(everything.predicted) == 2
    assert everything.image is cam and everything.grid is grid


# ------------------------------------------------------------- the registry


def _given(mode: str = "all", seed: int = 0) -> BaselineInput:
    return BaselineInput(image_hw=(48, 80), grid_hw=(3, 5), cell=16, threshold=0.2, mode=mode,
                         rng=np.random.default_rng(seed))


def test_registry_lists_the_baselines_in_table_order() -> None:
    assert list(BASELINES) == ["centre", "uniform", "random", "gaussian"]


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_gives_both_maps_and_its_boxes(name: str) -> None:
    got = BASELINES[name](_given())
    assert isinstance(got, MethodMaps)
    assert got.image.shape == (48, 80) and got.grid.shape == (3, 5)
    assert np.isfinite(got.image).all() and np.isfinite(got.grid).all()
    assert got.largest and all(isinstance(b, Box) for b in got.largest + got.predicted)


def test_centre_baseline_is_the_centred_gaussian_and_half_size_box() -> None:
    got = BASELINES["centre"](_given())
    np.testing.assert_array_equal(got.image, center_map((48, 80)))
    np.testing.assert_array_equal(got.grid, center_map((3, 5)))
    assert got.largest == got.predicted == [center_box((48, 80))] == [Box(20, 12, 60, 36)]
    # A box, not a map: MaxBoxAccV2 scores this box at every threshold instead of sweeping.
    assert got.sweep is False


def test_gaussian_baseline_is_the_centre_map_boxed_like_a_cam() -> None:
    got = BASELINES["gaussian"](_given(mode="largest"))
    np.testing.assert_array_equal(got.image, center_map((48, 80)))
    np.testing.assert_array_equal(got.grid, center_map((3, 5)))
    assert got.sweep is True
    # Boxed at the threshold like the map under test: the ellipse where the Gaussian is at
    # least 0.2 of its peak, i.e. |offset| <= sigma * side * sqrt(-2 ln 0.2) from the centre.
    half = 0.25 * np.sqrt(-2 * np.log(0.2))
    xs = np.flatnonzero(np.abs(np.arange(80) - 39.5) <= half * 80)
    ys = np.flatnonzero(np.abs(np.arange(48) - 23.5) <= half * 48)
    assert got.largest == got.predicted == [Box(xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)]


def test_uniform_baseline_spreads_its_energy_evenly_and_boxes_the_image() -> None:
    got = BASELINES["uniform"](_given())
    np.testing.assert_array_equal(got.grid, np.ones((3, 5)))
    gt = [Box(0, 0, 20, 12), Box(40, 24, 80, 48)]
    assert energy_in_box(got.image, gt) == box_area_share((48, 80), gt)
    assert got.largest == got.predicted == [Box(0, 0, 80, 48)]


def test_random_baseline_is_reproducible_noise_with_one_value_per_cell() -> None:
    got = BASELINES["random"](_given(seed=4))
    np.testing.assert_array_equal(got.image, random_map((48, 80), np.random.default_rng(4), 16))
    np.testing.assert_allclose(got.grid, got.image.reshape(3, 16, 5, 16).mean(axis=(1, 3)),
                               rtol=1e-6)
    again = BASELINES["random"](_given(seed=4))
    np.testing.assert_array_equal(again.image, got.image)
    assert again.predicted == got.predicted == cam_to_boxes(got.image, 0.2, "all")
    largest = BASELINES["random"](_given(mode="largest", seed=4))
    assert largest.predicted == largest.largest == cam_to_boxes(got.image, 0.2, "largest")
