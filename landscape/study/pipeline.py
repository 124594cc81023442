"""One-command before/after studies: align → attacks → defences → evaluation → landscapes.

``run_study`` follows the shared experimental protocol (papers.md) for every run of a
``StudySpec``: build the attack's data, apply data defences (safety mixing), train security vectors,
fine-tune (with per-epoch checkpoints), apply post-hoc defences (Antidote), then measure every model
— harmful score in the user's format, ASR and benign refusal in the default chat format, task
accuracy, VISAGE over K random directions — and draw the requested trajectories over their planes.

Every stage is cached under its own spec hash (fine-tunes, security vectors, pruned adapters,
evaluations and scans are all store entries), so a study killed at any point resumes where it
stopped and a finished one replays in seconds. The study record (``study:<key>``) holds the stage
progress while it runs and the comparison table when done; the dashboard's Study page reads it.
"""

from __future__ import annotations

import time
from importlib import resources

from cache import Store
from landscape.core.provenance import provenance
from landscape.core.specs import (
    ModelSpec,
    Runtime,
    SpecError,
    error_line,
    first_error,
)
from landscape.core.visage import mean_std
from landscape.study.specs import StudySpec
from landscape.study.stages import (  # noqa: F401  (study_key: the dashboard's and tests' import)
    _interval,
    _verdicts,
    aligned_base,
    assess_model,
    baseline_formats,
    build_run,
    format_baseline_spec,
    study_key,
)

PRESETS = (
    "demo",
    "tiny",
    "security",
    "paraphrase",
    "tiny-sweep",
    "tiny-search",
    "hyper",
    "search",
    "vector-ratio",
)  # landscape/data/studies/<name>.yaml
# Wall time of each preset on a fresh store, as measured on this project's 2-core CPU machine
# (docs: development, "Performance"); None where no run was timed. Shown before a study is started.
PRESET_MINUTES: dict[str, tuple[float, float] | None] = {
    "demo": (40.6, 93.7),  # quiet machine / shared with other jobs
    "tiny": (5.3, 5.3),
    "security": None,
    "paraphrase": (161.0, 161.0),  # three seeds, shared machine
    "tiny-sweep": (1.5, 1.5),
    "tiny-search": (2.8, 2.8),
    "hyper": (87.1, 87.1),  # 30 sweep cells; its first 25 min shared the machine with a CI run
    "search": (40.1, 40.1),  # 3 × 8 trials; about 15 min of it shared the machine with tests (niced)
    "vector-ratio": None,
}


def preset_duration(preset: str) -> str:
    """How long ``preset`` took when measured, for a user about to start it."""
    span = PRESET_MINUTES.get(preset)
    if span is None:
        return "not timed yet on this project's machines (expect more than an hour on a CPU)"
    lo, hi = span
    text = f"{lo:g} min" if lo == hi else f"{lo:g}–{hi:g} min"
    return f"{text} measured on a 2-core CPU, fresh store (docs: development, Performance); a rerun reuses every stage"


def load_study(path=None, preset: str | None = None, default_dtype: str = "float32") -> StudySpec:
    """A study from a YAML file or a built-in preset (``landscape/data/studies``); the base
    model's dtype is ``default_dtype`` unless the file sets it."""
    if preset is not None:
        if preset not in PRESETS:
            raise SpecError(f"unknown study preset {preset!r}; choose from {', '.join(PRESETS)}")
        text = resources.files("landscape").joinpath("data", "studies", f"{preset}.yaml").read_text()
    else:
        from pathlib import Path

        file = Path(path).expanduser()
        if not file.is_file():
            raise SpecError(f"study file not found: {file}")
        text = file.read_text(encoding="utf-8")
    return parse_study(text, default_dtype)


def parse_study(text: str, default_dtype: str = "float32") -> StudySpec:
    """A study from YAML text (``safe_load`` only, so no code runs); one-line ``SpecError``s."""
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"study file is not valid YAML{where}: {what}") from None
    if not isinstance(data, dict):
        raise SpecError("a study file holds a mapping (name, runs, …)")
    base = data.setdefault("base", {})
    if isinstance(base, dict):
        base.setdefault("dtype", default_dtype)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        line = yaml_line(text, first_error(exc)[0])
        raise SpecError(f"study file{f' line {line}' if line else ''}: {error_line(exc)}") from None
    except SpecError as exc:
        raise SpecError(f"study file: {exc}") from None


def yaml_line(text: str, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (mapping keys and list indices, as pydantic
    reports an error's location), or of its nearest existing parent; None when unknown."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line if line is not None else (node.start_mark.line + 1 if node is not None else None)


class Progress:
    """Stage-by-stage status in the study record, so the dashboard can follow a running study.

    ``elapsed_s`` is the wall time of all invocations together (a killed run counts up to its last
    stage change), so replaying or resuming a study adds to its time rather than overwriting it."""

    def __init__(self, store: Store, key: str, spec: StudySpec, log):
        self.store, self.key, self.log = store, key, log
        self.record = store.get_json(f"study:{key}") or {
            "name": spec.name,
            "spec": spec.model_dump(mode="json"),
            "stages": {},
            "started": time.time(),
            **provenance(),
        }
        self.record["status"] = "running"
        self.record["invocations"] = self.record.get("invocations", 0) + 1
        self.prior_s, self.t0 = self.record.get("elapsed_s", 0.0), time.perf_counter()
        self.save()

    def save(self) -> None:
        self.record["updated"] = time.time()
        self.record["elapsed_s"] = self.prior_s + time.perf_counter() - self.t0
        self.store.put_json(f"study:{self.key}", self.record)

    def stage(self, name: str, status: str, **detail) -> None:
        self.record["stages"][name] = {"status": status, **detail, "at": time.time()}
        if status == "running":
            done = sum(s["status"] == "done" for s in self.record["stages"].values())
            self.log(f"[study {self.record['name']}] {name} … ({done} stages done)")
        self.save()


AVERAGED = (
    "harmful_score_pct",
    "asr_default_pct",
    "asr_coherent_pct",
    "benign_refusal_pct",
    "task_accuracy_pct",
    "basin_width50",
    "visage",
)


def over_seeds(per_seed: list[dict], store: Store) -> dict:
    """One table row from a run's per-seed rows: each averaged field's mean over seeds with its
    sample std (``<field>_sd``; VISAGE's ± becomes the spread over seeds), VISAGE's bootstrap over
    every seed's scans jointly, and every seed's own row kept under ``per_seed``."""
    row = dict(per_seed[0], per_seed=per_seed, seeds=[p["seed"] for p in per_seed])
    for name in AVERAGED:
        m = mean_std(p.get(name) for p in per_seed if p.get(name) is not None)
        row[name], row[f"{name}_sd"] = (m.mean, m.std) if m.n else (None, None)
    row["visage_std"], row["visage_n"] = row["visage_sd"], len(per_seed) if row["visage"] is not None else 0
    row["visage_keys"] = [k for p in per_seed for k in p.get("visage_keys") or []]
    row["visage_ci"] = _interval(store, row["visage_keys"])
    row.pop("harmful_complied", None)  # per seed only
    return row


def build_models(
    spec: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, progress: Progress, log, tag: str = ""
) -> list:
    """Fine-tune every run through its defences' hooks; returns rows of (name, model, structure, info)
    and the runs' fine-tune results by name (``build_run`` does one run)."""
    from landscape.training.attacks.structural import STRUCTURES

    rows = [
        ("aligned" if spec.align else "base", theta0, STRUCTURES["benign"], {"attack": None, "defenses": []})
    ]
    finetunes = {}
    for run in spec.runs:
        progress.stage(f"finetune:{run.name}{tag}", "running")
        row, ft = build_run(spec, run, theta0, store, runtime, log)
        finetunes[run.name] = ft
        rows.append(row)
        progress.stage(f"finetune:{run.name}{tag}", "done", key=ft.key[:12])
    return rows, finetunes


def format_baselines(rows, theta0: ModelSpec, ev, store: Store, runtime, session, progress, log) -> list:
    """θ₀'s harmful score in each run format other than the default one (AOA's pledge prefilled, …).

    A structural attack's harmful score is measured in its own format, so the fair "before" is the
    aligned model in that same format, not its default-format ASR: the format alone may do part of
    the attack's work. One scan per distinct format."""
    from landscape.engine.scan import scan_grid

    quiet = runtime.model_copy(update={"progress": False})
    out = []
    for structure in baseline_formats(structure for _, _, structure, _ in rows[1:]):
        stage = f"evaluate:{rows[0][0]}@{structure.name}"
        progress.stage(stage, "running")
        spec = format_baseline_spec(theta0, structure, ev)
        res = scan_grid(spec, store, quiet, log=log, session=session)
        score = store.point(res.key, 0, 0)["asr_pct"]
        out.append(
            {
                "model": rows[0][0],
                "structure": structure.name,
                "harmful_score_pct": score,
                "key": res.key,
                "harmful_complied": _verdicts(store, res.key),
            }
        )
        progress.stage(stage, "done", asr=score)
    return out


def run_study(spec: StudySpec, store: Store, runtime: Runtime | None = None, log=print) -> dict:
    """Run (or resume, or replay) a study; returns its comparison record. With ``runtime.workers``
    its independent stages run first as Ray tasks (``study.parallel``), one Ray for the whole study."""
    from landscape.engine.distributed import ray_session

    with ray_session(runtime or Runtime(), log):
        return _run_study(spec, store, runtime, log)


def _run_study(spec: StudySpec, store: Store, runtime: Runtime | None, log) -> dict:
    from landscape.engine.scan import Session
    from landscape.study.trajectory_plane import draw_trajectory

    runtime = runtime or Runtime()
    key = study_key(spec, store)
    progress = Progress(store, key, spec, log)
    theta0 = spec.base
    if spec.align:
        progress.stage("align", "running")
        theta0, align_key = aligned_base(spec, store, runtime, log)
        progress.stage("align", "done", key=align_key[:12])
    if runtime.workers:  # the independent stages on Ray first; the pipeline below replays them
        from landscape.study.parallel import prefetch

        progress.stage("parallel", "running", workers=runtime.workers)
        prefetch(spec, theta0, store, runtime, log)
        progress.stage("parallel", "done")
    # One set of fine-tunes per seed (the first seed's feed the trajectories); θ₀ is measured once.
    seeds = spec.seeds or (0,)
    built = [
        build_models(spec.for_seed(s) if spec.seeds else spec, theta0, store, runtime, progress, log, tag)
        for s, tag in ((s, f"@seed{s}" if spec.seeds else "") for s in seeds)
    ]
    rows, finetunes = built[0]
    session = Session(store, runtime, log)
    table = []
    for k, (name, model, structure, info) in enumerate(rows):
        per_seed = []
        for s, (seed_rows, _) in zip(seeds if k else seeds[:1], built, strict=False):
            _, model, _, info = seed_rows[k]
            stage = f"evaluate:{name}" + (f"@seed{s}" if spec.seeds and k else "")
            progress.stage(stage, "running")
            metrics = assess_model(model, structure, spec.evaluation, store, runtime, session, log)
            per_seed.append(
                {
                    "name": name,
                    "structure": structure.name,
                    "model": model.model_dump(mode="json"),
                    **info,
                    **metrics,
                    "seed": s,
                }
            )
            progress.stage(stage, "done", asr=metrics["harmful_score_pct"])
        if spec.seeds and k:
            table.append(over_seeds(per_seed, store))
        else:
            table.append({k2: v for k2, v in per_seed[0].items() if k2 != "seed"})
    baselines = format_baselines(rows, theta0, spec.evaluation, store, runtime, session, progress, log)
    trajectories = []
    for k, traj in enumerate(spec.trajectories):
        progress.stage(f"trajectory:{k}", "running", plane=traj.plane)
        trajectories.append(
            draw_trajectory(traj, theta0, finetunes, spec.evaluation, store, runtime, session, log)
        )
        progress.stage(f"trajectory:{k}", "done", scan=trajectories[-1]["scan_key"][:12])
    sweep = None
    if spec.sweep is not None:
        from landscape.study.sweep import run_sweep

        sweep = run_sweep(spec, theta0, store, runtime, session, progress, log)
    searches = None
    if spec.search is not None:
        from landscape.study.search import run_searches

        searches = run_searches(spec, theta0, store, runtime, session, progress, log)
    progress.record.update(
        status="complete",
        sweep=sweep,
        searches=searches,
        key=key,
        theta0=theta0.model_dump(mode="json"),
        models=table,
        format_baselines=baselines,
        trajectories=trajectories,
        seeds=list(seeds) if spec.seeds else None,
        completed=time.time(),
    )
    progress.save()
    return progress.record
