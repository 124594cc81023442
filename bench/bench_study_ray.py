"""Benchmark: a whole study in one process against the same study with its fine-tunes and
evaluations as N Ray tasks (``landscape study --workers N``), in one run.

Each configuration runs in a fresh store (nothing shared, nothing cached), so both do the same work:
every fine-tune, defence and evaluation. Printed: the wall time of each (Ray start-up and the
sequential replay included) and the ratio to the single-process run. Ray tasks run one torch thread
each (Ray sets OMP_NUM_THREADS=1), so the single-process run is given ``--threads`` (default 1) too.
On a machine with fewer free cores than workers the figure says what distribution costs there, not
what it gains on a multi-GPU node (one GPU per task: ``--gpus-per-worker 1``).

    python bench/bench_study_ray.py (--study FILE | --preset tiny) [--workers 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=None, help="A study YAML file.")
    parser.add_argument("--preset", default=None, help="A built-in study (tiny, demo, …).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the one-process run")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from cache import Store
    from landscape.core.specs import Runtime
    from landscape.study.pipeline import load_study, run_study

    torch.set_num_threads(args.threads)
    spec = load_study(args.study, args.preset)
    times = {}
    for name, workers in (("one process", None), (f"{args.workers} Ray tasks", args.workers)):
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store") as store:
            t0 = time.perf_counter()
            record = run_study(spec, store, Runtime(progress=False, workers=workers), log=lambda _: None)
            times[name] = time.perf_counter() - t0
            assert record["status"] == "complete"
    base = times["one process"]
    print(f"study {spec.name!r}: {len(spec.runs)} runs, {os.cpu_count()} cores")
    for name, s in times.items():
        print(f"  {name:>14}: {s:7.1f} s  ({base / s:.2f}× the one-process speed)")


if __name__ == "__main__":
    main()
