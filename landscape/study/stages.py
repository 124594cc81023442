"""A study's per-model stages: one run's model (``build_run``) and one model's measurements
(``assess_model``); and what every study part shares: its key (``study_key``) and θ₀
(``aligned_base``).

Each depends only on its inputs and the store, never on another run or model, so the sequential
pipeline (``study.pipeline``) and the Ray prefetch (``study.parallel``) call the same functions:
whichever runs first stores the results, the other replays them.
"""

from __future__ import annotations

from dataclasses import replace

from cache import Store
from landscape.core.specs import AlignSpec, FormatSpec, JudgeSpec, ModelSpec, Runtime, SpecError, spec_hash
from landscape.core.uncertainty import harmful_complied, visage_interval
from landscape.core.visage import mean_std
from landscape.study.specs import StudySpec


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
    out["task_accuracy_pct"], out["task_n"] = task["task_accuracy_pct"], task.get("task_n")
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


def baseline_formats(structures) -> list:
    """The first structure of each distinct non-default run format among ``structures``, in order:
    the formats whose format baseline (θ₀ measured in that format) a study records."""
    seen: dict[str, object] = {}
    for structure in structures:
        if structure.fmt != FormatSpec():
            seen.setdefault(structure.fmt.model_dump_json(), structure)
    return list(seen.values())


def format_baseline_spec(theta0: ModelSpec, structure, ev):
    """The one-point scan of θ₀'s harmful score in ``structure``'s format (its format baseline)."""
    return ev.point_spec(theta0, ev.harmful_limit, capability=False, fmt=structure.fmt)


def _verdicts(store: Store, key: str) -> list[int] | None:
    """Per-prompt attack success (1/0) behind a harmful score: what the claims' tests resample."""
    v = harmful_complied(store.point_responses(key, 0, 0))
    return None if v is None else v.astype(int).tolist()


def _interval(store: Store, keys: list[str]) -> dict | None:
    """VISAGE's bootstrap interval over prompts, jointly over every scan in ``keys``."""
    ci = visage_interval(store, keys) if keys else None
    return None if ci is None else ci._asdict()


def study_key(spec: StudySpec, store: Store) -> str:
    from landscape.core.models import model_fingerprint

    data = spec.model_dump(mode="json")
    data["finetune"] = spec.finetune.key_dump()
    for late in ("seeds", "sweep", "search"):  # added later: a study without them keeps its key
        if data[late] is None:
            data.pop(late)
    if data.get("sweep") and data["sweep"].get("seeds") is None:  # likewise a sweep without seeds
        data["sweep"].pop("seeds", None)
    if isinstance(spec.evaluation.judge, JudgeSpec):  # a model judge: its files' content, not its path
        from landscape.core.judges import judge_model_identity

        judge = data["evaluation"]["judge"]
        judge["model"] = judge_model_identity(spec.evaluation.judge)
    return spec_hash("study", {"spec": data, "base": model_fingerprint(spec.base, store)})


def aligned_base(spec: StudySpec, store: Store, runtime: Runtime, log) -> tuple[ModelSpec, str]:
    """θ₀ of an ``align: true`` study, the aligned base model (cached under its own key), and that key."""
    from landscape.training.align import align_model

    rec = align_model(AlignSpec(base=spec.base), store, runtime, log)
    return ModelSpec(source=rec.path, dtype=spec.base.dtype), rec.key
