"""Figures: the pure plotly builders the dashboard's pages draw (``plots``), their print layout
(``paper``), static export through kaleido (``export``) and the paper's Figure 1 (``figure1``).

The one layer of ``landscape`` that imports plotly and kaleido; ``landscape export`` and the
dashboard both import it, so a figure is built by one function whichever asks for it. This module
itself stays light (no plotly): the CLI reads its names to declare ``export``'s options.
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("png", "svg", "pdf", "html", "csv", "json")
KINDS = ("surface", "contour", "curve")
# Width in inches; Plotly lays out in CSS px (1/96 in), so a font of p pt is p·96/72 px at print size.
PAPER_PRESETS = {
    "single-column": {"width_in": 3.3, "height_in": 2.6, "font_pt": 8, "print": True},
    "double-column": {"width_in": 7.0, "height_in": 3.6, "font_pt": 9, "print": True},
    "slide": {"width_in": 10.0, "height_in": 5.6, "font_pt": 14, "print": False},
}


class ExportError(ValueError):
    """An export that cannot be made as asked (bad format, label, path or scan)."""


def output_format(fmt: str | None, out: Path | None) -> tuple[str, Path | None]:
    """The format a file is written in, and its path: --out's suffix decides (``x.csv`` is CSV,
    never a PDF named x.csv); a --format that says otherwise is refused; without a suffix the
    format's is added; without --out, --format (default pdf)."""
    if out is None:
        return fmt or "pdf", None
    path = out.expanduser()
    if path.is_dir():
        raise ExportError(f"--out {out} is a directory: give a file name")
    if not path.parent.is_dir():
        raise ExportError(f"--out {out}: the directory {path.parent} does not exist")
    suffix = out.suffix.lower().lstrip(".")
    if not suffix:
        fmt = fmt or "pdf"
        return fmt, out.with_name(f"{out.name}.{fmt}")
    if suffix not in FORMATS:
        raise ExportError(f"--out {out}: .{suffix} is not an export format ({', '.join(FORMATS)})")
    if fmt is not None and fmt != suffix:
        raise ExportError(f"--format {fmt} contradicts --out {out} (a .{suffix} file): give one of them")
    return suffix, out
