"""The paper's Figure 1 as one file: basin surface, contour with the basin edge and θ₀, the 1D curve
with its 95% Wilson band, and VISAGE printed under each panel (Peng et al. 2024, "Navigating the
Safety Landscape", Fig. 1). For a study: one 1D panel per model (mean ± std over its K directions,
pooled Wilson band), VISAGE mean ± std and its bootstrap interval under each.

Panels are placed by pixel arithmetic at the preset's width (single column: stacked; double column:
side by side), so tick labels, axis titles and the text under each panel have their own room; one
colour axis (ASR 0–100) serves the surface and the contour. No legend: the caption says what the
white line, the star and the bands are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from cache import Store, StoreError
from landscape.core.stats import BOOTSTRAP_B, BOOTSTRAP_SEED, wilson_arrays
from landscape.core.uncertainty import visage_interval
from landscape.core.visage import mean_std, scan_summary, summarize
from landscape.figures import PAPER_PRESETS, ExportError
from landscape.figures.export import _scan, figure_bytes, scan_curve
from landscape.figures.paper import (
    SURFACE_CAMERA,
    check_labels,
    pt_to_px,
    scan_label,
    visage_text,
)
from landscape.figures.plots import (
    FONT,
    Curve,
    build_contour_figure,
    build_curve_figure,
    build_surface_figure,
)

FIGURE1_CAMERA = {"eye": {"x": 2.6, "y": -2.6, "z": 1.5}}  # a narrower scene than a single figure's
HEIGHT_IN = {"single-column": 2.3, "double-column": 2.7, "slide": 5.0}  # per row of panels


@dataclass
class Panel:
    kind: str  # "surface" | "contour" | "curve"
    text: list[str]  # lines printed under the panel
    alphas: np.ndarray
    betas: np.ndarray | None = None
    asr: np.ndarray | None = None
    curve: Curve | None = None


def scan_panels(store: Store, key: str, threshold: float, labels: dict[str, str]) -> tuple[list[Panel], str]:
    """A 2D scan: surface, contour and its β = 0 slice; a 1D scan: its curve."""
    record, g = _scan(store, key)
    summ = scan_summary(record, g.values["asr_pct"])
    ci = visage_interval(store, [key]) if summ.get("complete") else None
    vis = _lines(visage_text(summ.get("visage"), ci))
    label = labels.get("curve") or scan_label(record)
    if g.betas is None:
        return [
            Panel("curve", ["(a) 1D landscape", *vis], g.alphas, curve=scan_curve(record, g, label))
        ], label
    asr = np.asarray(g.values["asr_pct"], dtype=float)
    j0 = int(np.argmin(np.abs(g.betas)))
    sliced = asr[:, j0]
    n = g.values.get("n_prompts")
    n0 = n[:, j0] if n is not None and np.isfinite(n).any() else float(record.get("n_prompts") or np.nan)
    curve = Curve(label, g.alphas, sliced, ci=wilson_arrays(sliced, n0))
    vis1 = summarize(g.alphas, None, sliced, kind="1d").get("visage")
    panels = [
        Panel("surface", ["(a) basin surface", *vis], g.alphas, g.betas, asr),
        Panel("contour", [f"(b) contour, edge at {threshold:g}%", *vis], g.alphas, g.betas, asr),
        Panel(
            "curve",
            [f"(c) slice at β = {g.betas[j0]:.3g}", *_lines(visage_text(vis1))],
            g.alphas,
            curve=curve,
        ),
    ]
    return panels, label


def find_study(store: Store, study: str) -> dict:
    """The one study record named ``study`` (or whose key starts with it); a one-line error else."""
    records = []
    for k in store.keys("study:"):
        try:
            rec = store.get_json(k)
        except StoreError:
            continue
        if isinstance(rec, dict) and (rec.get("name") == study or k.removeprefix("study:").startswith(study)):
            records.append(rec)
    if len(records) != 1:
        raise ExportError(f"{'no' if not records else 'more than one'} study matches {study!r}")
    return records[0]


def study_panels(store: Store, study: str, labels: dict[str, str]) -> tuple[list[Panel], str]:
    """One curve panel per model of a study that has 1D landscapes."""
    records = [find_study(store, study)]
    models = [m for m in records[0].get("models", []) if m.get("visage_keys")]
    if not models:
        raise ExportError(f"study {study!r} has no 1D landscapes yet")
    check_labels(labels, tuple(m["name"] for m in models))
    panels = []
    for k, m in enumerate(models):
        curves = [scan_curve(*_scan(store, key)) for key in m["visage_keys"]]
        name = labels.get(m["name"], m["name"])
        curve = _family(curves, name)
        vis = mean_std(
            scan_summary(store.scan_record(key), c.asr).get("visage")
            for key, c in zip(m["visage_keys"], curves, strict=True)
        )
        ci = visage_interval(store, m["visage_keys"]) if vis.n == len(curves) else None
        text = visage_text(vis.mean if vis.n else None, ci, vis.std, vis.n)
        panels.append(Panel("curve", [f"({chr(97 + k)}) {name}", *_lines(text)], curve.alphas, curve=curve))
    return panels, records[0]["name"]


def _family(curves: list[Curve], name: str) -> Curve:
    if len(curves) == 1:
        return Curve(name, curves[0].alphas, curves[0].asr, ci=curves[0].ci)
    asr = np.vstack([c.asr for c in curves])  # (K, n): K directions share the grid
    return Curve(name, curves[0].alphas, asr)


def _lines(text: str) -> list[str]:
    """VISAGE text split at its clauses, so it fits under a narrow panel."""
    return [part.strip() for part in text.replace(", 95%", ";95%").replace(" ± ", ";± ").split(";")]


def build_figure1(panels: list[Panel], preset: str, threshold: float = 50.0, labels: dict | None = None):
    """Compose the panels at ``preset``'s width; returns the laid-out figure (width/height set)."""
    labels = labels or {}
    p = PAPER_PRESETS[preset]
    px = pt_to_px(p["font_pt"])
    W = int(p["width_in"] * 96)
    cols = 1 if preset == "single-column" else min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    row_h = int(HEIGHT_IN[preset] * 96)
    H = rows * row_h
    text_h = max(len(pn.text) for pn in panels) * px * 1.3 + px * 0.8
    axis_h = px * 3.0  # tick labels + the x title under a cartesian panel
    left = px * 3.6  # y tick labels + the y title
    bar = px * 4.4  # the colour bar and its ticks right of the contour
    col_w = W / cols
    fig = go.Figure()
    font = {"family": FONT, "size": px}
    annotations, shapes = [], []
    colorbar = {
        "thickness": 8,
        "title": {"text": labels.get("asr", "ASR (%)"), "side": "right", "font": font},
        "tickfont": font,
        "tickvals": [0, 25, 50, 75, 100],
        "xpad": 0,
        "yanchor": "bottom",
        "xanchor": "left",
        "lenmode": "fraction",
    }
    n_xy = 0
    for k, pn in enumerate(panels):
        r, c = divmod(k, cols)
        x0, x1 = c * col_w, (c + 1) * col_w
        y_bottom = H - (r + 1) * row_h  # px from the figure's bottom
        y0, y1 = y_bottom + text_h, y_bottom + row_h - px * 0.5
        if pn.kind == "surface":
            surf = build_surface_figure(pn.alphas, pn.betas, pn.asr).data[0]
            surf.showscale = False  # the contour's colour bar serves both: the same scale, 0–100
            fig.add_trace(surf)
            axis3d = {"title_font": font, "tickfont": font, "nticks": 3}
            fig.update_layout(
                scene={
                    "domain": {"x": [x0 / W, x1 / W], "y": [y_bottom / H + text_h / H, y1 / H]},
                    "xaxis": {**axis3d, "title_text": labels.get("alpha", "α")},
                    "yaxis": {**axis3d, "title_text": labels.get("beta", "β")},
                    "zaxis": {
                        **axis3d,
                        "title_text": labels.get("asr", "ASR (%)"),
                        "range": [0, 100],
                        "tickvals": [50, 100],
                    },
                    "camera": FIGURE1_CAMERA if cols > 1 else SURFACE_CAMERA,
                    "aspectmode": "manual",
                    "aspectratio": {"x": 1, "y": 1, "z": 0.7},
                }
            )
        else:
            n_xy += 1
            xa, ya = ("xaxis", "yaxis") if n_xy == 1 else (f"xaxis{n_xy}", f"yaxis{n_xy}")
            xr, yr = xa.replace("axis", ""), ya.replace("axis", "")
            right = x1 - (bar if pn.kind == "contour" else px * 0.6)
            dom_x = [x0 + left, right]
            dom_y = [y0 + axis_h, y1]
            if pn.kind == "contour":  # a box of the data's aspect (equal α/β scaling), centred
                aspect = np.ptp(pn.betas) / max(np.ptp(pn.alphas), 1e-12)
                w, h = dom_x[1] - dom_x[0], dom_y[1] - dom_y[0]
                w, h = (w, w * aspect) if h / w > aspect else (h / aspect, h)
                cx = (dom_x[0] + dom_x[1]) / 2
                dom_x, dom_y = [cx - w / 2, cx + w / 2], [dom_y[1] - h, dom_y[1]]
                right = dom_x[1]
            dom_x, dom_y = [v / W for v in dom_x], [v / H for v in dom_y]
            if pn.kind == "contour":
                src = build_contour_figure(pn.alphas, pn.betas, pn.asr, threshold=threshold).data
                src[0].colorbar = {
                    **colorbar,
                    "x": (right + px * 0.4) / W,
                    "y": dom_y[0],
                    "len": dom_y[1] - dom_y[0],
                }
                src[1].contours.labelfont = font
                src[2].marker.size = px
                titles = (
                    labels.get("alpha", "α"),
                    labels.get("beta", "β"),
                    {"scaleanchor": xr, "constrain": "domain"},
                )
            else:
                src = [t for t in build_curve_figure([pn.curve]).data if "incoherent" not in (t.name or "")]
                show_y = c == 0 or panels[k - 1].kind != "curve"
                titles = (
                    labels.get("alpha", "α"),
                    labels.get("asr", "ASR (%)") if show_y else "",
                    {"range": [-2, 102]},
                )
                shapes.append(
                    {
                        "type": "line",
                        "x0": 0,
                        "x1": 0,
                        "y0": 0,
                        "y1": 1,
                        "xref": xr,
                        "yref": f"{yr} domain",
                        "line": {"color": "#888", "dash": "dash", "width": 1},
                    }
                )
            for t in src:
                t.update(xaxis=xr, yaxis=yr, showlegend=False)
                fig.add_trace(t)
            axis = {
                "title_font": font,
                "tickfont": font,
                "title_standoff": 2,
                "automargin": False,
                "nticks": 5,
            }
            fig.update_layout(
                {
                    xa: {
                        **axis,
                        "domain": dom_x,
                        "anchor": yr,
                        "title_text": titles[0],
                        "ticklabelstandoff": round(px * 0.6),
                    },
                    ya: {
                        **axis,
                        "domain": dom_y,
                        "anchor": xr,
                        "title_text": titles[1],
                        "ticklabelstandoff": round(px * 0.4),
                        **titles[2],
                    },
                }
            )
        annotations.append(
            {
                "text": "<br>".join(pn.text),
                "x": (x0 + x1) / 2 / W,
                "y": (y_bottom + text_h - px * 0.3) / H,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "top",
                "showarrow": False,
                "font": font,
                "align": "center",
            }
        )
    fig.update_layout(
        width=W,
        height=H,
        font=font,
        template="plotly_white",
        showlegend=False,
        margin={"l": 0, "r": 0, "t": 0, "b": 0, "pad": 0, "autoexpand": False},
        annotations=annotations,
        shapes=shapes,
    )
    return fig


def figure1_caption(panels: list[Panel], subject: str, threshold: float, study: bool) -> str:
    if study:
        return (
            f"1D safety landscapes of study {subject}, one panel per model: ASR (%) against α, mean over "
            "its random directions with ± std band (or the 95% Wilson band of a single direction); "
            f"VISAGE mean ± std over directions and its 95% bounds bootstrap CI over prompts (B = {BOOTSTRAP_B}, seed {BOOTSTRAP_SEED}) under each."
        )
    if len(panels) == 1:
        return f"1D safety landscape of {subject}; shaded: 95% Wilson interval of each point's ASR. VISAGE under the panel."
    return (
        f"Safety basin of {subject}: (a) ASR surface over (α, β); (b) its contour, white line the basin edge at "
        f"ASR = {threshold:g}%, star θ₀; (c) the β = 0 slice with each point's 95% Wilson interval. "
        f"VISAGE (paper definition) and its 95% bounds bootstrap CI over prompts (B = {BOOTSTRAP_B}, seed {BOOTSTRAP_SEED}) under each panel."
    )


def export_figure1(
    store: Store,
    scan: str | None,
    study: str | None,
    fmt: str,
    out: Path | None,
    preset: str = "double-column",
    threshold: float = 50.0,
    labels: dict[str, str] | None = None,
) -> tuple[Path, str]:
    """Write Figure 1 for a scan or a study as one PDF/SVG/PNG; returns (path, caption)."""
    blob, caption, stem = figure1_bytes(store, scan, study, fmt, preset, threshold, labels)
    out = out or Path(f"{stem}-figure1-{preset}.{fmt}")
    out.write_bytes(blob)
    return out, caption


def figure1_bytes(store, scan, study, fmt, preset="double-column", threshold=50.0, labels=None):
    """(file bytes, caption, file stem) of Figure 1."""
    labels = labels or {}
    if fmt not in ("pdf", "svg", "png"):
        raise ExportError(f"Figure 1 is exported as pdf, svg or png, not {fmt!r}")
    if preset not in PAPER_PRESETS:
        raise ExportError(f"unknown preset {preset!r}; choose from {', '.join(PAPER_PRESETS)}")
    try:
        if study is not None:
            panels, subject = study_panels(store, study, labels)
            stem = f"study-{subject}"
        elif scan is not None:
            check_labels(labels)
            key = store.resolve_scan_key(scan)
            panels, subject = scan_panels(store, key, threshold, labels)
            stem = key[:12]
        else:
            raise ExportError("Figure 1 needs a scan key or --study NAME")
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    fig = build_figure1(panels, preset, threshold, labels)
    caption = figure1_caption(panels, subject, threshold, study is not None)
    return figure_bytes(fig, fmt, preset, laid_out=True), caption, stem
