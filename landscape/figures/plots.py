"""Pure figure builders: store data in, ``go.Figure`` out (no Streamlit, no I/O).

Shared by the dashboard pages and the CLI's ``landscape export``. The look follows the paper's
Figure 1: a viridis basin surface over an ASR colour bar fixed at 0–100, the 2D contour with θ₀
marked at the centre, and the 1D curve. Values arrive as the store gives them: arrays shaped
``(len(alphas), len(betas))`` (``indexing="ij"``). Plotly's ``Surface``/``Contour``/``Heatmap``
index ``z`` as ``(y, x)``; ``plotly_z`` is the one place that converts, with alpha on x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

ASR_RANGE = (0.0, 100.0)
COLORSCALE = "Viridis"
FONT = "Arial, Helvetica, sans-serif"
LEGEND_BG = "#d0d0d0"  # behind a legend that shows a white line
CAMERA = {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}}
PALETTE = ["#3b528b", "#21918c", "#e6a700", "#b5367a", "#5ec962", "#440154", "#fde725", "#8c564b"]


@dataclass
class Curve:
    """One 1D landscape (or the mean of K) to draw."""

    name: str
    alphas: np.ndarray
    asr: np.ndarray  # (n,) or (K, n): K directions give a mean ± std band
    incoherent: np.ndarray | None = None
    benign_refusal: np.ndarray | None = None
    nll: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    ci: tuple[np.ndarray, np.ndarray] | None = None  # (lo, hi) 95% Wilson interval of the ASR, (n,)
    metric: str = "ASR"  # what ``asr`` is: on the benign set it is the share answered, not an ASR


def _band(alphas, lo, hi, color: str, opacity: float, name: str) -> go.Scatter:
    """A filled band between ``lo`` and ``hi`` (missing points left out), behind the curve."""
    ok = np.isfinite(lo) & np.isfinite(hi)
    x = np.asarray(alphas)[ok]
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([np.clip(hi[ok], 0, 100), np.clip(lo[ok], 0, 100)[::-1]]),
        fill="toself",
        mode="lines",
        line={"width": 0},
        fillcolor=color,
        opacity=opacity,
        hoverinfo="skip",
        showlegend=False,
        name=name,
    )


def plotly_z(values: np.ndarray) -> np.ndarray:
    """Store layout ``[i_alpha, j_beta]`` → Plotly's ``z[y, x]`` with alpha on x, beta on y."""
    return np.asarray(values, dtype=float).T


def _nan_to_none(a: np.ndarray) -> list:
    return np.where(np.isfinite(a), a, None).tolist()


def _axis_title(name: str) -> dict:
    return {"title": {"text": name}}


def _hover_name(name: str) -> str:
    """A trace name as hover text: HTML-escaped, wrapped near 40 characters, never cut."""
    import html
    import textwrap

    return "<br>".join(textwrap.wrap(html.escape(name), 40)) or " "


def build_curve_figure(
    curves: list[Curve], title: str = "1D safety landscape", selectable: bool = False
) -> go.Figure:
    """ASR vs alpha per curve (mean ± band over directions), incoherent rate dotted, θ₀ line.

    A curve's 95% Wilson interval (``Curve.ci``), when given, is a lighter band of its own
    (named "… 95% CI"). Capability (benign over-refusal, NLL), when recorded, goes on a second y axis.
    ``selectable``: each ASR marker carries ``customdata = [i, k]`` (grid index, curve number), so
    the dashboard can open the clicked point (exports leave it out).
    """
    fig = go.Figure()
    has_capability = False
    for k, c in enumerate(curves):
        color = PALETTE[k % len(PALETTE)]
        asr = np.atleast_2d(np.asarray(c.asr, dtype=float))
        mean = np.nanmean(asr, axis=0) if asr.shape[0] > 1 else asr[0]
        if c.ci is not None:
            lo, hi = (np.asarray(v, dtype=float) for v in c.ci)
            fig.add_trace(_band(c.alphas, lo, hi, color, 0.12, f"{c.name} 95% CI"))
        if asr.shape[0] > 1:
            std = np.nanstd(asr, axis=0, ddof=1)
            fig.add_trace(_band(c.alphas, mean - std, mean + std, color, 0.2, f"{c.name} ± std"))
        label = c.name + (f" (mean of {asr.shape[0]})" if asr.shape[0] > 1 else "")
        fig.add_trace(
            go.Scatter(
                x=c.alphas,
                y=_nan_to_none(mean),
                mode="lines+markers",
                name=f"{label}: {c.metric}",
                line={"color": color, "width": 2.5},
                marker={"size": 6},
                customdata=[[i, k] for i in range(len(mean))] if selectable else None,
                hovertemplate=f"{_hover_name(label)}<br>α = %{{x:.4g}}<br>{c.metric} = %{{y:.1f}}%<extra></extra>",
            )
        )
        rates = (
            ("incoherent", c.incoherent, {"dash": "dot", "width": 1.5}, "y"),
            ("benign refusal", c.benign_refusal, {"dash": "dash"}, "y"),
            ("reference NLL", c.nll, {"dash": "longdashdot"}, "y2"),
        )
        for what, values, line, yaxis in rates:
            if values is None or not np.isfinite(values).any():
                continue
            has_capability |= what != "incoherent"
            mean_values = np.nanmean(np.atleast_2d(values), axis=0)
            fig.add_trace(
                go.Scatter(
                    x=c.alphas,
                    y=_nan_to_none(mean_values),
                    mode="lines",
                    yaxis=yaxis,
                    name=f"{c.name}: {what}",
                    line={"color": color, **line},
                )
            )
    fig.add_vline(x=0, line={"color": "#888", "dash": "dash", "width": 1})
    fig.update_layout(
        title={"text": title},
        xaxis=_axis_title("α (perturbation coefficient)"),
        yaxis={**_axis_title("ASR / rate (%)"), "range": [-2, 102]},
        font={"family": FONT},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 60, "t": 60, "b": 60},
    )
    if has_capability:
        fig.update_layout(yaxis2={**_axis_title("NLL (nats/token)"), "overlaying": "y", "side": "right"})
    return fig


def _colorbar(title: str = "ASR (%)", tickvals: tuple = (0, 25, 50, 75, 100)) -> dict:
    return {"title": {"text": title}, "tickvals": list(tickvals)}


def build_surface_figure(
    alphas, betas, asr, title: str = "Safety basin", visage: float | None = None
) -> go.Figure:
    """3D viridis surface, z fixed to 0–100, contours projected on the floor, a fixed camera."""
    z = plotly_z(asr)
    fig = go.Figure(
        go.Surface(
            x=np.asarray(alphas),
            y=np.asarray(betas),
            z=z,
            colorscale=COLORSCALE,
            cmin=0,
            cmax=100,
            colorbar=_colorbar(),
            name="ASR",
            contours={
                "z": {
                    "show": True,
                    "usecolormap": True,
                    "project": {"z": True},
                    "start": 0,
                    "end": 100,
                    "size": 10,
                }
            },
            hovertemplate="α=%{x:.3f}<br>β=%{y:.3f}<br>ASR=%{z:.0f}%<extra></extra>",
        )
    )
    sub = f"VISAGE {visage:.2f}" if visage is not None else None
    fig.update_layout(
        title={"text": title + (f"<br><sub>{sub}</sub>" if sub else "")},
        scene={
            "xaxis": _axis_title("α"),
            "yaxis": _axis_title("β"),
            "zaxis": {**_axis_title("ASR (%)"), "range": list(ASR_RANGE)},
            "camera": CAMERA,
            "aspectmode": "manual",
            "aspectratio": {"x": 1, "y": 1, "z": 0.7},
        },
        uirevision="basin",  # keeps the user's camera across reruns
        font={"family": FONT},
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
    )
    return fig


def build_contour_figure(
    alphas,
    betas,
    asr,
    threshold: float = 50.0,
    title: str = "Safety basin (contour)",
    visage: float | None = None,
    zmin: float = 0.0,
    zmax: float = 100.0,
    selectable: bool = False,
) -> go.Figure:
    """Filled contour on a fixed colour scale, the basin boundary as an isoline at ``threshold``,
    θ₀ marked at (0, 0), equal axis scaling (trajectories: ``build_trajectory_figure``).

    ``selectable``: a layer of nearly invisible markers, one per grid point with ``customdata =
    [i, j]``, on top (Plotly reports no selection on contour traces; exports leave it out)."""
    a, b, z = np.asarray(alphas), np.asarray(betas), plotly_z(asr)
    fig = go.Figure()
    fig.add_trace(
        go.Contour(
            x=a,
            y=b,
            z=z,
            colorscale=COLORSCALE,
            zmin=zmin,
            zmax=zmax,
            colorbar=_colorbar(),
            contours={"start": 0, "end": 100, "size": 10},
            name="ASR",
            hovertemplate="α=%{x:.3f}<br>β=%{y:.3f}<br>ASR=%{z:.0f}%<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            x=a,
            y=b,
            z=z,
            showscale=False,
            name=f"basin edge (ASR={threshold:g}%)",
            contours={
                "coloring": "none",
                "start": threshold,
                "end": threshold,
                "size": 1,
                "showlabels": True,
            },
            line={"color": "white", "width": 3},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0],
            y=[0],
            mode="markers",
            name="θ₀ (unperturbed)",
            marker={"symbol": "star", "size": 16, "color": "#e6550d", "line": {"color": "white", "width": 1}},
        )
    )
    if selectable:
        fig.data[0].hoverinfo = "skip"  # the grid points' layer says the same, at the points
        fig.add_trace(_grid_points(a, b, np.asarray(asr, dtype=float)))
    sub = f"VISAGE {visage:.2f}" if visage is not None else None
    fig.update_layout(
        title={"text": title + (f"<br><sub>{sub}</sub>" if sub else "")},
        xaxis=_axis_title("α"),
        yaxis={**_axis_title("β"), "scaleanchor": "x", "scaleratio": 1},
        font={"family": FONT},
        template="plotly_white",
        # grey behind the legend: the basin edge's swatch is a white line, invisible on white
        legend={"orientation": "h", "y": -0.2, "bgcolor": LEGEND_BG},
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
    )
    return fig


def _grid_points(alphas: np.ndarray, betas: np.ndarray, asr: np.ndarray) -> go.Scatter:
    """Every (i, j) of the grid as a clickable, nearly invisible marker (``customdata = [i, j]``)."""
    ii, jj = np.meshgrid(np.arange(len(alphas)), np.arange(len(betas)), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    text = [f"{v:.0f}%" if np.isfinite(v) else "not computed" for v in asr[ii, jj]]
    return go.Scatter(
        x=alphas[ii],
        y=betas[jj],
        mode="markers",
        name="grid points",
        showlegend=False,
        marker={"size": 14, "color": "white", "opacity": 0.02},
        customdata=np.stack([ii, jj], axis=1).tolist(),
        text=text,
        hovertemplate="α=%{x:.3f}<br>β=%{y:.3f}<br>ASR=%{text}<br>click to inspect<extra></extra>",
    )


def build_difference_figure(alphas, betas, asr_a, asr_b, name_a: str, name_b: str) -> go.Figure:
    """``b − a`` on a diverging scale centred at 0 (red: b less safe)."""
    diff = np.asarray(asr_b, dtype=float) - np.asarray(asr_a, dtype=float)
    if diff.ndim == 1:
        fig = go.Figure(
            go.Bar(
                x=np.asarray(alphas),
                y=_nan_to_none(diff),
                # a point missing on either side has no bar; its colour entry must still be a number
                marker={
                    "color": np.nan_to_num(diff).tolist(),
                    "colorscale": "RdBu_r",
                    "cmin": -100,
                    "cmax": 100,
                },
                name="ΔASR",
            )
        )
        fig.update_layout(
            yaxis={**_axis_title("ΔASR (points)"), "range": [-100, 100]}, xaxis=_axis_title("α")
        )
    else:
        fig = go.Figure(
            go.Heatmap(
                x=np.asarray(alphas),
                y=np.asarray(betas),
                z=plotly_z(diff),
                colorscale="RdBu_r",
                zmid=0,
                zmin=-100,
                zmax=100,
                colorbar=_colorbar("ΔASR (points)", (-100, -50, 0, 50, 100)),
            )
        )
        fig.update_layout(
            xaxis=_axis_title("α"), yaxis={**_axis_title("β"), "scaleanchor": "x", "scaleratio": 1}
        )
    fig.update_layout(
        title={"text": f"ASR difference: {name_b} − {name_a}"}, font={"family": FONT}, template="plotly_white"
    )
    return fig


def build_trajectory_figure(
    alphas, betas, asr, paths: dict[str, list[dict]], plane: str, title: str = "Fine-tuning trajectories"
) -> go.Figure:
    """The plane's basin contour with each run's per-epoch path over it.

    ``paths``: run → ``[{"epoch", "alpha", "beta", "asr_pct", "residual"}]``. Markers are coloured
    by the checkpoint's *measured* ASR on the same scale as the surface; the hover gives the share of
    the step that lies off the plane.
    """
    fig = build_contour_figure(alphas, betas, asr, title=title)
    fig.data = tuple(t for t in fig.data if t.name != "θ₀ (unperturbed)")
    for k, (run, path) in enumerate(paths.items()):
        fig.add_trace(
            go.Scatter(
                x=[p["alpha"] for p in path],
                y=[p["beta"] for p in path],
                mode="lines+markers+text",
                name=run,
                text=[f"e{p['epoch']}" for p in path],
                textposition="top center",
                line={"color": PALETTE[(k + 2) % len(PALETTE)], "width": 3},
                marker={
                    "size": 12,
                    "color": [p.get("asr_pct") for p in path],
                    "colorscale": COLORSCALE,
                    "cmin": ASR_RANGE[0],
                    "cmax": ASR_RANGE[1],
                    "line": {"color": PALETTE[(k + 2) % len(PALETTE)], "width": 2},
                },
                customdata=[[p.get("asr_pct"), 100 * p.get("residual", 0.0)] for p in path],
                hovertemplate=run
                + " epoch %{text}<br>α=%{x:.3f} β=%{y:.3f}<br>measured ASR %{customdata[0]:.0f}%"
                + "<br>off-plane %{customdata[1]:.0f}%<extra></extra>",
            )
        )
    names = {"interpolation": ("α (aligned → fine-tuned)", "β (random, orthogonal)"), "pca": ("PC 1", "PC 2")}
    x_title, y_title = names.get(plane, ("α", "β"))
    fig.update_layout(xaxis=_axis_title(x_title), yaxis={**_axis_title(y_title), "scaleanchor": None})
    return fig


def build_study_figure(models: list[dict]) -> go.Figure:
    """Harmful score and task accuracy per model (grouped bars, 0–100)."""
    names = [m["name"] for m in models]
    fig = go.Figure()
    for k, (field_name, label) in enumerate(
        (
            ("harmful_score_pct", "harmful score %"),
            ("task_accuracy_pct", "task accuracy %"),
            ("benign_refusal_pct", "benign refusal %"),
        )
    ):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[m.get(field_name) for m in models],
                name=label,
                marker_color=PALETTE[[3, 1, 2][k]],
                hovertemplate="%{x}<br>" + label + " %{y:.1f}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={**_axis_title("%"), "range": [0, 100]},
        title={"text": "Before / after: harmful score, task accuracy, over-refusal"},
        font={"family": FONT},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.35},
        margin={"l": 60, "r": 20, "t": 60, "b": 120},
    )
    return fig
