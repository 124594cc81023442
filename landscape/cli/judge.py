"""``landscape rejudge`` and ``landscape agree``: another judge on a scan's stored responses, and
how two judges of the same responses agree (the engine's ``rejudge_scan``/``scan_agreement``)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from landscape.cli.options import JUDGE_MODEL_OPTIONS, Ctx, parse_label_map
from landscape.core.format import axis_decimals, format_coordinate, format_number, plural
from landscape.core.specs import JudgeSpec
from landscape.study.report import landscape_text, summary_text


def _judge_options(fn):
    for opt in reversed(JUDGE_MODEL_OPTIONS):
        fn = opt(fn)
    return fn


@click.command()
@click.argument("scan_key")
@click.option("--judge", "judge_name", required=True, help="keywords, prefix, guard or classifier.")
@_judge_options
@click.option(
    "--count-cut-apart",
    is_flag=True,
    help="Rows cut by early stopping get no verdict and are counted apart instead of refusing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def rejudge(scan_key, judge_name, judge_model, label_map, judge_max_tokens, count_cut_apart, as_json):
    """Re-score a stored scan's responses with another judge (no generation): a derived scan."""
    from landscape.engine.rejudge import rejudge_scan

    c: Ctx = click.get_current_context().obj
    spec = JudgeSpec(
        name=judge_name,
        model=judge_model,
        label_map=parse_label_map(label_map),
        max_new_tokens=judge_max_tokens,
    )
    source = c.store.resolve_scan_key(scan_key)
    r = rejudge_scan(source, spec, c.store, c.runtime(), count_cut_apart=count_cut_apart, log=c.log)
    if as_json:
        click.echo(json.dumps({"key": r.key, "derived": r.record["derived"], "summary": r.summary}, indent=2))
        return
    d = r.record["derived"]
    click.echo(
        f"\nscan {r.key[:12]}  (rejudge of {d['source'][:12]} by {spec.name}, {plural(r.computed, 'point')} judged)"
    )
    if d["cut"]:
        click.echo(f"{d['cut']} responses cut by early stopping are counted apart (cut_pct)")
    click.echo(landscape_text(r.grid))
    click.echo(summary_text(r.summary))


@click.command()
@click.argument("scan_a")
@click.argument("scan_b")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def agree(scan_a, scan_b, as_json):
    """Per-point agreement of two judges of the same responses: Cohen's κ and % that disagree."""
    from landscape.engine.rejudge import scan_agreement

    c: Ctx = click.get_current_context().obj
    a, b = c.store.resolve_scan_key(scan_a), c.store.resolve_scan_key(scan_b)
    table = scan_agreement(c.store, a, b)
    if as_json:
        click.echo(json.dumps(asdict(table), indent=2))
        return
    click.echo(f"{'alpha':>8} {'beta':>8} {'n':>5} {'apart':>5} {'disagree %':>10} {'kappa':>6}")
    na = axis_decimals([p.alpha for p in table.points])
    nb = axis_decimals([p.beta for p in table.points])
    for p in table.points:
        g = p.agreement
        a, b = format_coordinate(p.alpha, na), format_coordinate(p.beta, nb)
        click.echo(
            f"{a:>8} {b:>8} {g.n:>5} {g.n_apart:>5} {format_number(g.disagree_pct, 1):>10} {format_number(g.kappa, 2):>6}"
        )
    o = table.overall
    click.echo(
        f"{'all':>17} {o.n:>5} {o.n_apart:>5} {format_number(o.disagree_pct, 1):>10} {format_number(o.kappa, 2):>6}"
        "  (κ = 1 where both judges give one same label to every response)"
    )
