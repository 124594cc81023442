"""Benchmark: scan throughput on 1 and 2 Ray workers against the single-process scan, in one run.

The same scan (embedded model by default, 1D, full responses so every point decodes the whole token
budget and all configurations do the same work) is computed three times in one store, its points
dropped between runs: in this process (``scan_grid`` without workers), then on a local Ray cluster
with 1 and with 2 actors. Printed per configuration: the wall time of the whole scan (model loads
and, for Ray, actor start-up included), the steady throughput (points per second between the first
and the last point stored) and both as ratios to the single-process run. Ray actors run one torch
thread each (Ray sets OMP_NUM_THREADS=1); the single-process run uses ``--threads`` (default: every
core, as a plain ``landscape scan`` would), and is repeated with one thread, so the gain of Ray's
thread pinning on a busy machine is not mistaken for a gain of distribution.

On a 2-core machine two actors cannot beat one process that already uses both cores for its matrix
products: the figure says what distribution costs here, not what it gains on a GPU node.

    python bench/bench_ray.py [--model smollm2-135m-instruct] [--points 9] [--prompts 8]
                              [--max-new-tokens 32] [--threads N] [--json out.json]

On a GPU, ``--device cuda --dtype bfloat16 --workers 1,2,4 --gpus-per-worker 0.25`` compares the
single-process scan on the GPU with 1, 2 and 4 replicas of the model sharing it (Ray's fractional
GPUs; 0.25 lets four actors onto one GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _spec(args):
    from landscape.core.specs import AxisSpec, DirectionSpec, GenerationSpec, ModelSpec, PromptSpec, ScanSpec

    return ScanSpec(
        model=ModelSpec(source=args.model, dtype=args.dtype),
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(start=-0.2, stop=0.2, num=args.points),
        prompts=PromptSpec(source="builtin:harmful", limit=args.prompts),
        generation=GenerationSpec(max_new_tokens=args.max_new_tokens, early_stop=False),
    )


def _run(store, spec, runtime) -> dict:
    from landscape.engine.scan import prepare_scan, scan_grid

    prep = prepare_scan(spec, store)
    for p in prep.points:
        store.drop_point(prep.key, p.i, p.j)
    t0 = time.perf_counter()
    res = scan_grid(spec, store, runtime, log=lambda _m: None)
    wall = time.perf_counter() - t0
    finished = sorted(store.point(prep.key, p.i, p.j)["finished"] for p in prep.points)
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if finished[-1] > finished[0] else None
    point_s = [store.point(prep.key, p.i, p.j)["point_s"] for p in prep.points]
    assert res.computed == len(prep.points)
    return {
        "wall_s": wall,
        "points": len(prep.points),
        "steady_points_per_s": steady,
        "mean_point_s": sum(point_s) / len(point_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--points", type=int, default=9)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--store", default=None, help="store directory (default: a temporary one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--workers", default="1,2", help="Ray actor counts to time, comma-separated")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0, help="> 0: actors on the GPU (replicas)")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    import ray
    import torch

    from cache import Store
    from landscape.core.specs import Runtime

    torch.set_num_threads(args.threads)
    spec = _spec(args)
    root = Path(args.store or tempfile.mkdtemp(prefix="bench-ray-"))
    out: dict = {"cpus": os.cpu_count(), "threads_single": args.threads, **vars(args)}
    with Store(root) as store:
        from landscape.core.models import load_model

        load_model(spec.model, "cpu", store)  # a GGUF's one-off conversion stays outside every timing
        single = Runtime(progress=False, device=args.device)
        out["single"] = _run(store, spec, single)
        if args.threads != 1 and args.device == "cpu":  # a Ray actor's one thread (a busy machine)
            torch.set_num_threads(1)
            out["single_1thread"] = _run(store, spec, single)
            torch.set_num_threads(args.threads)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            for n in counts:
                rt = Runtime(progress=False, workers=n, gpus_per_worker=args.gpus_per_worker)
                out[f"ray{n}"] = _run(store, spec, rt)
        finally:
            ray.shutdown()
    base = out["single"]
    print(
        f"{args.points} points × {args.prompts} prompts × {args.max_new_tokens} tokens (no early stop), "
        f"{args.model} ({args.dtype}, {args.device}), {os.cpu_count()} CPUs; single process: {args.threads} "
        f"torch threads; Ray actors: {args.gpus_per_worker or 'no'} GPU each"
    )
    print(
        f"{'config':<16}{'wall s':>9}{'× single':>10}{'steady pt/s':>13}{'× single':>10}{'mean point s':>14}"
    )
    for name in ["single", "single_1thread"] + [f"ray{n}" for n in counts]:
        if name not in out:
            continue
        r = out[name]
        steady = r["steady_points_per_s"]
        ratio = (
            steady / base["steady_points_per_s"] if steady and base["steady_points_per_s"] else float("nan")
        )
        print(
            f"{name:<16}{r['wall_s']:>9.1f}{base['wall_s'] / r['wall_s']:>10.2f}"
            f"{steady or float('nan'):>13.3f}{ratio:>10.2f}{r['mean_point_s']:>14.2f}"
        )
    print("× single: speed relative to the single-process run (above 1 is faster)")
    print(
        f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes share them)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
