"""A study's independent stages as Ray tasks: every run's model, then every model's evaluation.

With ``Runtime.workers`` set, ``run_study`` first calls ``prefetch``: phase 1 builds each run's
model (per seed when the study has seeds: defence data hooks → training hooks → fine-tune → model
hooks, ``pipeline.build_run``), one task per run and one per sweep cell (``study.sweep``); phase 2 assesses each model (harmful score, ASR,
over-refusal, task accuracy, VISAGE: ``pipeline.assess_model``), one task per model, beside one
task per distinct non-default run format measuring θ₀ in that format (the format baselines of
``pipeline.format_baselines``: one-point scans that would otherwise each start Ray actors for a
single point). Each task opens the store itself and writes through the same cached code as one
process, then the ordinary sequential pipeline replays everything from the store, so the study
record is made by exactly the same code with or without Ray (trajectories run there, their plane
scans on Ray actors). The store is shared between processes of one machine only (SQLite), so the
tasks are pinned to the driver's node (``engine.distributed.run_tasks``): a multi-GPU node yes, a
multi-node study no. Ray itself is imported only there.
"""

from __future__ import annotations

from cache import Store
from landscape.core.specs import ModelSpec, Runtime
from landscape.study.specs import StudySpec


def _task_runtime(runtime: Runtime) -> Runtime:
    """A task's runtime: in its own process (no nested Ray), on the GPU share Ray gave it."""
    device = "cuda" if runtime.gpus_per_worker else "cpu"
    return runtime.model_copy(update={"workers": None, "device": device, "progress": False})


def build_task(spec: StudySpec, index: int, theta0: ModelSpec, root: str, runtime: Runtime) -> tuple:
    """Phase 1: run ``spec.runs[index]``'s model into the store at ``root``; (model, structure)."""
    from landscape.study.stages import build_run

    with Store(root) as store:
        (_, model, structure, _), _ = build_run(spec, spec.runs[index], theta0, store, runtime, print)
    return model, structure


def assess_task(model: ModelSpec, structure, spec: StudySpec, root: str, runtime: Runtime) -> None:
    """Phase 2: every evaluation of one model into the store at ``root``."""
    from landscape.engine.scan import Session
    from landscape.study.stages import assess_model

    with Store(root) as store:
        session = Session(store, runtime, print)
        assess_model(model, structure, spec.evaluation, store, runtime, session, print)


def baseline_task(theta0: ModelSpec, structure, spec: StudySpec, root: str, runtime: Runtime) -> None:
    """Phase 2: θ₀'s harmful score in ``structure``'s format (a format baseline) into the store."""
    from landscape.engine.scan import scan_grid
    from landscape.study.stages import format_baseline_spec

    with Store(root) as store:
        scan_grid(format_baseline_spec(theta0, structure, spec.evaluation), store, runtime, log=print)


def _build(
    jobs: list[tuple[str, StudySpec, int]], theta0: ModelSpec, root: str, rt: Runtime, runtime, log
) -> list:
    """Phase 1 for ``jobs`` of (label, study, run index): each run's model as a Ray task; returns
    (model, structure, the study that measures it) in order."""
    from landscape.engine.distributed import run_tasks

    built = run_tasks(
        [(label, build_task, (study, k, theta0, root, rt)) for label, study, k in jobs], runtime, log
    )
    return [(model, structure, study) for (model, structure), (_, study, _) in zip(built, jobs, strict=True)]


def _assessments(measured: list[tuple], root: str, rt: Runtime) -> list:
    """Phase 2's tasks for (model, structure, study) triples: one per distinct model, format and
    evaluation (a sweep cell's evaluation may differ from the study's: no VISAGE)."""
    seen, out = set(), []
    for model, structure, study in measured:
        ident = (model.model_dump_json(), structure.name, study.evaluation.model_dump_json())
        if ident not in seen:
            seen.add(ident)
            label = f"evaluate:{model.source}@{structure.name}"
            out.append((label, assess_task, (model, structure, study, root, rt)))
    return out


def prefetch(spec: StudySpec, theta0: ModelSpec, store: Store, runtime: Runtime, log) -> None:
    """Build every run's model, then assess every model, as Ray tasks (``runtime.workers`` at a
    time); everything lands in ``store``, where the sequential pipeline finds it."""
    from landscape.engine.distributed import run_tasks
    from landscape.study.stages import baseline_formats
    from landscape.study.sweep import cell_label, sweep_cells
    from landscape.training.attacks.structural import STRUCTURES

    root, rt = str(store.root), _task_runtime(runtime)
    seeds = [(s, spec.for_seed(s), f"@seed{s}") for s in spec.seeds] if spec.seeds else [(0, spec, "")]
    jobs = [  # (label, the one-run or whole study that builds and measures it, run index)
        (f"finetune:{run.name}{tag}", seeded, k)
        for _, seeded, tag in seeds
        for k, run in enumerate(seeded.runs)
    ]
    several = spec.sweep is not None and spec.sweep.seeds is not None
    jobs += [
        (cell_label(run, values, seed if several else None), cell, 0)
        for run, values, seed, cell in sweep_cells(spec)
    ]
    log(f"[study {spec.name}] {len(jobs)} fine-tunes on {runtime.workers} Ray workers …")
    built = _build(jobs, theta0, root, rt, runtime, log)
    assess = _assessments([(theta0, STRUCTURES["benign"], spec)] + built, root, rt)
    for structure in baseline_formats(structure for _, structure, _ in built):
        label = f"evaluate:{theta0.source}@{structure.name} (format baseline)"
        assess.append((label, baseline_task, (theta0, structure, spec, root, rt)))
    log(f"[study {spec.name}] {len(assess)} evaluations on {runtime.workers} Ray workers …")
    run_tasks(assess, runtime, log)


def prefetch_cells(
    cells: list[tuple[str, StudySpec]], theta0: ModelSpec, store: Store, runtime: Runtime, log
) -> None:
    """Build, then assess, one-run studies (sweep cells, a search's batch of trials) as Ray tasks."""
    from landscape.engine.distributed import run_tasks

    root, rt = str(store.root), _task_runtime(runtime)
    built = _build([(label, cell, 0) for label, cell in cells], theta0, root, rt, runtime, log)
    run_tasks(_assessments(built, root, rt), runtime, log)
