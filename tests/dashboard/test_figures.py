"""Figure builders as pure functions: trace types, axes, z orientation, shared colour scales."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.figures.paper import apply_paper_preset
from landscape.figures.plots import (
    Curve,
    build_contour_figure,
    build_curve_figure,
    build_difference_figure,
    build_surface_figure,
    plotly_z,
)

ALPHAS = np.array([-1.0, 0.0, 1.0])
BETAS = np.array([-0.5, 0.0, 0.5, 1.0])
ASR = np.arange(12, dtype=float).reshape(3, 4) * 8  # [i_alpha, j_beta]


def test_z_orientation_on_a_non_square_grid():
    fig = build_surface_figure(ALPHAS, BETAS, ASR)
    s = fig.data[0]
    z = np.array(s.z)
    assert z.shape == (4, 3)  # Plotly: z[y=beta][x=alpha]
    assert z[2, 0] == ASR[0, 2]  # alpha=-1, beta=0.5
    assert list(s.x) == list(ALPHAS) and list(s.y) == list(BETAS)
    assert np.array_equal(plotly_z(ASR), ASR.T)


def test_surface_has_fixed_z_range_colour_scale_and_camera():
    fig = build_surface_figure(ALPHAS, BETAS, ASR, visage=71.5)
    s = fig.data[0]
    assert s.type == "surface" and (s.cmin, s.cmax) == (0, 100)
    assert list(fig.layout.scene.zaxis.range) == [0, 100]
    assert fig.layout.scene.camera.eye.x == 1.6 and fig.layout.uirevision == "basin"
    assert s.contours.z.project.z is True
    assert "VISAGE 71.50" in fig.layout.title.text


def test_contour_has_isoline_origin_marker_and_equal_axes():
    fig = build_contour_figure(ALPHAS, BETAS, ASR, threshold=60)
    types = [t.type for t in fig.data]
    assert types.count("contour") == 2 and "scatter" in types
    iso = fig.data[1]
    assert iso.contours.start == 60 and iso.contours.end == 60 and iso.contours.coloring == "none"
    origin = [t for t in fig.data if t.type == "scatter"][-1]
    assert list(origin.x) == [0] and list(origin.y) == [0]
    assert fig.layout.yaxis.scaleanchor == "x"
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0, 100)


def test_curve_band_incoherent_and_capability_axis():
    asr = np.array([[100, 20, 0, 30, 100], [100, 40, 0, 10, 100]], dtype=float)
    c = Curve("m", np.linspace(-1, 1, 5), asr, incoherent=np.zeros((2, 5)), nll=np.ones((2, 5)))
    fig = build_curve_figure([c])
    names = [t.name for t in fig.data]
    assert any("± std" in n for n in names) and any("incoherent" in n for n in names)
    mean = [t for t in fig.data if t.name.endswith(": ASR")][0]
    assert list(mean.y) == [100, 30, 0, 20, 100]
    assert fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.xaxis.title.text.startswith("α")


def test_difference_is_centred_at_zero():
    fig = build_difference_figure(ALPHAS, BETAS, ASR, ASR + 10, "a", "b")
    h = fig.data[0]
    assert h.type == "heatmap" and h.zmid == 0 and (h.zmin, h.zmax) == (-100, 100)
    assert np.all(np.array(h.z) == 10)


def test_paper_presets_size_the_figure():
    fig, w, h = apply_paper_preset(
        build_curve_figure([Curve("m", ALPHAS, np.array([0, 10, 100.0]))]), "single-column"
    )
    assert (w, h) == (316, 249) and fig.layout.width == 316
    assert fig.layout.font.size >= 10  # 8 pt at 96 px/in


def test_curve_figure_draws_the_wilson_interval_as_a_band():
    from landscape.core.stats import wilson_arrays

    alphas = np.array([-0.2, 0.0, 0.2])
    asr = np.array([100.0, 12.5, np.nan])
    lo, hi = wilson_arrays(asr, 32)
    fig = build_curve_figure([Curve("a", alphas, asr, ci=(lo, hi))])
    (band,) = [t for t in fig.data if t.name == "a 95% CI"]
    assert band.fill == "toself" and list(band.x) == [-0.2, 0.0, 0.0, -0.2]  # the missing point is left out
    assert list(band.y) == pytest.approx([hi[0], hi[1], lo[1], lo[0]])
    assert lo[1] < 12.5 < hi[1]
    assert not [t for t in build_curve_figure([Curve("a", alphas, asr)]).data if "CI" in (t.name or "")]


@pytest.mark.parametrize("preset", [None, "single-column", "double-column", "slide"])
def test_no_legend_swatch_is_white_on_white(preset):
    """Issue 23: the contour's basin edge is a white line; its legend swatch was invisible."""
    from landscape.figures.paper import apply_paper_preset

    a, b = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    z = np.clip(100 * np.add.outer(a**2, b**2), 0, 100)
    fig = build_contour_figure(a, b, z, threshold=50)
    if preset:
        fig = apply_paper_preset(fig, preset)[0]
    white = [
        t.name
        for t in fig.data
        if t.showlegend is not False
        and t.type in ("contour", "scatter")
        and ((getattr(t, "line", None) and t.line.color == "white") or t.type == "contour")
        and t.name
    ]
    assert white, "the basin edge is in the legend"
    bg = fig.layout.legend.bgcolor
    assert bg not in (None, "white", "#fff", "#ffffff", "rgba(0,0,0,0)"), bg


def test_a_1d_difference_with_a_missing_point_draws():
    """A partial scan in Compare (a point not computed on one side) raised plotly's "Invalid
    element(s) received for the 'color' property": NaN colours were passed as None."""
    from landscape.figures.plots import build_difference_figure

    a = np.array([-1.0, 0.0, 1.0])
    fig = build_difference_figure(
        a, None, np.array([100.0, 0.0, 50.0]), np.array([np.nan, 0.0, 100.0]), "a", "b"
    )
    assert fig.data[0].y[0] is None and fig.data[0].y[2] == 50.0
