"""The built-in demo: align → evaluate → auto range → 1D scans along K random directions → coarse
2D scan → VISAGE table.

The paper reports VISAGE as mean and spread over several random directions (it stabilises after
about three), so the demo scans K = 3 directions (seeds 0, 1, 2) by default. Auto range runs once,
along the first direction, and every direction reuses its grid: an odd number of points centred on
θ₀ (so the released code's reference VISAGE is defined), spanning the basin edge times a margin.
The time for the extra directions comes from holding directions in memory instead of regenerating
them at every point, and from fewer, better-placed points (9 instead of 13, most of them inside the
basin), never from fewer prompts.

Every stage is cached in the store, so a second run prints the same tables in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from landscape.core.format import format_duration, format_number
from landscape.core.specs import (
    AlignSpec,
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    judgement_note,
    second_seed,
)
from landscape.core.stats import VisageInterval
from landscape.core.uncertainty import interval_label, visage_interval, visage_interval_text
from landscape.core.visage import mean_std, reference_text
from landscape.engine.autorange import AutoRangeSpec, auto_range
from landscape.engine.family import scan_family
from landscape.engine.scan import Log, ScanResult, Session, scan_grid
from landscape.study.report import evaluate_models, grid_text, summary_text
from landscape.training.align import align_model

# How far past the widest probed edge the 1D grid reaches: far enough that the ASR = 100% plateau
# is on the grid on both sides, near enough that most points sit inside the basin, where refusals
# stop early and a point is cheap.
MARGIN = 1.25


def demo_specs(n_prompts: int, points: int, grid2d: int, prompts2d: int, dtype: str):
    """The demo's 1D (first direction) and 2D scan specs before auto range sets their axes."""
    model = ModelSpec(source="aligned", dtype=dtype)
    one = ScanSpec(
        model=model,
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(num=points),
        prompts=PromptSpec(source="builtin:harmful", limit=n_prompts),
        generation=GenerationSpec(max_new_tokens=32),
    )
    two = ScanSpec(
        model=model,
        directions=(DirectionSpec(seed=0), DirectionSpec(seed=second_seed(0))),
        alphas=AxisSpec(num=grid2d),
        betas=AxisSpec(num=grid2d),
        prompts=PromptSpec(source="builtin:harmful", limit=prompts2d),
        generation=GenerationSpec(max_new_tokens=24),
    )
    return one, two


def curves_text(results: list[ScanResult]) -> str:
    """The K 1D curves side by side: ASR % per direction at each alpha (one shared grid)."""
    lines = [f"{'alpha':>8}  " + "  ".join(f"{'seed ' + str(r.spec.directions[0].seed):>7}" for r in results)]
    for i, a in enumerate(results[0].grid.alphas):
        cells = [f"{format_number(r.grid.values['asr_pct'][i], 0):>7}" for r in results]
        lines.append(f"{a:>8.3f}  " + "  ".join(cells))
    return "\n".join(lines)


def visage_table(
    one_d: list[ScanResult],
    two_d: ScanResult,
    ci_1d: VisageInterval | None = None,
    ci_2d: VisageInterval | None = None,
) -> str:
    """The demo's closing table: 1D VISAGE as mean ± std over the directions, and the 2D scan's,
    each with its bootstrap interval over prompts (the 1D one resampling prompts jointly across the
    directions; "—" where none was computed).

    A reference VISAGE that is undefined for a scan (see ``visage.reference_note``) shows as "—"
    with the reason, never as a number."""

    def pm(values) -> str:
        m = mean_std(v for v in values if v is not None)
        if m.n == 0:
            return "—"
        return f"{m.mean:.2f} ± {m.std:.2f}" + (f" (n={m.n})" if m.n != len(one_d) else "")

    sums = [r.summary for r in one_d]
    ref_1d = pm(s.get("visage_reference") for s in sums)
    if ref_1d == "—":
        ref_1d = reference_text(sums[0])
    s2 = two_d.summary
    rows = [
        (
            f"1D, {len(one_d)} directions",
            pm(s.get("visage") for s in sums),
            visage_interval_text(ci_1d),
            ref_1d,
            format_number(sums[0].get("asr_origin_pct"), 1),
            " ".join(r.key[:8] for r in one_d),
        ),
        (
            "2D",
            format_number(s2.get("visage"), 2),
            visage_interval_text(ci_2d),
            reference_text(s2),
            format_number(s2.get("asr_origin_pct"), 1),
            two_d.key[:8],
        ),
    ]
    head = (
        f"{'landscape':<16} {'VISAGE (paper)':>16} {'95% CI':>18} {'VISAGE (reference)':>20} "
        f"{'ASR at θ0 %':>12}  keys"
    )
    lines = [f"{a:<16} {b:>16} {ci:>18} {c:>20} {d:>12}  {e}" for a, b, ci, c, d, e in rows]
    return "\n".join([head] + lines)


def run_demo(
    store,
    runtime: Runtime,
    log: Log,
    out: Callable[[str], None] = print,
    *,
    n_prompts: int = 32,
    points: int = 9,
    grid2d: int = 5,
    prompts2d: int = 12,
    directions: int = 3,
) -> None:
    """Run the demo on ``store``, printing its report through ``out`` (``log`` gets progress)."""
    t0 = time.perf_counter()
    # Directions held in memory (one model-sized copy each): a point then only adds them instead of
    # regenerating them, which pays for the extra directions (results are bit-identical).
    runtime = runtime.model_copy(update={"keep_directions": True})
    dtype = "bfloat16" if runtime.device.startswith("cuda") else "float32"
    out("== 1. safety alignment of the embedded SmolLM2-135M-Instruct")
    rec = align_model(AlignSpec(), store, runtime, log)
    how = "from the store" if rec.cached else f"in {format_duration(rec.elapsed_s)}"
    out(f"aligned model {rec.key[:12]} ({how}), epoch losses {[round(x, 3) for x in rec.epoch_losses]}")
    out("\n== 2. ASR before and after alignment (paper keyword judge, greedy)")
    models = ["smollm2-135m-instruct", "aligned"]
    out(
        evaluate_models(
            store, runtime, log, models, "builtin:harmful", 80, benign_limit=50, max_new_tokens=32
        )
    )
    one, two = demo_specs(n_prompts, points, grid2d, prompts2d, dtype)
    session = Session(store, runtime, log)
    out("\n== 3. auto range: where does the ASR reach 100% along a random direction?")
    cfg = AutoRangeSpec(probe_prompts=min(16, n_prompts), margin=MARGIN)
    ar = auto_range(one, store, runtime, cfg, log=log, session=session)
    ((neg, pos),) = ar.edges
    out(f"basin edges (ASR=100% on the probe prompts): -{neg:.3f} / +{pos:.3f}")
    out(
        f"\n== 4. 1D safety landscapes along {directions} random directions (seeds 0–{directions - 1}; "
        f"{ar.spec.alphas.num} points over ±{ar.spec.alphas.stop:g}, {n_prompts} prompts each)"
    )
    # Auto range ran once, along the first direction: every direction reuses its grid.
    r1 = scan_family(ar.spec, directions, store, runtime, log=log, session=session)
    out("ASR % along each direction")
    out(curves_text(r1))
    for r in r1:
        out(f"-- seed {r.spec.directions[0].seed}: " + summary_text(r.summary))
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
    out(
        f"\n== 5. 2D safety landscape ({grid2d}x{grid2d} over ±{half:g}, {prompts2d} prompts, "
        "orthogonal directions)"
    )
    r2 = scan_grid(two, store, runtime, log=log, session=session)
    out(grid_text(r2.grid))
    out(summary_text(r2.summary))
    out("\n== VISAGE (1D: mean ± std over the directions; the paper reports the spread)")
    ci_1d = visage_interval(store, [r.key for r in r1])
    ci_2d = visage_interval(store, [r2.key])
    out(visage_table(r1, r2, ci_1d, ci_2d))
    if ci_1d is not None:
        out(
            f"95% CI: {interval_label(ci_1d)}, from the lowest VISAGE the verdicts allow (every point seen "
            "at 100% counted inside the basin) to the paper estimator's upper quantile; the 1D one "
            "resamples the same prompts across all directions"
        )
    out(f"1D ASRs {judgement_note(r1[0].spec.generation)}; 2D {judgement_note(r2.spec.generation)}")
    out(
        f"\ndone in {format_duration(time.perf_counter() - t0)}; results are in {store.root} "
        "(`landscape list`, `landscape show KEY`)"
    )
