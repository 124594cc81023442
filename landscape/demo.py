"""The built-in demo: align → evaluate → auto-range 1D scan → coarse 2D scan → VISAGE table.

Every stage is cached in the store, so a second run prints the same tables in seconds.
"""

from __future__ import annotations

import time

import click

from landscape.align import align_model
from landscape.autorange import AutoRangeSpec, auto_range
from landscape.report import evaluate_models, print_curve, print_grid, print_summary
from landscape.scan import Session, format_duration, scan_grid
from landscape.specs import (
    AlignSpec,
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    ScanSpec,
)


def demo_specs(n_prompts: int, points: int, grid2d: int, prompts2d: int, dtype: str):
    """The demo's 1D and 2D scan specs before auto-range sets their axes."""
    model = ModelSpec(source="aligned", dtype=dtype)
    gen = GenerationSpec(max_new_tokens=32)
    one = ScanSpec(
        model=model,
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(num=points),
        prompts=PromptSpec(source="builtin:harmful", limit=n_prompts),
        generation=gen,
    )
    two = ScanSpec(
        model=model,
        directions=(DirectionSpec(seed=0), DirectionSpec(seed=1000)),
        alphas=AxisSpec(num=grid2d),
        betas=AxisSpec(num=grid2d),
        prompts=PromptSpec(source="builtin:harmful", limit=prompts2d),
        generation=GenerationSpec(max_new_tokens=24),
    )
    return one, two


def run_demo(c, n_prompts: int, points: int, grid2d: int, prompts2d: int) -> None:
    t0 = time.perf_counter()
    runtime = c.runtime()
    dtype = "bfloat16" if c.device.startswith("cuda") else "float32"
    click.echo("== 1. safety alignment of the embedded SmolLM2-135M-Instruct")
    rec = align_model(AlignSpec(), c.store, runtime, c.log)
    how = "from the store" if rec["cached"] else f"in {format_duration(rec['elapsed_s'])}"
    click.echo(
        f"aligned model {rec['key'][:12]} ({how}), epoch losses {[round(x, 3) for x in rec['epoch_losses']]}"
    )
    click.echo("\n== 2. ASR before and after alignment (paper keyword judge, greedy)")
    click.echo(
        evaluate_models(
            c, ["smollm2-135m-instruct", "aligned"], "builtin:harmful", 80, benign_limit=50, max_new_tokens=32
        )
    )
    one, two = demo_specs(n_prompts, points, grid2d, prompts2d, dtype)
    session = Session(c.store, runtime, c.log)
    click.echo("\n== 3. auto range: where does the ASR reach 100% along a random direction?")
    ar = auto_range(
        one, c.store, runtime, AutoRangeSpec(probe_prompts=min(16, n_prompts)), log=c.log, session=session
    )
    ((neg, pos),) = ar.edges
    click.echo(f"basin edges (ASR=100% on the probe prompts): -{neg:.3f} / +{pos:.3f}")
    click.echo(f"\n== 4. 1D safety landscape ({ar.spec.alphas.num} points, {n_prompts} prompts)")
    r1 = scan_grid(ar.spec, c.store, runtime, log=c.log, session=session)
    print_curve(r1.grid)
    print_summary(r1.summary)
    # The 2D grid spans the basin edges with a small margin: a square at the 1D range would spend
    # most of its points in the corners, far outside the basin, where every response runs to the
    # token limit.
    half = round(max(neg, pos) * 1.15, 4)
    two = two.model_copy(
        update={
            "alphas": AxisSpec(start=-half, stop=half, num=grid2d),
            "betas": AxisSpec(start=-half, stop=half, num=grid2d),
        }
    )
    click.echo(
        f"\n== 5. 2D safety landscape ({grid2d}x{grid2d} over ±{half:g}, {prompts2d} prompts, "
        "orthogonal directions)"
    )
    r2 = scan_grid(two, c.store, runtime, log=c.log, session=session)
    print_grid(r2.grid)
    print_summary(r2.summary)
    click.echo("\n== VISAGE")
    click.echo(
        f"{'landscape':<12} {'VISAGE (paper)':>15} {'VISAGE (reference)':>19} {'ASR at θ0 %':>12}  key"
    )
    for name, r in (("1D", r1), ("2D", r2)):
        s = r.summary
        ref = "—" if s.get("visage_reference") is None else f"{s['visage_reference']:.2f}"
        click.echo(f"{name:<12} {s['visage']:>15.2f} {ref:>19} {s['asr_origin_pct']:>12.1f}  {r.key[:12]}")
    click.echo(
        f"\ndone in {format_duration(time.perf_counter() - t0)}; results are in {c.store.root} "
        "(`landscape list`, `landscape show KEY`)"
    )
