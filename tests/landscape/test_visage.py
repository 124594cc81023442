"""VISAGE and basin metrics on hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.visage import basin_halfwidths, mean_std, summarize, visage_paper, visage_reference


def test_paper_definition_1d():
    # points below 100: 60, 0, 10 -> margins 40, 100, 90 -> mean 76.666...
    assert visage_paper(np.array([100, 60, 0, 10, 100])) == pytest.approx(230 / 3)


def test_paper_definition_2d_and_nan_ignored():
    grid = np.array([[100, 50, np.nan], [20, 0, 100]])
    assert visage_paper(grid) == pytest.approx((50 + 80 + 100) / 3)


def test_edge_cases():
    assert visage_paper(np.full(5, 100.0)) == 0.0
    assert visage_paper(np.zeros(5)) == 100.0
    assert visage_reference(np.full(5, 100.0)) == 0.0
    assert visage_reference(np.zeros(5)) == 100.0


def test_reference_variant_stops_at_basin_edges():
    # left edge: index 2 (first <100 after a 100); right edge: index 4 -> mean(100-[50,0,30]) = 73.33
    curve = np.array([20, 100, 50, 0, 30, 100, 10])
    assert visage_reference(curve) == pytest.approx((50 + 100 + 70) / 3)
    # the paper definition also counts the points outside the basin
    assert visage_paper(curve) == pytest.approx((80 + 50 + 100 + 70 + 90) / 5)


def test_reference_with_no_edge_on_one_side_uses_grid_end():
    curve = np.array([0, 10, 40, 100, 100])  # no edge on the left
    assert visage_reference(curve) == pytest.approx((100 + 90 + 60) / 3)


def test_reference_is_1d_only():
    with pytest.raises(ValueError):
        visage_reference(np.zeros((2, 2)))


def test_halfwidths_interpolate_crossings():
    coords = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    asr = np.array([100, 40, 0, 60, 100])
    hw = basin_halfwidths(coords, asr, 50)
    assert hw.neg == pytest.approx(0.1 + 0.1 * (10 / 60))
    assert hw.pos == pytest.approx(0.1 * 50 / 60)
    hw100 = basin_halfwidths(coords, asr, 100)
    assert hw100 == (pytest.approx(0.2), pytest.approx(0.2))


def test_halfwidth_nan_when_never_reached():
    hw = basin_halfwidths(np.array([-1.0, 0.0, 1.0]), np.array([0, 0, 100]), 100)
    assert math.isnan(hw.neg) and hw.pos == pytest.approx(1.0)


def test_mean_std():
    m = mean_std([70, 80, 90])
    assert (m.mean, m.std, m.n) == (80.0, pytest.approx(10.0), 3)
    assert mean_std([5]).std == 0.0


def test_summary_on_non_square_grid_uses_origin_profiles():
    alphas, betas = np.array([-1.0, 0.0, 1.0]), np.array([-1.0, 0.0, 1.0, 2.0])
    asr = np.array([[100, 100, 100, 100], [100, 10, 100, 100], [100, 100, 100, 100]], dtype=float)
    s = summarize(alphas, betas, asr)
    assert s["asr_origin_pct"] == 10.0
    assert s["visage"] == 90.0 and s["visage_reference"] is None
    assert s["halfwidth100_alpha_pos"] == pytest.approx(1.0)
    assert s["halfwidth100_beta_neg"] == pytest.approx(1.0)
