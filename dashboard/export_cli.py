"""The command line behind ``landscape export`` (run as ``python -m dashboard.export_cli``):

    python -m dashboard.export_cli SCAN --kind surface|contour|curve --format pdf [--preset single-column]
        [--label curve="aligned model"] [--title]
    python -m dashboard.export_cli SCAN --figure1 ...      (or --study NAME --figure1)

Kept apart from ``dashboard.export`` so that Figure 1 (which builds on the exporter) and the exporter
never import each other.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cache import Store, StoreError
from dashboard.export import FORMATS, KINDS, ExportError, caption_for, export_scan
from dashboard.figure1 import export_figure1
from dashboard.paper import PAPER_PRESETS


def parse_labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ExportError(f"--label takes NAME=TEXT, got {item!r}")
        labels[name.strip()] = text
    return labels


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


def build_parser() -> argparse.ArgumentParser:
    """The ``landscape export`` options (a test walks them: each has help text)."""
    p = argparse.ArgumentParser(prog="landscape export", description="Export a stored scan's figure or data.")
    p.add_argument("scan", nargs="?", help="scan key (a unique prefix is enough)")
    p.add_argument(
        "--kind", choices=KINDS, default=None, help="figure (default: curve for 1D, surface for 2D)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="file format (default: the suffix of --out, else pdf); a --format that contradicts --out's suffix is refused",
    )
    p.add_argument(
        "--preset",
        choices=list(PAPER_PRESETS),
        default="double-column",
        help="paper size: column width and font (default: %(default)s)",
    )
    p.add_argument(
        "--threshold", type=float, default=50.0, help="contour basin edge, ASR %% (default: %(default)s)"
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="replace a text: curve, alpha, beta, asr, title (a study: also a model's name); repeatable",
    )
    p.add_argument("--title", action="store_true", help="keep the in-figure title (print presets drop it)")
    p.add_argument(
        "--figure1",
        action="store_true",
        help="the paper's Figure 1: surface, contour with basin edge and θ₀, 1D curve, VISAGE under each",
    )
    p.add_argument(
        "--study", default=None, help="with --figure1: a study (name or key prefix) instead of a scan"
    )
    p.add_argument("--out", type=Path, default=None, help="output file [SCAN-KIND.FORMAT]")
    p.add_argument(
        "--store",
        default=os.environ.get("SAFETY_LANDSCAPE_STORE", "~/.cache/safety-landscape"),
        help="result store directory (landscape's --store)",
    )
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.format, args.out = output_format(args.format, args.out)
        labels = parse_labels(args.label)
        with Store(args.store, create=False) as store:
            if args.figure1 or args.study:
                out, caption = export_figure1(
                    store, args.scan, args.study, args.format, args.out, args.preset, args.threshold, labels
                )
            else:
                if args.scan is None:
                    raise ExportError("give a scan key (or --study NAME --figure1)")
                key = store.resolve_scan_key(args.scan)
                kind = args.kind or ("curve" if store.scan_record(key).get("betas") is None else "surface")
                out = args.out or Path(f"{key[:12]}-{kind}.{args.format}")
                export_scan(
                    store,
                    key,
                    kind,
                    args.format,
                    out,
                    args.preset,
                    args.threshold,
                    labels,
                    args.title or None,
                )
                caption = caption_for(store, key, kind, args.threshold)
    except (ExportError, ValueError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    print(f"caption: {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
