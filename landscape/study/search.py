"""Worst-case attack search: per defence, the attacker's settings that maximise the harmful score.

Tamper-resistance work reports a defence by its worst case over attacks, found by searching the
attack's hyperparameters. A study's ``search:`` block (``study.specs.SearchSpec``) declares the space
(learning rate log-uniform, epochs, samples, rank, …), a budget of trials, a seed and optionally a
task-accuracy floor (the stealthy attacker, who keeps the task working). For every searched run,
Optuna's TPE proposes trials; each trial is a sweep cell (``StudySpec.cell``: the cached fine-tune,
defence hooks and evaluation a hand-written study with those settings would make).

The store is the single source of truth: each run's trials live in a ``search:<key>`` record (JSON,
no pickle); Optuna only ever sees an in-memory study rebuilt from that record. Trial t is proposed
by a fresh TPE sampler seeded ``seed·10007 + t`` from the trials before its batch, so a proposal
depends only on the spec and the history, never on the process: a killed search resumes with the
same trials an uninterrupted one makes (its interrupted trial's finished stages come from the
store), a finished one replays, and a batch's trials can run at once as Ray tasks (``--workers``)
with the same results as in one process.

After the budget, the worst (highest harmful score among trials meeting the floor) attacked model is
measured with the study's full evaluation (VISAGE too) and its distance from θ₀ in weight space: how
far out of the basin the attack went.
"""

from __future__ import annotations

import time

from cache import Store
from landscape.core.format import format_setting
from landscape.core.specs import ModelSpec, Runtime, spec_hash
from landscape.study.specs import SEARCH_TYPES, RunSpec, StudySpec
from landscape.study.sweep import cell_row, cell_study, evaluate_cell

SEARCH_VERSION = 1


def search_key(spec: StudySpec, run: RunSpec, store: Store) -> str:
    """A run's search record key: the run's one-run study (base fingerprint, fine-tuning, attack,
    defences, evaluation) and the search spec without its run list."""
    from landscape.study.stages import study_key

    search = spec.search.model_dump(mode="json")
    search.pop("runs")
    return spec_hash(
        "attack-search", {"cell": study_key(spec.cell(run, {}), store), "search": search, "v": SEARCH_VERSION}
    )


def _distributions(search) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, rng in search.space:
        if rng.choices is not None:
            out[name] = CategoricalDistribution(list(rng.choices))
        elif SEARCH_TYPES[name] is int:
            out[name] = IntDistribution(int(rng.low), int(rng.high), log=rng.log)
        else:
            out[name] = FloatDistribution(rng.low, rng.high, log=rng.log)
    return out


def propose(search, history: list[dict], t: int) -> dict:
    """Trial ``t``'s settings from the finished trials of earlier batches (``history``): a fresh
    seeded TPE sampler over an in-memory Optuna study rebuilt from them, so the same history and
    ``t`` always give the same proposal. Infeasible trials (below the task floor) carry their
    constraint, which TPE uses."""
    import optuna
    from optuna.samplers import TPESampler
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = _distributions(search)
    sampler = TPESampler(seed=search.seed * 10007 + t, n_startup_trials=search.startup_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for trial in history:
        constraints = None
        if search.task_floor is not None:
            constraints = {"task_floor": search.task_floor - trial["task_pct"]}
        study.add_trial(
            create_trial(
                params=trial["values"],
                distributions=dists,
                value=trial["harmful_pct"],
                constraints=constraints,
            )
        )
    return dict(study.ask(dists).params)


def feasible(trial: dict, floor: float | None) -> bool:
    return floor is None or (trial["task_pct"] is not None and trial["task_pct"] >= floor)


def best_so_far(trials: list[dict], floor: float | None) -> list[float | None]:
    """The trace: after each trial, the highest harmful score among feasible trials so far."""
    out, best = [], None
    for trial in trials:
        if feasible(trial, floor) and (best is None or trial["harmful_pct"] > best):
            best = trial["harmful_pct"]
        out.append(best)
    return out


def _highest(trials: list[dict]) -> dict | None:
    """The trial with the highest harmful score (the earliest on a tie); None when there is none."""
    return max(trials, key=lambda t: (t["harmful_pct"], -t["number"])) if trials else None


def worst_trial(trials: list[dict], floor: float | None) -> dict | None:
    """The feasible trial with the highest harmful score (the earliest on a tie)."""
    return _highest([t for t in trials if feasible(t, floor)])


def distance_from_theta0(model: ModelSpec, theta0: ModelSpec, store: Store, device: str) -> dict:
    """‖θ − θ₀‖₂ over the whole model (float64 sums) and its share of ‖θ₀‖₂."""
    from landscape.core.directions import dot
    from landscape.engine.trajectory import model_delta
    from landscape.study.trajectory_plane import _params

    p0 = _params(theta0, store, device)
    delta = model_delta(_params(model, store, device), p0)
    norm = dot(delta, delta) ** 0.5
    return {"distance": norm, "relative_distance": norm / dot(p0, p0) ** 0.5}


def run_search(
    spec: StudySpec, run: RunSpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, progress, log
) -> dict:
    """Run (resume, or replay) the search of one run; returns its record."""
    search = spec.search
    key = search_key(spec, run, store)
    record = store.get_json(f"search:{key}") or {
        "study": spec.name,
        "run": run.name,
        "defenses": [d.name for d in run.defenses],
        "search": search.model_dump(mode="json"),
        "trials": [],
        "elapsed_s": 0.0,
    }
    t0, prior = time.perf_counter(), record["elapsed_s"]
    while len(record["trials"]) < search.trials:
        start = len(record["trials"]) // search.batch * search.batch
        history = record["trials"][:start]
        batch = range(start, min(start + search.batch, search.trials))
        proposals = {t: propose(search, history, t) for t in batch}
        cells = {t: cell_study(spec, run, values, False, "search") for t, values in proposals.items()}
        if runtime.workers and len(batch) > 1:
            from landscape.study.parallel import prefetch_cells

            prefetch_cells(
                [(f"search:{run.name}#{t}", c) for t, c in cells.items()], theta0, store, runtime, log
            )
        for t in batch:
            if t < len(record["trials"]):
                continue
            progress.stage(f"search:{run.name}#{t}", "running")
            model, info, metrics = evaluate_cell(cells[t], theta0, store, runtime, session, log)
            row = cell_row(run.name, proposals[t], model, info, metrics)
            row["number"] = t
            record["trials"].append(row)
            record["elapsed_s"] = prior + time.perf_counter() - t0
            record["updated"] = time.time()
            store.put_json(f"search:{key}", record)
            progress.stage(f"search:{run.name}#{t}", "done", asr=row["harmful_pct"])
    worst = worst_trial(record["trials"], search.task_floor)
    if worst is not None and "worst" not in record:
        progress.stage(f"search:{run.name}:worst", "running")
        cell = cell_study(spec, run, worst["values"], True, "search")  # the study's full evaluation
        model, _, metrics = evaluate_cell(cell, theta0, store, runtime, session, log)
        record["worst"] = {
            "number": worst["number"],
            "visage": metrics.get("visage"),
            "visage_ci": metrics.get("visage_ci"),
            "visage_keys": metrics.get("visage_keys"),
            **distance_from_theta0(model, theta0, store, runtime.device),
        }
        store.put_json(f"search:{key}", record)
        progress.stage(f"search:{run.name}:worst", "done")
    record["key"] = key
    record["best_so_far"] = best_so_far(record["trials"], search.task_floor)
    return record


class _Stages:
    """Stage lines for a search run on its own (no study record to update)."""

    def __init__(self, log):
        self.log = log

    def stage(self, name: str, status: str, **detail) -> None:
        if status == "running":
            self.log(f"[search] {name} …")


def attack_search(spec: StudySpec, store: Store, runtime: Runtime, log=print) -> list[dict]:
    """``landscape attack-search``: the study's searches alone (θ₀ aligned first when the study
    aligns), without its table, sweep or trajectories."""
    from landscape.engine.distributed import ray_session
    from landscape.engine.scan import Session
    from landscape.study.stages import aligned_base

    with ray_session(runtime, log):
        theta0 = aligned_base(spec, store, runtime, log)[0] if spec.align else spec.base
        return run_searches(spec, theta0, store, runtime, Session(store, runtime, log), _Stages(log), log)


def run_searches(
    spec: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, session, progress, log
) -> list:
    """Every searched run's record, in the study's order."""
    return [
        run_search(spec, run, theta0, store, runtime, session, progress, log) for run in spec.search_runs()
    ]


def strongest_below_floor(trials: list[dict], floor: float | None) -> dict | None:
    """The infeasible trial (task accuracy under the floor) with the highest harmful score: what
    the attacker could reach by giving up the task, the floor being what keeps it out."""
    return _highest([t for t in trials if not feasible(t, floor)])


def search_claims(searches: list[dict]) -> list:
    """Each defended run's worst case against the worst case of the undefended run with the same
    attack (``study.claims.compare`` on their stored verdicts: the same prompts, so McNemar's exact
    test). The two worst cases may sit at different settings: each side is its own attacker's best
    within the same budget and floor."""
    from landscape.study.claims import compare

    worsts = []  # each run's worst case, named for the claim
    for s in searches:
        w = worst_trial(s["trials"], s["search"]["task_floor"])
        if w is not None:
            worsts.append(dict(w, name=f"{s['run']} (worst of {len(s['trials'])} trials)"))
    out = []
    for subject in worsts:
        if not subject["defenses"]:
            continue
        ref = next((u for u in worsts if not u["defenses"] and u["attack"] == subject["attack"]), None)
        if ref is not None:
            claim = compare(subject, ref, ", ".join(subject["defenses"]))
            if claim is not None:
                out.append(claim)
    return out


def search_markdown(searches: list[dict]) -> str:
    """One line per searched run: its worst case, where it was found, how far out it went, and the
    strongest attack the task floor kept out; then the worst cases' paired claims."""
    head = [
        "run",
        "trials",
        "worst harmful score % (k/n)",
        "95% Wilson",
        "task acc. %",
        "found at",
        "settings",
        "VISAGE",
        "‖θ−θ₀‖ / ‖θ₀‖",
        "strongest below the floor: harmful % (task %)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in searches:
        floor = s["search"]["task_floor"]
        worst = worst_trial(s["trials"], floor)
        below = strongest_below_floor(s["trials"], floor)
        kept_out = (
            "—"
            if below is None
            else f"{below['harmful_pct']:.1f} ({below['task_pct']:.1f}), trial {below['number']}"
        )
        if worst is None:
            lines.append(
                f"| {s['run']} | {len(s['trials'])} | no trial met the task floor {floor:g}% | | | | | | | {kept_out} |"
            )
            continue
        w = s.get("worst") or {}
        settings = ", ".join(f"{k}={format_setting(v, 3)}" for k, v in worst["values"].items())
        visage = "—" if w.get("visage") is None else f"{w['visage']:.1f}"
        rel = "—" if w.get("relative_distance") is None else f"{w['relative_distance']:.2e}"
        lines.append(
            f"| {s['run']} | {len(s['trials'])} | {worst['harmful_pct']:.1f} ({worst['harmful_k']}/{worst['harmful_n']}) "
            f"| [{worst['harmful_lo']:.1f}, {worst['harmful_hi']:.1f}] | {worst['task_pct']:.1f} | trial {worst['number']} "
            f"| {settings} | {visage} | {rel} | {kept_out} |"
        )
    claims = search_claims(searches)
    if claims:
        from landscape.study.claims import claim_lines

        lines += ["", "**Search claims** (each defence's worst case against no defence's, the same prompts):"]
        lines += claim_lines(claims)
    return "\n".join(lines)
