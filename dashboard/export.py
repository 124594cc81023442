"""Figure export for papers: PNG/SVG/PDF via kaleido 1.x (headless Chromium), data as CSV/JSON,
and self-contained interactive HTML. Also the command line behind ``landscape export``:

    python -m dashboard.export SCAN --kind surface|contour|curve --format pdf [--preset single-column]

Figures come from the same builders the pages use. Kaleido drives the system Chromium
(Debian's ``chromium``; ``BROWSER_PATH`` overrides where it is looked for).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cache import Store, StoreError
from dashboard.figures import (
    PAPER_PRESETS,
    Curve,
    apply_paper_preset,
    build_contour_figure,
    build_curve_figure,
    build_surface_figure,
)
from landscape.core.visage import scan_summary

FORMATS = ("png", "svg", "pdf", "html", "csv", "json")
KINDS = ("surface", "contour", "curve")


class ExportError(ValueError):
    pass


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


def figure_for(store: Store, key: str, kind: str, threshold: float = 50.0) -> go.Figure:
    record = store.scan_record(key)
    if record is None:
        raise ExportError(f"no scan with key {key!r}")
    g = store.scan_grid(key)
    visage = scan_summary(record, g.values["asr_pct"]).get("visage")  # recomputed, never the stored one
    if kind == "curve":
        if g.betas is not None:
            raise ExportError("a curve needs a 1D scan; use --kind surface or contour for 2D")
        return build_curve_figure(
            [
                Curve(
                    name=key[:8],
                    alphas=g.alphas,
                    asr=g.values["asr_pct"],
                    incoherent=g.values.get("incoherent_pct"),
                )
            ]
        )
    if g.betas is None:
        raise ExportError(f"--kind {kind} needs a 2D scan; use --kind curve for 1D")
    if kind == "surface":
        return build_surface_figure(g.alphas, g.betas, g.values["asr_pct"], visage=visage)
    return build_contour_figure(g.alphas, g.betas, g.values["asr_pct"], threshold=threshold, visage=visage)


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
    return pd.DataFrame(rows)


def figure_bytes(fig: go.Figure, fmt: str, preset: str = "double-column") -> bytes:
    """PNG (3× scale for print), SVG or PDF (vector, fonts embedded by Chromium), or HTML."""
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode()
    if preset not in PAPER_PRESETS:
        raise ExportError(f"unknown preset {preset!r}; choose from {', '.join(PAPER_PRESETS)}")
    sized, w, h = apply_paper_preset(fig, preset)
    if chromium_path() is None:
        raise ExportError("static export needs Chromium: apt-get install chromium (or set BROWSER_PATH)")
    os.environ.setdefault("BROWSER_PATH", chromium_path())
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
        out.write_bytes(figure_bytes(figure_for(store, key, kind, threshold), fmt, preset))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="landscape export", description="Export a stored scan's figure or data.")
    p.add_argument("scan", help="scan key (a unique prefix is enough)")
    p.add_argument(
        "--kind", choices=KINDS, default=None, help="figure (default: curve for 1D, surface for 2D)"
    )
    p.add_argument("--format", choices=FORMATS, default="pdf")
    p.add_argument("--preset", choices=list(PAPER_PRESETS), default="double-column")
    p.add_argument("--threshold", type=float, default=50.0, help="contour basin edge (ASR %%)")
    p.add_argument("--out", type=Path, default=None, help="output file [SCAN-KIND.FORMAT]")
    p.add_argument("--store", default=os.environ.get("SAFETY_LANDSCAPE_STORE", "~/.cache/safety-landscape"))
    args = p.parse_args(argv)
    try:
        with Store(args.store) as store:
            key = store.resolve_scan_key(args.scan)
            kind = args.kind or ("curve" if store.scan_record(key).get("betas") is None else "surface")
            out = args.out or Path(f"{key[:12]}-{kind}.{args.format}")
            export_scan(store, key, kind, args.format, out, args.preset, args.threshold)
    except (ExportError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
