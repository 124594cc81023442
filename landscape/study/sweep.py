"""Sweeps: the attacker's fine-tuning settings crossed with a study's defences.

A defence is worth what it holds against the attacker's best settings, not one run: Antidote's claim
is that fine-tuning-stage defences give way at large learning rates or many epochs while pruning
after fine-tuning does not. A study's ``sweep:`` block (``study.specs.SweepSpec``) names fields and
values; every combination is crossed with the swept runs, and each cell is an ordinary run of the
study as if written by hand with those settings (``StudySpec.cell``): the same cached fine-tune,
defence hooks and evaluation, under the same keys. A killed sweep therefore resumes where it
stopped, a finished one replays from the store, a cell equal to one of the study's own runs is not
computed twice, and two processes sharing a store never train one cell twice (the fine-tune's build
lease). With ``--workers`` the cells are fine-tuned and evaluated as Ray tasks first
(``study.parallel``), then replayed here.

Each cell records its harmful score as k/n with its 95% Wilson interval (in the run's own format,
as the study's table) and its task accuracy likewise, so a curve over the swept field carries its
sampling error.
"""

from __future__ import annotations

from cache import Store
from landscape.core.format import format_setting
from landscape.core.specs import ModelSpec, Runtime
from landscape.core.stats import wilson
from landscape.study.specs import StudySpec


def cell_study(spec: StudySpec, run, values: dict, visage: bool, what: str = "sweep") -> StudySpec:
    """The one-run study of a sweep cell or search trial (``StudySpec.cell``), measured with the
    study's evaluation, VISAGE left out unless ``visage``."""
    cell = spec.cell(run, values, what)
    if visage:
        return cell
    return cell.model_copy(update={"evaluation": cell.evaluation.model_copy(update={"visage_directions": 0})})


def sweep_cells(spec: StudySpec) -> list[tuple[str, dict, StudySpec]]:
    """(run name, swept values, the cell's one-run study) for every cell, run by run; the cell's
    evaluation leaves VISAGE out unless ``sweep.visage``."""
    if spec.sweep is None:
        return []
    return [
        (run.name, values, cell_study(spec, run, values, spec.sweep.visage))
        for run in spec.sweep_runs()
        for values in spec.sweep.cells()
    ]


def evaluate_cell(cell: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, log) -> tuple:
    """A one-run study's model built (or read from the store) and measured: (model, info, metrics)."""
    from landscape.study.stages import assess_model, build_run

    (_, model, structure, info), _ = build_run(cell, cell.runs[0], theta0, store, runtime, log)
    return model, info, assess_model(model, structure, cell.evaluation, store, runtime, session, log)


def cell_label(run: str, values: dict) -> str:
    return f"sweep:{run}@" + ",".join(f"{k}={v}" for k, v in values.items())


def _counts(pct: float | None, n: int | None, verdicts: list[int] | None) -> tuple[int, int] | None:
    if verdicts is not None:
        return int(sum(verdicts)), len(verdicts)
    if pct is None or not n:
        return None
    return int(round(pct * n / 100)), int(n)


def cell_row(run: str, values: dict, model: ModelSpec, info: dict, metrics: dict) -> dict:
    """One cell's row of the sweep: its settings, harmful score and task accuracy with k/n and
    Wilson intervals, and where its model and evaluations are stored."""
    row = {
        "run": run,
        "values": values,
        "attack": info["attack"],
        "defenses": info["defenses"],
        "model": model.model_dump(mode="json"),
        "attack_spec": info["attack_spec"],
        "finetune_key": info["finetune_key"],
        "eval_keys": metrics["eval_keys"],
        "harmful_complied": metrics.get("harmful_complied"),
        "visage": metrics.get("visage"),
        "visage_keys": metrics.get("visage_keys") or [],
    }
    for name, pct, n, verdicts in (
        ("harmful", metrics["harmful_score_pct"], None, metrics.get("harmful_complied")),
        ("task", metrics["task_accuracy_pct"], metrics.get("task_n"), None),
    ):
        counts = _counts(pct, n, verdicts)
        lo, hi = wilson(*counts) if counts else (None, None)
        row.update(
            {
                f"{name}_pct": pct,
                f"{name}_k": counts and counts[0],
                f"{name}_n": counts and counts[1],
                f"{name}_lo": lo,
                f"{name}_hi": hi,
            }
        )
    return row


def run_sweep(
    spec: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, progress, log
) -> dict:
    """Every cell of ``spec.sweep`` (built, or read from the store); the sweep's record."""
    rows = []
    for run, values, cell in sweep_cells(spec):
        label = cell_label(run, values)
        progress.stage(label, "running")
        model, info, metrics = evaluate_cell(cell, theta0, store, runtime, session, log)
        rows.append(cell_row(run, values, model, info, metrics))
        progress.stage(label, "done", asr=metrics["harmful_score_pct"])
    return {
        "fields": [name for name, _ in spec.sweep.over],
        "cells": rows,
        "seed": 0,
        "visage": spec.sweep.visage,
    }


def _pct(k, n, lo, hi) -> tuple[str, str]:
    if k is None:
        return "—", "—"
    return f"{100 * k / n:.1f} ({k}/{n})", f"[{lo:.1f}, {hi:.1f}]"


def _name(cell: dict) -> str:
    shown = ", ".join(f"{k}={format_setting(v)}" for k, v in cell["values"].items())
    return f"{cell['run']} at {shown}"


def sweep_claims(sweep: dict) -> list:
    """The sweep's tested claims (``study.claims.compare``: McNemar's exact test on the same prompts):
    for each run, its harmful score at the strongest setting (every field at its last listed value)
    against the weakest (every field at its first), and each defended run against the undefended run
    with the same attack, at the weakest and at the strongest setting. List a sweep's values from
    the weakest attack to the strongest for the first kind to read as "the stronger attack"."""
    from landscape.study.claims import compare

    fields = sweep["fields"]
    runs = list(dict.fromkeys(c["run"] for c in sweep["cells"]))
    firsts = {f: next(c["values"][f] for c in sweep["cells"]) for f in fields}
    lasts = {f: [c["values"][f] for c in sweep["cells"]][-1] for f in fields}

    def at(run: str, values: dict) -> dict | None:
        cell = next((c for c in sweep["cells"] if c["run"] == run and c["values"] == values), None)
        return None if cell is None else dict(cell, name=_name(cell))

    out = []
    for run in runs:
        weak, strong = at(run, firsts), at(run, lasts)
        if weak and strong and weak is not strong and firsts != lasts:
            claim = compare(strong, weak, "the stronger attack")
            if claim is not None:
                out.append(claim)
    for run in runs:
        for values in (firsts, lasts) if firsts != lasts else (firsts,):
            cell = at(run, values)
            if cell is None or not cell["defenses"]:
                continue
            ref = next(
                (
                    at(u, values)
                    for u in runs
                    if at(u, values)
                    and not at(u, values)["defenses"]
                    and at(u, values)["attack_spec"] == cell["attack_spec"]
                ),
                None,
            )
            if ref is not None:
                claim = compare(cell, ref, ", ".join(cell["defenses"]))
                if claim is not None:
                    out.append(claim)
    return out


def sweep_markdown(sweep: dict) -> str:
    """The sweep as a markdown table: one line per cell, run by run, the swept fields as written."""
    fields = sweep["fields"]
    head = [
        "run",
        "defences",
        *fields,
        "harmful score % (k/n)",
        "95% Wilson",
        "task acc. % (k/n)",
        "95% Wilson",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in sweep["cells"]:
        harm = _pct(c["harmful_k"], c["harmful_n"], c["harmful_lo"], c["harmful_hi"])
        task = _pct(c["task_k"], c["task_n"], c["task_lo"], c["task_hi"])
        vals = [format_setting(c["values"][f]) for f in fields]
        lines.append(
            "| " + " | ".join([c["run"], ", ".join(c["defenses"]) or "none", *vals, *harm, *task]) + " |"
        )
    claims = sweep_claims(sweep)
    if claims:
        lines += ["", "**Sweep claims** (harmful score, paired: the same prompts on both sides):"]
        lines += [f"- {c.text()}" for c in claims]
    return "\n".join(lines)
