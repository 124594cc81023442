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

import numpy as np

from cache import Store
from landscape.core.format import format_setting
from landscape.core.specs import ModelSpec, Runtime
from landscape.core.stats import clustered_wilson, wilson, wilson_share
from landscape.study.specs import StudySpec


def cell_study(spec: StudySpec, run, values: dict, visage: bool, what: str = "sweep") -> StudySpec:
    """The one-run study of a sweep cell or search trial (``StudySpec.cell``), measured with the
    study's evaluation, VISAGE left out unless ``visage``."""
    cell = spec.cell(run, values, what)
    if visage:
        return cell
    return cell.model_copy(update={"evaluation": cell.evaluation.model_copy(update={"visage_directions": 0})})


def sweep_seeds(spec: StudySpec) -> tuple[int, ...]:
    """The seeds every cell runs at (``sweep.seeds``; seed 0 alone when None)."""
    return (spec.sweep.seeds or (0,)) if spec.sweep is not None else ()


def sweep_cells(spec: StudySpec) -> list[tuple[str, dict, int, StudySpec]]:
    """(run name, swept values, seed, the cell's one-run study) for every cell and seed, run by run;
    seed s is the cell of the study shifted as ``StudySpec.for_seed(s)`` (s = 0: the study as
    written); the cell's evaluation leaves VISAGE out unless ``sweep.visage``."""
    if spec.sweep is None:
        return []
    seeded = [(s, spec.for_seed(s) if s else spec) for s in sweep_seeds(spec)]
    runs = [(s, study, study.sweep_runs()) for s, study in seeded]  # run k shifted to each seed
    return [
        (run.name, values, s, cell_study(study, shifted[k], values, spec.sweep.visage))
        for k, run in enumerate(spec.sweep_runs())
        for values in spec.sweep.cells()
        for s, study, shifted in runs
    ]


def evaluate_cell(cell: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, log) -> tuple:
    """A one-run study's model built (or read from the store) and measured: (model, info, metrics)."""
    from landscape.study.stages import assess_model, build_run

    (_, model, structure, info), _ = build_run(cell, cell.runs[0], theta0, store, runtime, log)
    return model, info, assess_model(model, structure, cell.evaluation, store, runtime, session, log)


def cell_label(run: str, values: dict, seed: int | None = None) -> str:
    label = f"sweep:{run}@" + ",".join(f"{k}={v}" for k, v in values.items())
    return label if seed is None else f"{label}@seed{seed}"


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


def over_seeds(rows: list[dict]) -> dict:
    """One cell's row from its per-seed rows: the first seed's model and keys (what the Attack
    strength page opens on a click); the harmful score and task accuracy averaged over seeds as k/n
    pooled over seeds and prompts; the harmful score's clustered Wilson interval
    (``core.stats.clustered_wilson``: the prompts are the independent units, every seed's verdicts
    on a prompt averaged; its coverage is simulated in the tests), task accuracy's Wilson interval
    counting each item once; and every seed's own row under ``per_seed``."""
    first = {k: v for k, v in rows[0].items() if k not in ("seed", "harmful_complied")}
    row = first | {"per_seed": rows, "seeds": [r["seed"] for r in rows]}
    for name in ("harmful", "task"):
        if any(r[f"{name}_k"] is None for r in rows):
            row.update({f"{name}_{x}": None for x in ("pct", "k", "n", "lo", "hi")})
            continue
        k, n = sum(r[f"{name}_k"] for r in rows), sum(r[f"{name}_n"] for r in rows)
        verdicts = [r.get("harmful_complied") for r in rows] if name == "harmful" else None
        if verdicts and all(v is not None for v in verdicts) and len({len(v) for v in verdicts}) == 1:
            lo, hi = clustered_wilson(np.asarray(verdicts))
        else:  # task items are not stored one by one: each item counted once (n_eff = the item count,
            # the conservative end of clustered_wilson's range)
            lo, hi = wilson_share(k / n, n / len(rows))
        row.update(
            {f"{name}_pct": 100 * k / n, f"{name}_k": k, f"{name}_n": n, f"{name}_lo": lo, f"{name}_hi": hi}
        )
    return row


def run_sweep(
    spec: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, progress, log
) -> dict:
    """Every cell of ``spec.sweep`` at every seed (built, or read from the store); the sweep's
    record: one row a cell, its seeds' rows under ``per_seed`` when the sweep has seeds."""
    several = spec.sweep.seeds is not None
    rows, by_cell = [], {}
    for run, values, seed, cell in sweep_cells(spec):
        label = cell_label(run, values, seed if several else None)
        progress.stage(label, "running")
        model, info, metrics = evaluate_cell(cell, theta0, store, runtime, session, log)
        row = cell_row(run, values, model, info, metrics)
        by_cell.setdefault((run, tuple(values.items())), []).append(dict(row, seed=seed))
        progress.stage(label, "done", asr=metrics["harmful_score_pct"])
    for per_seed in by_cell.values():
        one = {k: v for k, v in per_seed[0].items() if k != "seed"}
        rows.append(over_seeds(per_seed) if several else one)
    return {
        "fields": [name for name, _ in spec.sweep.over],
        "cells": rows,
        "seeds": list(sweep_seeds(spec)),
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
    """The sweep's tested claims (``study.claims.compare``: McNemar's exact test on the same prompts,
    the paired bootstrap over prompts and seeds when the sweep has seeds):
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
    several = len(sweep.get("seeds") or [0]) > 1
    head = [
        "run",
        "defences",
        *fields,
        "harmful score % (k/n)",
        "95% clustered Wilson" if several else "95% Wilson",
        "task acc. % (k/n)",
        "95% Wilson (items once)" if several else "95% Wilson",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in sweep["cells"]:
        harm = _pct(c["harmful_k"], c["harmful_n"], c["harmful_lo"], c["harmful_hi"])
        task = _pct(c["task_k"], c["task_n"], c["task_lo"], c["task_hi"])
        vals = [format_setting(c["values"][f]) for f in fields]
        lines.append(
            "| " + " | ".join([c["run"], ", ".join(c["defenses"]) or "none", *vals, *harm, *task]) + " |"
        )
    if several:
        lines += [
            "",
            f"k/n pooled over {len(sweep['seeds'])} seeds; the harmful interval counts a prompt's verdicts "
            "under every seed as one unit (Kish's effective size), the task interval each item once "
            "(conservative: per-item task verdicts are not stored)",
        ]
    from landscape.study.claims import claim_lines

    claims = sweep_claims(sweep)
    if claims:
        lines += ["", "**Sweep claims** (harmful score, paired: the same prompts on both sides):"]
        lines += claim_lines(claims)
    return "\n".join(lines)
