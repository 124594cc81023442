"""Print layout for the paper figures: presets sized in inches, labels from the scan's spec, captions.

A figure that reads well on screen does not survive at 3.3 in: Plotly's default legend sits on the
x-axis title, titles and VISAGE subtitles eat a third of the height, and a 3D scene's axis titles are
dropped when the scene is small. ``apply_paper_preset`` re-lays a builder's figure for print: fonts
at the preset's point size (every text, ticks included, ≥ 7 pt at the printed width), the legend in
its own row above the plot (where it covers no axis title and no data), no in-figure title unless
asked for (the title and VISAGE go to the caption, as papers do), and the 3D camera pulled back so
the α/β/ASR titles fit. Pure: figures and dicts in, figures and strings out.
"""

from __future__ import annotations

import plotly.graph_objects as go

from landscape.core.format import model_name, source_name
from landscape.core.uncertainty import interval_label
from landscape.figures import PAPER_PRESETS
from landscape.figures.plots import FONT

MIN_FONT_PT = 7.0
PX_PER_IN = 96
PT_PER_IN = 72
# Keys of the editable labels mapping; a study's figures also take its model names.
LABEL_KEYS = ("title", "curve", "alpha", "beta", "asr")
SURFACE_CAMERA = {"eye": {"x": 2.1, "y": -2.1, "z": 1.2}}  # far enough that the z title fits


def pt_to_px(pt: float) -> float:
    return pt * PX_PER_IN / PT_PER_IN


def px_to_pt(px: float) -> float:
    return px * PT_PER_IN / PX_PER_IN


def preset_size(preset: str, height_in: float | None = None) -> tuple[int, int]:
    p = PAPER_PRESETS[preset]
    return int(p["width_in"] * PX_PER_IN), int((height_in or p["height_in"]) * PX_PER_IN)


def _font(px: float) -> dict:
    return {"family": FONT, "size": px}


def relabel(fig: go.Figure, labels: dict[str, str]) -> None:
    """Axis titles and the curve label from ``labels`` (keys ``LABEL_KEYS``; others are curve names)."""
    axes = {"alpha": ("xaxis", "scene.xaxis"), "beta": ("yaxis", "scene.yaxis"), "asr": ("scene.zaxis",)}
    for key, paths in axes.items():
        if key in labels:
            for path in paths:
                if path.startswith("scene") and not fig.layout.scene.xaxis.title.text:
                    continue
                fig.update_layout({f"{path}.title.text": labels[key]})
    if "asr" in labels:
        fig.update_layout(coloraxis_colorbar_title_text=labels["asr"])
        for t in fig.data:
            if getattr(t, "colorbar", None) is not None and t.colorbar.title.text:
                t.colorbar.title.text = labels["asr"]
        if fig.layout.yaxis.title.text and fig.layout.yaxis.title.text.startswith("ASR"):
            fig.layout.yaxis.title.text = labels["asr"]
    for t in fig.data:
        name = t.name or ""
        for old, new in labels.items():
            if old == "curve" and ": " in name:
                t.name = new + name[name.index(": ") :]
            elif old not in LABEL_KEYS and name.startswith(old):
                t.name = new + name[len(old) :]


CHAR_EM = 0.56  # a character of Arial/Liberation Sans is at most ≈0.56 em wide on average
LEGEND_SWATCH_PX = 48  # the line sample and its gap before a legend text


def wrap_legend(fig: go.Figure, width_px: float, font_px: float) -> None:
    """Break legend names that would run past the figure's right edge (where print cut them, so a
    line's "ASR" or "incoherent" was lost) into lines that fit, at spaces."""
    import textwrap

    fits = max(12, int((width_px - LEGEND_SWATCH_PX) / (CHAR_EM * font_px)))
    for t in fig.data:
        if t.name and t.showlegend is not False and len(t.name) > fits and "<br>" not in t.name:
            t.name = "<br>".join(textwrap.wrap(t.name, fits, break_on_hyphens=False))


def apply_paper_preset(
    fig: go.Figure, preset: str, show_title: bool | None = None, labels: dict[str, str] | None = None
) -> tuple[go.Figure, int, int]:
    """A copy of ``fig`` laid out for print; returns (figure, width_px, height_px) at 96 px/in.

    ``show_title``: keep the in-figure title (default: only at the slide preset; print presets move it
    to the caption). ``labels``: editable texts (``LABEL_KEYS``: axis titles, the curve's label).
    """
    p = PAPER_PRESETS[preset]
    out = go.Figure(fig)
    w, h = preset_size(preset)
    px = pt_to_px(p["font_pt"])
    keep_title = (not p["print"]) if show_title is None else show_title
    if labels:
        relabel(out, labels)
        if "title" in labels:
            out.update_layout(title_text=labels["title"])
    if not keep_title:
        out.update_layout(title_text="")
    wrap_legend(out, w, px)
    gap = px * 0.6
    out.update_layout(
        width=w,
        height=h,
        font=_font(px),
        title={
            "font": _font(px * 1.15),
            "x": 0,
            "xref": "paper",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
        },
        # In its own row above the plot: it covers neither the x-axis title nor the data.
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1 + gap / h,
            "yanchor": "bottom",
            "font": _font(px),
            "itemwidth": 30,
            "tracegroupgap": 0,
            "bgcolor": fig.layout.legend.bgcolor or "rgba(0,0,0,0)",  # the contour's grey stays
        },
        margin={
            "l": 4,
            "r": 4,
            "t": px * 1.6 if keep_title else 4,
            "b": px * 0.5,
            "pad": 0,
            "autoexpand": True,
        },
    )
    if not any(t.type == "surface" for t in out.data):
        # the standoffs keep the corner tick labels (x's first, y's lowest) apart
        axis = {"title_font": _font(px), "tickfont": _font(px), "automargin": True, "title_standoff": 2}
        out.for_each_xaxis(lambda a: a.update(axis, ticklabelstandoff=round(px * 0.6)))
        out.for_each_yaxis(lambda a: a.update(axis, ticklabelstandoff=round(px * 0.4)))
    colorbar = {
        "thickness": 8,
        "title": {"side": "right", "font": _font(px)},
        "tickfont": _font(px),
        "xpad": 4,
    }
    for t in out.data:
        if t.type in ("contour", "surface", "heatmap") and getattr(t, "showscale", None) is not False:
            t.colorbar.update(colorbar)
        if t.type == "contour" and t.contours.showlabels:
            t.contours.labelfont = _font(px)
        if t.type == "scatter" and t.mode and "text" in t.mode and t.text:
            # per-point labels (trajectory epochs) crowd at print size: first and last only
            t.text = [v if k in (0, len(t.text) - 1) else "" for k, v in enumerate(t.text)]
            t.textfont = {**_font(px), "color": "white", "shadow": "auto"}
        if t.type == "scatter" and t.marker.symbol == "star":
            t.marker.size = px
    if out.layout.coloraxis.colorbar is not None:
        out.layout.coloraxis.colorbar.update(colorbar)
    if any(t.type == "surface" for t in out.data):
        axis3d = {"title_font": _font(px), "tickfont": _font(px), "nticks": 5}
        # no z tick at 0: it would sit on the α axis's first tick at the front corner
        zaxis = {**axis3d, "tickvals": [50, 100]}
        if p["width_in"] < 5:  # a narrow scene: pulled back so the z title stays inside it
            out.update_layout(scene_camera=SURFACE_CAMERA)
        out.update_layout(
            scene={"xaxis": axis3d, "yaxis": axis3d, "zaxis": zaxis},
            margin={"l": 0, "r": 0, "t": px * 1.6 if keep_title else 0, "b": 0},
        )
    return out, w, h


def direction_label(directions: list[dict]) -> str:
    """``random d₁ (seed 0)``, ``random d₁ (seed 0), d₂ (seed 5)``, ``interpolation → target``."""
    subs = "₁₂₃₄"
    parts = []
    for k, d in enumerate(directions):
        kind = d.get("kind", "random")
        if kind == "random":
            text = f"d{subs[k]} (seed {d.get('seed', 0)})"
        elif kind == "interpolation":
            text = f"→ {model_name(d.get('target') or {})}"
        else:
            text = f"d{subs[k]} from {source_name(d.get('path'))}"
        prefix = kind if k == 0 or kind != directions[k - 1].get("kind") else ""
        parts.append(f"{prefix} {text}".strip())
    return ", ".join(parts) or "?"


def scan_label(record: dict) -> str:
    """What a scan shows, from its spec: ``model · system prompt · direction`` (the default system
    prompt left out), e.g. ``aligned · random d₁ (seed 0)``."""
    spec = record.get("spec") or {}
    system = spec.get("system_prompt", "default")
    parts = [model_name(spec.get("model") or {})]  # never the store's 64-hex directory names
    if system and system != "default":
        parts.append(f"{system if len(system) <= 16 else system[:15] + '…'} prompt")
    parts.append(direction_label(spec.get("directions") or []))
    return " · ".join(parts)


def check_labels(labels: dict[str, str], extra: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(labels) - set(LABEL_KEYS) - set(extra))
    if unknown:
        allowed = ", ".join((*LABEL_KEYS, *extra))
        raise ValueError(f"unknown label {unknown[0]!r}; use one of {allowed}")


def interval_note(ci) -> str:
    """How a figure's VISAGE interval was drawn, for its caption ("" without one)."""
    if ci is None:
        return ""
    return f' 95% CI: {interval_label(ci)} (docs: methods, "VISAGE intervals").'


def visage_text(visage: float | None, ci=None, std: float | None = None, n: int = 1) -> str:
    """``VISAGE 71.50`` with its spread and bootstrap interval when known (labelled as such)."""
    if visage is None:
        return "VISAGE not available (scan incomplete)"
    text = f"VISAGE {visage:.2f}"
    if std is not None and n > 1:
        text += f" ± {std:.2f} (std over {n} directions)"
    if ci is not None:
        # short enough for a narrow panel; the caption says how it was drawn (``interval_note``)
        text += f", 95% CI [{ci.lo:.2f}, {ci.hi:.2f}]" + ("" if ci.method == "bounds" else f" ({ci.method})")
    return text
