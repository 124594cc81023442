"""``landscape scan`` and ``landscape estimate``: a scan spec from flags (and a YAML file), then the
engine's ``scan_family`` or ``estimate_scan``."""

from __future__ import annotations

import json

import click

from landscape.cli.flags import build_scan_spec
from landscape.cli.options import Ctx, given_flags, ray_flags, scan_options
from landscape.core.format import plural
from landscape.core.grid import zero_index
from landscape.core.prompts import prompt_field
from landscape.study.report import family_visage, interval_line, landscape_text, summary_text


def _runtime(ctx: click.Context, o: dict):
    """The runtime of a scan command."""
    c: Ctx = ctx.obj
    workers = ray_flags(ctx, o["workers"], o["ray_address"], o["gpus_per_worker"])
    return c.runtime(o["keep_directions"], **workers)


def _spec(ctx: click.Context, kind: str, o: dict):
    c: Ctx = ctx.obj
    return build_scan_spec(kind, o, given_flags(ctx, o), c.device)


def warn_origin_off_grid(spec) -> None:
    """One stderr line per axis that does not sample 0 (θ₀; θ_a for an interpolation): the ASR
    there is then "not sampled" and basin half-widths come from the interpolated curve. Printed
    beside the results (a refused scan prints its error alone)."""
    origin = "θ_a" if spec.kind == "interpolation" else "θ₀"
    for name, axis in (("α", spec.alphas), ("β", spec.betas)):
        if axis is None or zero_index(axis.values()) is not None:
            continue
        click.echo(
            f"warning: {name} = 0 ({origin}) is not on the grid ({plural(axis.num, 'point')} from {axis.start:g} "
            f"to {axis.stop:g}): the ASR at {origin} is not sampled and basin half-widths are measured "
            "on the interpolated curve; a range with 0 on its step (e.g. an odd --points centred on "
            "0) includes it",
            err=True,
        )


def _print_results(results, store, as_json: bool) -> None:
    from landscape.core.uncertainty import visage_interval

    complete = all(r.summary.get("complete") for r in results)
    ci = visage_interval(store, [r.key for r in results]) if complete else None
    if as_json:
        rows = [
            {"key": r.key, "kind": r.spec.kind, "summary": r.summary, "computed": r.computed} for r in results
        ]
        if ci is not None:  # one scan's interval, or the family's (prompts resampled jointly)
            for row in rows:
                row["visage_ci"] = ci._asdict() if len(rows) == 1 else None
            if len(rows) > 1:
                rows[0]["family_visage_ci"] = ci._asdict()
        click.echo(json.dumps(rows, indent=2))
        return
    for r in results:
        how = f"computed {plural(r.computed, 'point')}" if r.computed else "from the store"
        click.echo(f"\nscan {r.key[:12]}  ({r.spec.kind}, {how})")
        click.echo(landscape_text(r.grid, r.record.get("n_prompts")))
        click.echo(summary_text(r.summary))
        if len(results) == 1 and complete:
            click.echo(interval_line(ci))
    if len(results) > 1:
        click.echo("\n" + family_visage([r.summary for r in results], ci))


def scan_command(fn):
    """The arguments shared by ``scan`` and ``estimate``."""
    fn = click.pass_context(scan_options(fn))
    fn = click.option("--target", default=None, help="interpolate: θ_b (the model at alpha = 1).")(fn)
    fn = click.argument("kind", type=click.Choice(["1d", "2d", "interpolate"]))(fn)
    return click.command()(fn)


@scan_command
def scan(ctx, kind, **o):
    """Scan the safety landscape along 1 or 2 directions (or an interpolation)."""
    from landscape.engine.autorange import AutoRangeSpec
    from landscape.engine.family import scan_family

    c: Ctx = ctx.obj
    spec = _spec(ctx, kind, o)
    if o["full_responses"]:
        c.log("full responses: early stopping is off (generation.early_stop = false, part of the scan key)")
    field = prompt_field(spec.prompts)
    if field is not None and o["column"] is None:
        c.log(f"prompts: {spec.prompts.source}, column {field!r} (choose another with --column)")
    auto = AutoRangeSpec(probe_prompts=o["probe_prompts"]) if o["auto_range"] else None
    runtime = _runtime(ctx, o)
    results = scan_family(spec, o["n_directions"], c.store, runtime, auto, c.log)
    warn_origin_off_grid(results[0].spec)  # the grid scanned (auto range lays its own)
    _print_results(results, c.store, o["as_json"])


@scan_command
def estimate(ctx, kind, **o):
    """Cost of a scan: points × prompts × tokens, timed on one real (stored) point."""
    from landscape.core.format import format_duration
    from landscape.engine.scan import estimate_scan

    c: Ctx = ctx.obj
    spec = _spec(ctx, kind, o)
    est = estimate_scan(spec, c.store, _runtime(ctx, o), c.log)
    if o["as_json"]:
        click.echo(json.dumps(est, indent=2))
        return
    click.echo(
        f"scan {est['key'][:12]}: {plural(est['points'], 'point')} "
        f"({est['missing']} to compute) × {est['prompts']} prompts × ≤{est['max_new_tokens']} tokens"
    )
    click.echo(f"token budget of what is left: ≤{est['max_tokens']:,} new tokens")
    per = est["seconds_per_point"]
    if est["timing"] == "stored":
        n = est["timed_points"]
        timing = f"{per:.1f} s/point (median of {plural(n, 'stored point')})"
    elif est["timing"] == "calibrated":
        timing = (
            f"{per:.1f} s/point, measured on one point computed now in "
            f"{format_duration(est['calibration_wall_s'])} with start-up (kept for the scan; "
            "hidden from `landscape list` until you run it)"
        )
    else:
        timing = None
    if est["missing"] == 0:
        click.echo("everything is in the store already" + (f"; {timing}" if timing else ""))
    else:
        click.echo(f"{timing} → about {format_duration(est['estimated_s'])} for the {est['missing']} missing")
