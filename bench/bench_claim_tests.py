"""Size and power of the claims' paired tests against a known truth (``landscape.study.claims``).

A claim compares one run's harmful score with another's on the same prompts: McNemar's exact test
with one seed a side, the bootstrap over prompts and seeds (``core.stats.bootstrap_difference``)
with several. Simulated: 32 prompts, a prompt's difficulty z ~ N(0, 1) shared by both sides,
P(comply) = sigmoid(a + b·z + u_s) with a seed effect u_s ~ N(0, us²) drawn for every trained
model (the two sides are different fine-tunes, so their seed effects are independent). Under the
null both sides have the same a; the power column lowers the subject's a by 1.5 (about 50% → 18%
at a = 0). Prints, per seed count S and seed spread us, the share of p < 0.05 (nominal 5%).

    python bench/bench_claim_tests.py                  # the full table (~4 min on 2 cores)
    python bench/bench_claim_tests.py --reps 300 --seeds 1,3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from landscape.core.stats import bootstrap_difference, mcnemar_exact


def _sig(t):
    return 1 / (1 + np.exp(-t))


def rejection(s: int, a: float, b: float, us: float, shift: float, reps: int, boot: int, seed: int) -> float:
    """Share of p < 0.05 over ``reps`` simulated pairs of runs (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for r in range(reps):
        z = rng.standard_normal(32)
        ua, ub = rng.standard_normal(s) * us, rng.standard_normal(s) * us
        x = rng.random((s, 32)) < _sig(a - shift + b * z[None] + ua[:, None])
        y = rng.random((s, 32)) < _sig(a + b * z[None] + ub[:, None])
        p = mcnemar_exact(x[0], y[0]).p if s == 1 else bootstrap_difference(x, y, boot, r).p
        hits += p < 0.05
    return hits / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1000, help="simulated pairs of runs per row")
    ap.add_argument("--b", type=int, default=400, help="bootstrap resamples per test")
    ap.add_argument("--seeds", default="1,2,3,5,10", help="seed counts a side")
    args = ap.parse_args()
    start = time.perf_counter()
    print(f"paired tests at 0.05, 32 prompts, {args.reps} pairs a row, B = {args.b}: share of p < 0.05")
    print(f"{'seeds':>5} {'a':>5} {'b':>3} {'us':>4}  {'size':>6}  {'power':>6}  test")
    for s in (int(v) for v in args.seeds.split(",")):
        test = "McNemar exact" if s == 1 else "bootstrap over prompts and seeds"
        for a, b in ((-1.0, 1.0), (0.5, 3.0)):
            for us in (0.0, 0.5, 1.0):
                size = rejection(s, a, b, us, 0.0, args.reps, args.b, 1)
                power = rejection(s, a, b, us, 1.5, args.reps, args.b, 2)
                print(f"{s:>5} {a:>5} {b:>3g} {us:>4}  {size:>6.3f}  {power:>6.3f}  {test}", flush=True)
    error = 196 * (0.05 * 0.95 / args.reps) ** 0.5
    print(
        f"({time.perf_counter() - start:.0f} s; a 5% size is measured to ±{error:.1f} points at {args.reps} pairs)"
    )


if __name__ == "__main__":
    main()
