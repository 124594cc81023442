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
from dataclasses import replace
from importlib import resources

from cache import Store
from landscape.core.provenance import provenance
from landscape.core.specs import (
    AlignSpec,
    FormatSpec,
    JudgeSpec,
    ModelSpec,
    Runtime,
    SpecError,
    spec_hash,
)
from landscape.core.uncertainty import harmful_complied, visage_interval
from landscape.core.visage import mean_std
from landscape.study.specs import StudySpec

PRESETS = ("demo", "tiny", "security", "paraphrase")  # landscape/data/studies/<name>.yaml


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

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"study file is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SpecError("a study file holds a mapping (name, runs, …)")
    base = data.setdefault("base", {})
    if isinstance(base, dict):
        base.setdefault("dtype", default_dtype)
    return StudySpec.model_validate(data)


def study_key(spec: StudySpec, store: Store) -> str:
    from landscape.core.models import model_fingerprint

    data = spec.model_dump(mode="json")
    data["finetune"] = spec.finetune.key_dump()
    if data["seeds"] is None:  # added later: a study without seeds keeps its key
        data.pop("seeds")
    if isinstance(spec.evaluation.judge, JudgeSpec):  # a model judge: its files' content, not its path
        from landscape.core.judges import judge_model_identity

        judge = data["evaluation"]["judge"]
        judge["model"] = judge_model_identity(spec.evaluation.judge)
    return spec_hash("study", {"spec": data, "base": model_fingerprint(spec.base, store)})


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


def assess_model(model: ModelSpec, structure, ev, store: Store, runtime: Runtime, session, log) -> dict:
    """Harmful score (user's format), default-format ASR and over-refusal, task accuracy, VISAGE."""
    from landscape.core.models import model_fingerprint
    from landscape.engine.scan import scan_grid
    from landscape.training.taskeval import task_accuracy

    quiet = runtime.model_copy(update={"progress": False})
    out: dict = {}
    default = ev.point_spec(model, ev.harmful_limit, capability=True)
    own_format = structure.fmt != FormatSpec()
    if own_format and not ev.default_format_asr:  # the run's format only: over-refusal in it too
        own = ev.point_spec(model, ev.harmful_limit, capability=True, fmt=structure.fmt)
        res = scan_grid(own, store, quiet, log=log, session=session)
        point = store.point(res.key, 0, 0)
        out.update(harmful_score_pct=point["asr_pct"], asr_default_pct=None)
    else:
        res = scan_grid(default, store, quiet, log=log, session=session)
        point = store.point(res.key, 0, 0)
        out.update(asr_default_pct=point["asr_pct"], harmful_score_pct=point["asr_pct"])
    out.update(
        asr_coherent_pct=point["asr_coherent_pct"],
        benign_refusal_pct=point.get("benign_refusal_pct"),
        eval_keys=[res.key],
    )
    if own_format and ev.default_format_asr:
        own = ev.point_spec(model, ev.harmful_limit, capability=False, fmt=structure.fmt)
        res = scan_grid(own, store, quiet, log=log, session=session)
        out["harmful_score_pct"] = store.point(res.key, 0, 0)["asr_pct"]
        out["eval_keys"].append(res.key)
    out["harmful_complied"] = _verdicts(store, out["eval_keys"][-1])
    task_key = "task-eval:" + spec_hash(
        "task-eval",
        {
            "model": model_fingerprint(model, store),
            "dtype": model.dtype,
            "structure": structure.name,
            "n": ev.task_limit,
        },
    )
    task = store.get_json(task_key)
    if task is None:
        task = task_accuracy(session.model(default), structure, ev.task_limit, runtime.batch_size)
        store.put_json(task_key, task)
    out["task_accuracy_pct"] = task["task_accuracy_pct"]
    summaries, keys = [], []
    for spec in ev.visage_specs(model):
        res = scan_grid(spec, store, quiet, log=log, session=session)
        summaries.append(res.summary)
        keys.append(res.key)
    vis = mean_std(s.get("visage") for s in summaries)
    widths = [
        s["halfwidth50_alpha_neg"] + s["halfwidth50_alpha_pos"]
        for s in summaries
        if s.get("halfwidth50_alpha_neg") is not None and s.get("halfwidth50_alpha_pos") is not None
    ]
    out.update(  # no finite VISAGE (visage_directions: 0, or every scan undefined) is None, not NaN
        visage=vis.mean if vis.n else None,
        visage_std=vis.std if vis.n else None,
        visage_n=vis.n,
        basin_width50=sum(widths) / len(widths) if widths else None,
        visage_keys=keys,
        visage_ci=_interval(store, keys),
    )
    return out


def _verdicts(store: Store, key: str) -> list[int] | None:
    """Per-prompt attack success (1/0) behind a harmful score: what the claims' tests resample."""
    v = harmful_complied(store.point_responses(key, 0, 0))
    return None if v is None else v.astype(int).tolist()


def _interval(store: Store, keys: list[str]) -> dict | None:
    """VISAGE's bootstrap interval over prompts, jointly over every scan in ``keys``."""
    ci = visage_interval(store, keys) if keys else None
    return None if ci is None else ci._asdict()


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


def build_run(spec: StudySpec, run, theta0: ModelSpec, store: Store, runtime: Runtime, log) -> tuple:
    """One run's model: its attack data through its defences' hooks, the fine-tune, the post-hoc
    hooks; returns ((name, model, structure, info), fine-tune result).

    Each defence of a run is walked through the same three hooks in order (data → training → the
    fine-tuned model), so a new defence needs no change here. What a hook recorded goes into
    ``info["defense_details"][name]``; the study's notes ask the defence to say it in one line.
    Runs are independent of each other: ``study.parallel`` calls this in Ray tasks."""
    from landscape.training.attacks import build_attack
    from landscape.training.defenses import DEFENSES, DefenseContext
    from landscape.training.finetune import checkpoint_model, finetune

    data = build_attack(run.attack, store, runtime)
    ctx = DefenseContext(theta0, data.structure.fmt, store, runtime, log)
    hooks = [(d, DEFENSES[d.name]) for d in run.defenses]
    details: dict[str, dict] = {d.name: {} for d in run.defenses}
    examples = list(data.examples)
    for d, impl in hooks:
        before = len(examples)
        examples = impl.on_data(d, replace(data, examples=examples))
        if len(examples) != before:
            details[d.name]["examples_added"] = len(examples) - before
    frozen = None
    for d, impl in hooks:
        adapter = impl.on_training(d, ctx)
        if adapter is not None:
            if frozen is not None:
                raise SpecError(f"run {run.name}: two defences each freeze an adapter during training")
            frozen, owner = adapter, d.name
            details[d.name].update(adapter.details)
    ft = finetune(theta0, examples, spec.finetune, store, runtime, security=frozen, log=log)
    if frozen is not None and ft.frozen_adapter_diagnostic:
        details[owner]["frozen_adapter_diagnostic"] = ft.frozen_adapter_diagnostic
    model = checkpoint_model(theta0, ft)
    for d, impl in hooks:
        out = impl.on_model(d, model, ctx)
        if out is not None:
            model = out.model
            details[d.name].update(out.details, key=out.key)
    info = {
        "attack": run.attack.name,
        "attack_spec": run.attack.model_dump(mode="json"),  # what the claims pair runs by
        "defenses": [d.name for d in run.defenses],
        "defense_details": details,
        "finetune_key": ft.key,
        "n_examples": ft.examples,
        "kinds": ft.kinds,
        "epoch_losses": ft.epoch_losses,
        "train_s": ft.elapsed_s,
    }
    return (run.name, model, data.structure, info), ft


def format_baselines(rows, theta0: ModelSpec, ev, store: Store, runtime, session, progress, log) -> list:
    """θ₀'s harmful score in each run format other than the default one (AOA's pledge prefilled, …).

    A structural attack's harmful score is measured in its own format, so the fair "before" is the
    aligned model in that same format, not its default-format ASR: the format alone may do part of
    the attack's work. One scan per distinct format."""
    from landscape.engine.scan import scan_grid

    quiet = runtime.model_copy(update={"progress": False})
    out, seen = [], set()
    for _, _, structure, _ in rows[1:]:
        fmt_id = structure.fmt.model_dump_json()
        if structure.fmt == FormatSpec() or fmt_id in seen:
            continue
        seen.add(fmt_id)
        stage = f"evaluate:{rows[0][0]}@{structure.name}"
        progress.stage(stage, "running")
        spec = ev.point_spec(theta0, ev.harmful_limit, capability=False, fmt=structure.fmt)
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


def aligned_base(spec: StudySpec, store: Store, runtime: Runtime, log) -> tuple[ModelSpec, str]:
    """θ₀ of an ``align: true`` study, the aligned base model (cached under its own key), and that key."""
    from landscape.training.align import align_model

    rec = align_model(AlignSpec(base=spec.base), store, runtime, log)
    return ModelSpec(source=rec.path, dtype=spec.base.dtype), rec.key


def run_study(spec: StudySpec, store: Store, runtime: Runtime | None = None, log=print) -> dict:
    """Run (or resume, or replay) a study; returns its comparison record."""
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
    progress.record.update(
        status="complete",
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
