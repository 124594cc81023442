"""Figure export for papers: PNG/SVG/PDF via kaleido 1.x (headless Chromium), data as CSV/JSON,
and self-contained interactive HTML (``landscape export`` and the dashboard's Export page call it;
``landscape.figures.figure1`` builds on it, so this module does not import that one).

Figures come from the same builders the pages use, laid out for print by ``landscape.figures.paper``; lines
are labelled from the scan's spec (model · system prompt · direction), every label can be replaced,
and the title and VISAGE go to the caption (printed, and returned by ``caption_for``) rather than into
the figure. Kaleido drives the system Chromium (Debian's ``chromium``; ``BROWSER_PATH`` overrides
where it is looked for).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cache import Store
from landscape.core.stats import wilson_arrays
from landscape.core.uncertainty import visage_interval
from landscape.core.visage import scan_summary
from landscape.figures import FORMATS, PAPER_PRESETS, ExportError
from landscape.figures.paper import (
    apply_paper_preset,
    check_labels,
    interval_note,
    relabel,
    scan_label,
    visage_text,
)
from landscape.figures.plots import Curve, build_contour_figure, build_curve_figure, build_surface_figure

# Flags for a headless Chromium driven by Playwright (the browser tests and docker/smoke.py): no
# sandbox (root in a container), no GPU, and none of its own network traffic (updates, sync, QUIC).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("BROWSER_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _scan(store: Store, key: str) -> tuple[dict, object]:
    record = store.scan_record(key)
    if record is None:
        raise ExportError(f"no scan with key {key!r}")
    return record, store.scan_grid(key)


def scan_curve(record: dict, g, label: str | None = None) -> Curve:
    """A 1D scan's curve, labelled from its spec, with each point's 95% Wilson interval."""
    n = g.values.get("n_prompts")
    if n is None or not np.isfinite(n).any():
        n = np.full(np.shape(g.values["asr_pct"]), float(record.get("n_prompts") or np.nan))
    return Curve(
        name=label or scan_label(record),
        alphas=g.alphas,
        asr=g.values["asr_pct"],
        incoherent=g.values.get("incoherent_pct"),
        ci=wilson_arrays(g.values["asr_pct"], n),
    )


def figure_for(
    store: Store, key: str, kind: str, threshold: float = 50.0, labels: dict[str, str] | None = None
) -> go.Figure:
    """The scan's figure of ``kind``; ``labels`` replaces texts (``landscape.figures.paper.LABEL_KEYS``)."""
    labels = labels or {}
    try:
        check_labels(labels)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    record, g = _scan(store, key)
    visage = scan_summary(record, g.values["asr_pct"]).get("visage")  # recomputed, never the stored one
    if kind == "curve":
        if g.betas is not None:
            raise ExportError("a curve needs a 1D scan; use --kind surface or contour for 2D")
        fig = build_curve_figure([scan_curve(record, g, labels.get("curve"))])
    elif g.betas is None:
        raise ExportError(f"--kind {kind} needs a 2D scan; use --kind curve for 1D")
    elif kind == "surface":
        fig = build_surface_figure(g.alphas, g.betas, g.values["asr_pct"], visage=visage)
    else:
        fig = build_contour_figure(g.alphas, g.betas, g.values["asr_pct"], threshold=threshold, visage=visage)
    relabel(fig, {k: v for k, v in labels.items() if k != "curve"})
    return fig


def caption_for(store: Store, key: str, kind: str, threshold: float = 50.0, ci=...) -> str:
    """The text a paper puts under the figure: what it shows, the grid, VISAGE with its interval
    (``ci``: the scan's interval when the caller has it cached, e.g. the dashboard's
    ``data.visage_ci``; else it is bootstrapped here)."""
    record, g = _scan(store, key)
    summ = scan_summary(record, g.values["asr_pct"])
    what = {"curve": "1D safety landscape", "surface": "Safety basin", "contour": "Safety basin (contour)"}
    grid = f"{len(g.alphas)} α" + (f" × {len(g.betas)} β" if g.betas is not None else "")
    span = f"α ∈ [{g.alphas[0]:.3g}, {g.alphas[-1]:.3g}]" + (
        f", β ∈ [{g.betas[0]:.3g}, {g.betas[-1]:.3g}]" if g.betas is not None else ""
    )
    if ci is ...:
        ci = visage_interval(store, [key]) if summ.get("complete") else None
    text = f"{what.get(kind, kind)} of {scan_label(record)}: {grid} points, {span}"
    if record.get("n_prompts"):
        text += f", {record['n_prompts']} prompts"
    if kind == "contour":
        text += f"; white line: basin edge at ASR = {threshold:g}%, star: θ₀"
    if kind == "curve":
        text += "; shaded: 95% Wilson interval of each point's ASR"
    return f"{text}. {visage_text(summ.get('visage'), ci)}.{interval_note(ci)} (scan {key[:12]})"


@contextlib.contextmanager
def render_session():
    """One Chromium for many renders (kaleido's sync server): ~0.4 s a figure instead of ~5 s."""
    import kaleido

    _browser()
    kaleido.start_sync_server(silence_warnings=True)
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def _browser() -> None:
    if chromium_path() is None:
        raise ExportError("static export needs Chromium: apt-get install chromium (or set BROWSER_PATH)")
    os.environ.setdefault("BROWSER_PATH", chromium_path())
    _pdf_without_margins()


async def _print_pdf_full_page(tab) -> str:
    """kaleido's ``print_pdf`` with no page margin: the page is the figure's size (the ``@page``
    rule kaleido writes), so the figure fills it exactly."""
    from kaleido._kaleido_tab import _devtools_utils

    response = await tab.send_command(
        "Page.printToPDF",
        params={
            "printBackground": True,
            "marginTop": 0,
            "marginBottom": 0,
            "marginLeft": 0,
            "marginRight": 0,
            "preferCSSPageSize": True,
            "pageRanges": "1",
        },
    )
    _devtools_utils._raise_error(response)
    return response.get("result", {}).get("data")


def _pdf_without_margins() -> None:
    """kaleido 1.5 prints a PDF with a 0.1 in margin on every side of a page the figure's own size:
    the figure sat 0.1 in lower and further right than in the PNG and lost 0.2 in at the bottom and
    right (the 1D curve's α title, Figure 1's CI lines, legends). Its printer is swapped for one
    without margins; ``tests/dashboard/test_print_layout.py`` compares every PDF's ink with its PNG's,
    so a kaleido that changes this code fails there, not in a paper."""
    from kaleido._kaleido_tab import _devtools_utils

    if _devtools_utils.print_pdf is not _print_pdf_full_page:
        _devtools_utils.print_pdf = _print_pdf_full_page


def table_for(store: Store, key: str) -> pd.DataFrame:
    """The data behind a scan's figures: one row per grid point."""
    g = store.scan_grid(key)
    rows = []
    betas = g.betas if g.betas is not None else np.array([0.0])
    for i, a in enumerate(g.alphas):
        for j, b in enumerate(betas):
            idx = (i,) if g.betas is None else (i, j)
            rows.append(
                {
                    "i": i,
                    "j": j,
                    "alpha": a,
                    "beta": b,
                    **{name: v[idx] for name, v in sorted(g.values.items()) if name not in ("alpha", "beta")},
                }
            )
    df = pd.DataFrame(rows)
    # coordinates without linspace's float noise (0.05000000000000002 → 0.05), counts as integers
    for axis in ("alpha", "beta"):
        df[axis] = df[axis].map(lambda v: float(f"{v:.12g}"))
    for name in COUNT_COLUMNS:
        if name in df:
            df[name] = df[name].round().astype("Int64")
    return df


COUNT_COLUMNS = ("n_prompts", "tokens", "ended_budget", "ended_early_stop", "ended_eos", "n_benign")


def figure_bytes(
    fig: go.Figure,
    fmt: str,
    preset: str = "double-column",
    show_title: bool | None = None,
    laid_out: bool = False,
) -> bytes:
    """PNG (3× scale for print), SVG or PDF (vector, fonts embedded by Chromium), or HTML.

    ``show_title``: keep the in-figure title (default: off at print presets). ``laid_out``: ``fig``
    is already sized for print (a composed Figure 1); rendered at its own size."""
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode()
    if preset not in PAPER_PRESETS:
        raise ExportError(f"unknown preset {preset!r}; choose from {', '.join(PAPER_PRESETS)}")
    if laid_out:
        sized, w, h = fig, fig.layout.width, fig.layout.height
    else:
        sized, w, h = apply_paper_preset(fig, preset, show_title)
    _browser()
    import kaleido  # noqa: F401  (fails clearly when missing)

    return sized.to_image(format=fmt, width=w, height=h, scale=3 if fmt == "png" else 1)


def export_scan(
    store: Store,
    key: str,
    kind: str,
    fmt: str,
    out: Path,
    preset: str = "double-column",
    threshold: float = 50.0,
    labels: dict[str, str] | None = None,
    show_title: bool | None = None,
) -> Path:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "csv":
        out.write_text(table_for(store, key).to_csv(index=False))
    elif fmt == "json":
        record = store.scan_record(key)
        out.write_text(
            json.dumps(
                {
                    "key": key,
                    "record": record,
                    "points": json.loads(table_for(store, key).to_json(orient="records")),
                },
                indent=2,
            )
        )
    else:
        fig = figure_for(store, key, kind, threshold, labels)
        out.write_bytes(figure_bytes(fig, fmt, preset, show_title))
    return out
