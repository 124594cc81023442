"""``landscape study`` (a study YAML or preset, resumable) and ``landscape demo``."""

from __future__ import annotations

import click

from landscape.cli.options import Ctx, old_spelling, ray_flags, ray_options, renamed
from landscape.study.pipeline import PRESETS as STUDY_PRESETS


@click.command()
@click.option(
    "--limit",
    "n_prompts",
    default=32,
    show_default=True,
    type=click.IntRange(4),
    help="Harmful prompts per 1D point (the first N of the built-in set).",
)
@click.option(
    "--points",
    default=9,
    show_default=True,
    type=click.IntRange(3, 101),
    help="1D grid points per direction (made odd, centred on θ₀).",
)
@click.option(
    "--directions",
    default=3,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Random 1D directions (seeds 0..K-1) that VISAGE's mean ± std is taken over.",
)
@click.option(
    "--points-2d",
    "grid2d",
    default=5,
    show_default=True,
    type=click.IntRange(3, 41),
    help="Points per axis of the 2D grid (made odd, centred on θ₀).",
)
@click.option(
    "--limit-2d",
    "prompts2d",
    default=12,
    show_default=True,
    type=click.IntRange(4),
    help="Harmful prompts per 2D point.",
)
@old_spelling("--prompts", "--limit", type=click.IntRange(4))
@old_spelling("--grid2d", "--points-2d", type=click.IntRange(3, 41))
@old_spelling("--prompts2d", "--limit-2d", type=click.IntRange(4))
@click.pass_context
def demo(ctx, n_prompts, points, directions, grid2d, prompts2d, old_prompts, old_grid2d, old_prompts2d):
    """Align if needed → auto range → 1D scans along K directions → coarse 2D scan → VISAGE table."""
    from landscape.study.demo import run_demo

    c: Ctx = ctx.obj
    run_demo(
        c.store,
        c.runtime(),
        c.log,
        click.echo,
        n_prompts=renamed(n_prompts, old_prompts, "--prompts", "--limit"),
        points=points,
        grid2d=renamed(grid2d, old_grid2d, "--grid2d", "--points-2d"),
        prompts2d=renamed(prompts2d, old_prompts2d, "--prompts2d", "--limit-2d"),
        directions=directions,
    )


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--preset", default=None, help=f"A built-in study instead of a file: {', '.join(STUDY_PRESETS)}."
)
@click.option("--markdown", is_flag=True, help="Print only the comparison table (markdown).")
@click.option(
    "--keep-directions/--regenerate-directions",
    default=True,
    show_default=True,
    help="Hold each random direction in memory during a scan (one model-sized copy).",
)
@ray_options
@click.pass_context
def study(ctx, file, preset, markdown, keep_directions, workers, ray_address, gpus_per_worker):
    """align → attacks → defences → evaluation → landscapes, resumable; prints the comparison.

    With --workers N the fine-tunes, then the evaluations, run as N Ray tasks at a time on this
    machine (one GPU each with --gpus-per-worker 1), before the usual pipeline replays them."""
    from landscape.study.pipeline import load_study, run_study
    from landscape.study.table import study_markdown

    c: Ctx = ctx.obj
    if file is not None and preset is not None:
        raise click.UsageError(f"give a study YAML file or --preset {preset}, not both")
    if file is None and preset is None:
        raise click.UsageError(f"give a study YAML file or --preset ({', '.join(STUDY_PRESETS)})")
    dtype = "bfloat16" if c.device.startswith("cuda") else "float32"
    spec = load_study(file, preset, default_dtype=dtype)
    runtime = c.runtime(keep_directions, **ray_flags(ctx, workers, ray_address, gpus_per_worker))
    record = run_study(spec, c.store, runtime, c.log)
    if not markdown:
        click.echo(
            f"study {record['key'][:12]} complete in {record['elapsed_s'] / 60:.1f} min (store: {c.store.root})"
        )
    click.echo(study_markdown(record))


@click.command("attack-search")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--preset", default=None, help=f"A built-in study instead of a file: {', '.join(STUDY_PRESETS)}."
)
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=None,
    help="The budget per run (overrides search.trials).",
)
@click.option("--seed", type=int, default=None, help="The sampler's seed (overrides search.seed).")
@click.option(
    "--task-floor",
    type=click.FloatRange(0, 100),
    default=None,
    help="Keep only attacks whose task accuracy is at least this percent (overrides search.task_floor).",
)
@ray_options
@click.pass_context
def attack_search(ctx, file, preset, trials, seed, task_floor, workers, ray_address, gpus_per_worker):
    """Worst-case attack per defence: seeded TPE over the study's search: space, resumable.

    Runs only the study's search (θ₀ aligned first if the study aligns): for every searched run,
    trials up to the budget (each a cached fine-tune, defence and evaluation), then the worst
    attacked model's VISAGE and distance from θ₀. A killed search resumes; a finished one replays.
    With --workers N a batch's trials (search.batch) run as N Ray tasks at a time."""
    from landscape.core.specs import SpecError
    from landscape.study.pipeline import load_study
    from landscape.study.search import attack_search as run_attack_search
    from landscape.study.search import search_markdown

    c: Ctx = ctx.obj
    if file is not None and preset is not None:
        raise click.UsageError(f"give a study YAML file or --preset {preset}, not both")
    if file is None and preset is None:
        raise click.UsageError(
            f"give a study YAML file with a search: block or --preset ({', '.join(STUDY_PRESETS)})"
        )
    dtype = "bfloat16" if c.device.startswith("cuda") else "float32"
    spec = load_study(file, preset, default_dtype=dtype)
    if spec.search is None:
        raise SpecError(
            f"study {spec.name} has no search: block (docs: tutorials, attacks, defences and studies)"
        )
    overrides = {
        k: v for k, v in (("trials", trials), ("seed", seed), ("task_floor", task_floor)) if v is not None
    }
    if overrides:
        from landscape.study.specs import SearchSpec, StudySpec

        search = SearchSpec.model_validate({**spec.search.model_dump(), **overrides})
        spec = StudySpec.model_validate({**spec.model_dump(), "search": search.model_dump()})
    runtime = c.runtime(**ray_flags(ctx, workers, ray_address, gpus_per_worker))
    searches = run_attack_search(spec, c.store, runtime, c.log)
    click.echo(search_markdown(searches))
