"""Reading the store: ``list``, ``show``, ``visage`` and ``export`` (which runs the dashboard's
exporter as a separate process, so the CLI never imports plotly)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from landscape.cli.options import Ctx
from landscape.core.uncertainty import complied_interval, family_complied, visage_interval
from landscape.core.visage import mean_std, scan_summary, summarize
from landscape.study.report import family_visage, read_asr_csv, visage_table


@click.command()
@click.argument("keys", nargs=-1)
@click.option("--asr", default=None, help="A 1D ASR curve in percent, e.g. 100,60,0,10,100.")
@click.option(
    "--csv", "csv_file", type=click.Path(dir_okay=False), default=None, help="A 2D ASR grid (rows = alpha)."
)
@click.option(
    "--ci",
    "ci_method",
    type=click.Choice(["bounds", "percentile", "bca"]),
    default="bounds",
    show_default=True,
    help="Bootstrap interval over prompts: bounds (covers the population VISAGE when points "
    "near 100% may lie inside the basin), or the plain percentile or BCa interval of the estimator, "
    'which miss it when the basin\'s walls approach 100% smoothly (README, "VISAGE intervals").',
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
        grid = read_asr_csv(Path(csv_file))
        axes = (np.arange(n) - n // 2 for n in grid.shape)
        rows.append((Path(csv_file).name, grid, summarize(*axes, grid, kind="2d")))
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
def list_cmd(as_json):
    """Every scan in the store with status and summary metrics."""
    from landscape.engine.scan import read_summary
    from landscape.study.report import scan_list_text

    c: Ctx = click.get_current_context().obj
    scans = []
    for s in c.store.list_scans():
        summ = read_summary(c.store, s["key"], s)
        ci = visage_interval(c.store, [s["key"]]) if summ.get("visage") is not None else None
        scans.append(dict(s, summary=summ, visage_ci=None if ci is None else ci._asdict()))
    if as_json:
        click.echo(json.dumps(scans, indent=2, default=str))
    else:
        click.echo(scan_list_text(scans, c.store.root))


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
        if any(not 0 <= v < n for v, n in zip(ij, sizes, strict=True)):
            raise click.UsageError(
                f"--point {point}: outside the grid ({' × '.join(map(str, sizes))} points)"
            )
        click.echo(point_text(c.store, full, ij[0], ij[1] if axes == 2 else 0, as_json))
    else:
        click.echo(scan_text(c.store, full, as_json))


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def export(ctx, args):
    """Export a scan's figure (PNG/SVG/PDF/HTML) or data (CSV/JSON), or the paper's Figure 1 of a
    scan or a study (`--figure1`, `--study NAME`): `landscape export --help`.

    The figures come from the dashboard's builders, run as a separate process so the engine never
    imports plotly.
    """
    import subprocess

    cmd = [sys.executable, "-m", "dashboard.export_cli", "--store", ctx.obj.store_dir, *args]
    raise click.exceptions.Exit(subprocess.run(cmd).returncode)
