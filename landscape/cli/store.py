"""Reading the store: ``list``, ``show``, ``visage`` and ``export`` (figures from
``landscape.figures``, imported only when ``export`` runs, so the other commands never load plotly)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from landscape.cli.options import Ctx
from landscape.core.format import plural
from landscape.core.uncertainty import complied_interval, family_complied, visage_interval
from landscape.core.visage import mean_std, scan_summary, summarize
from landscape.figures import FORMATS, KINDS, PAPER_PRESETS, ExportError, output_format
from landscape.study.report import family_visage, read_asr_csv, visage_table


@click.command()
@click.argument("keys", nargs=-1)
@click.option("--asr", default=None, help="A 1D ASR curve in percent, e.g. 100,60,0,10,100.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A scan's table from `landscape export --out FILE.csv` (its real grid), or a bare ASR grid (rows = alpha).",
)
@click.option(
    "--ci",
    "ci_method",
    type=click.Choice(["bounds", "percentile", "bca"]),
    default="bounds",
    show_default=True,
    help="Bootstrap interval over prompts: bounds (covers the population VISAGE when points "
    "near 100% may lie inside the basin), or the plain percentile or BCa interval of the estimator, "
    'which miss it when the basin\'s walls approach 100% smoothly (docs: methods, "VISAGE intervals").',
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def visage(keys, asr, csv_file, ci_method, as_json):
    """VISAGE (paper and reference definitions) of stored scans or of numbers you give."""
    c: Ctx = click.get_current_context().obj
    if asr is None and csv_file is None and not keys:
        raise click.UsageError("give scan keys, --asr or --csv")
    rows = []
    if asr is not None:
        try:
            curve = np.array([float(v) for v in asr.split(",")])
        except ValueError:
            raise click.UsageError("--asr takes comma-separated numbers, e.g. 100,60,0,10,100") from None
        # A curve given by hand is taken as a 1D random scan on a grid centred at its middle value.
        rows.append(("--asr", curve, summarize(np.linspace(-1, 1, len(curve)), None, curve, kind="1d")))
    if csv_file is not None:
        alphas, betas, grid = read_asr_csv(Path(csv_file))
        kind = "1d" if betas is None else "2d"
        rows.append((Path(csv_file).name, grid, summarize(alphas, betas, grid, kind=kind)))
    families: dict[str, list[tuple[str, dict]]] = {}
    fulls = list(dict.fromkeys(c.store.resolve_scan_key(k) for k in keys))  # a scan given twice counts once
    for full in fulls:
        record = c.store.scan_record(full)
        asr_grid = c.store.scan_grid(full, fields=("asr_pct",)).values["asr_pct"]
        summ = scan_summary(record, asr_grid)
        ci = ref_ci = None
        if summ.get("visage") is not None:
            mats = family_complied(c.store, [full])  # every point's verdicts, read once for both
            ci = complied_interval(mats, method=ci_method)
            if summ.get("visage_reference") is not None:
                ref_ci = complied_interval(mats, method=ci_method, statistic="reference")
        rows.append((full[:12], asr_grid, summ, ci, ref_ci))
        families.setdefault(record.get("family") or full, []).append((full, summ))
    text = visage_table(rows, as_json)
    # K directions of one spec given together: mean ± std and one bootstrap with prompts resampled
    # jointly across the K scans
    fams = [(f, m) for f, m in families.items() if len(m) > 1 and all(s["complete"] for _, s in m)]
    if as_json:
        out = json.loads(text)
        for family, members in fams:
            vis = mean_std(s["visage"] for _, s in members)
            ci = visage_interval(c.store, [k for k, _ in members], method=ci_method)
            out.append(
                {
                    "source": f"family {family[:12]}",
                    "scans": [k for k, _ in members],
                    "visage": vis.mean,
                    "visage_std": vis.std,
                    "visage_n": vis.n,
                    "visage_ci": None if ci is None else ci._asdict(),
                }
            )
        text = json.dumps(out, indent=2)
    else:
        for family, members in fams:
            ci = visage_interval(c.store, [k for k, _ in members], method=ci_method)
            text += f"\nfamily {family[:12]} " + family_visage([s for _, s in members], ci)
    click.echo(text)


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also the one-point records `landscape estimate` left to time a scan (hidden by default).",
)
def list_cmd(as_json, show_all):
    """Every scan in the store with status and summary metrics."""
    from landscape.engine.scan import listed_summary
    from landscape.study.report import scan_list_text

    c: Ctx = click.get_current_context().obj
    scans, hidden = [], 0
    for s in c.store.list_scans():
        if s.get("calibration") and not show_all:
            hidden += 1
            continue
        summ, ci = listed_summary(c.store, s)
        scans.append(dict(s, summary=summ, visage_ci=ci))
    if as_json:
        click.echo(json.dumps(scans, indent=2, default=str))
    else:
        click.echo(scan_list_text(scans, c.store.root))
        if hidden:
            click.echo(
                f"({plural(hidden, 'calibration record')} of `landscape estimate` hidden: --all shows them)"
            )


@click.command()
@click.argument("key")
@click.option("--point", default=None, help="Show one point's responses: I or I,J.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def show(key, point, as_json):
    """One scan: its spec, grid and summary, or one point's responses."""
    from landscape.study.report import point_text, scan_text

    c: Ctx = click.get_current_context().obj
    full = c.store.resolve_scan_key(key)
    if point is not None:
        record = c.store.scan_record(full)
        axes = 1 if record.get("betas") is None else 2
        want = "I (a grid index: this scan has one axis)" if axes == 1 else "I,J (grid indices α, β)"
        try:
            ij = [int(v) for v in point.split(",")]
        except ValueError:
            raise click.UsageError(f"--point takes {want}") from None
        if len(ij) != axes:
            raise click.UsageError(f"--point {point}: scan {full[:12]} takes {want}")
        sizes = [len(record["alphas"])] + ([len(record["betas"])] if axes == 2 else [])
        for axis, v, n in zip(("α", "β"), ij, sizes, strict=False):
            if not 0 <= v < n:
                where = f"{axis} index " if axes == 2 else "point "
                raise click.UsageError(f"{where}{v} is out of range 0–{n - 1} (this scan has {n})")
        click.echo(point_text(c.store, full, ij[0], ij[1] if axes == 2 else 0, as_json))
    else:
        click.echo(scan_text(c.store, full, as_json))


def parse_labels(items) -> dict[str, str]:
    """``--label NAME=TEXT`` (repeatable) as a mapping."""
    labels = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"takes NAME=TEXT, got {item!r}", param_hint="--label")
        labels[name.strip()] = text
    return labels


@click.command()
@click.argument("scan", required=False)
@click.option(
    "--kind", type=click.Choice(KINDS), default=None, help="Figure (default: curve for 1D, surface for 2D)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="File format (default: the suffix of --out, else pdf); a --format that contradicts --out's suffix is refused.",
)
@click.option(
    "--preset",
    type=click.Choice(list(PAPER_PRESETS)),
    default="double-column",
    show_default=True,
    help="Paper size: column width and font.",
)
@click.option("--threshold", type=float, default=50.0, show_default=True, help="Contour basin edge, ASR %.")
@click.option(
    "--label",
    "label_items",
    multiple=True,
    metavar="NAME=TEXT",
    help="Replace a text: curve, alpha, beta, asr, title (a study: also a model's name); repeatable.",
)
@click.option("--title", is_flag=True, help="Keep the in-figure title (print presets drop it).")
@click.option(
    "--figure1",
    is_flag=True,
    help="The paper's Figure 1: surface, contour with basin edge and θ₀, 1D curve, VISAGE under each.",
)
@click.option(
    "--study",
    "study_name",
    default=None,
    help="With --figure1: a study (name or key prefix) instead of a scan.",
)
@click.option(
    "--sweep",
    "sweep_field",
    default=None,
    is_flag=False,
    flag_value="",
    metavar="[FIELD]",
    help="With --study NAME: its sweep, harmful score against FIELD (default: the first swept field; "
    "the others at their first value) per defence with Wilson bands; CSV/JSON: every cell.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Output file  [default: SCAN-KIND.FORMAT]."
)
def export(scan, kind, fmt, preset, threshold, label_items, title, figure1, study_name, sweep_field, out):
    """Export a scan's figure (PNG/SVG/PDF/HTML) or data (CSV/JSON), or the paper's Figure 1 of a
    scan or a study (`--figure1`, `--study NAME`). Prints the file and its caption (title, VISAGE
    and its interval: papers put them under the figure, not in it)."""
    from landscape.figures.export import caption_for, export_scan
    from landscape.figures.figure1 import export_figure1

    c: Ctx = click.get_current_context().obj
    labels = parse_labels(label_items)
    try:
        fmt, out = output_format(fmt, out)
        store = c.store
        if sweep_field is not None:
            from landscape.figures.strength import export_sweep

            if study_name is None or figure1:
                raise click.UsageError(
                    "--sweep exports a study's sweep: give --study NAME (and no --figure1)"
                )
            out, caption = export_sweep(
                store, study_name, sweep_field or None, fmt, out, preset, title or None
            )
        elif figure1 or study_name:
            out, caption = export_figure1(store, scan, study_name, fmt, out, preset, threshold, labels)
        else:
            if scan is None:
                raise click.UsageError("give a scan key (or --study NAME --figure1)")
            key = store.resolve_scan_key(scan)
            kind = kind or ("curve" if store.scan_record(key).get("betas") is None else "surface")
            out = out or Path(f"{key[:12]}-{kind}.{fmt}")
            export_scan(store, key, kind, fmt, out, preset, threshold, labels, title or None)
            caption = caption_for(store, key, kind, threshold)
    except (ExportError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(out))
    click.echo(f"caption: {caption}")
