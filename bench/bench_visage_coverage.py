"""Coverage and bias of VISAGE's 95% intervals against a known truth (``landscape.core.simulate``).

For every curve shape (walls that reach 100% exactly, walls that only approach it, asymmetric,
shallow, mixed), geometry (1D with K = 1 and 3 directions, 2D) and prompt count (32, 80), it draws
``--reps`` scans with prompts correlated across points (Gaussian copula, ρ = 0.6) and prints the
paper estimator's bias and, per interval method, the share of intervals containing the population
VISAGE and the mean width. Nominal 95%; the bar this project holds is ≥ 90% on every row.

    python bench/bench_visage_coverage.py                 # the full table (~10 min on 2 cores)
    python bench/bench_visage_coverage.py --reps 60 --quick
"""

from __future__ import annotations

import argparse
import time

from landscape.core.simulate import SHAPES, coverage

METHODS = ("percentile", "bca", "bounds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="simulated scans per row")
    ap.add_argument("--b", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--rho", type=float, default=0.6, help="prompt correlation across points")
    ap.add_argument("--quick", action="store_true", help="1D K=1 and 2D only, n = 32 only")
    args = ap.parse_args()
    geometries = [(1, 1), (1, 3), (2, 1)]
    ns = (32, 80)
    if args.quick:
        geometries, ns = [(1, 1), (2, 1)], (32,)
    print(
        f"VISAGE 95% intervals vs the population VISAGE: {args.reps} scans per row, B = {args.b}, "
        f"ρ = {args.rho}; coverage % (mean width in points)"
    )
    head = f"{'shape':<18} {'grid':<7} {'n':>3} {'truth':>6} {'bias':>6}  " + "  ".join(
        f"{m:>16}" for m in METHODS
    )
    print(head)
    print("-" * len(head))
    worst = {m: 100.0 for m in METHODS}
    t0 = time.perf_counter()
    for shape in SHAPES:
        for dims, k in geometries:
            for n in ns:
                c = coverage(shape, dims, k, n, rho=args.rho, reps=args.reps, b=args.b, methods=METHODS)
                grid = f"{dims}D K={k}" if dims == 1 else "2D 11²"
                cells = []
                for m in METHODS:
                    pct = 100 * c.coverage[m]
                    worst[m] = min(worst[m], pct)
                    cells.append(f"{pct:6.1f} ({c.width[m]:5.1f})  ")
                print(
                    f"{shape:<18} {grid:<7} {n:>3} {c.truth:6.2f} {c.bias:+6.2f}  " + "".join(cells),
                    flush=True,
                )
    print("-" * len(head))
    ref_worst = 100.0
    print("released-code VISAGE (safety_avg), 1D K=1, same columns:")
    for shape in SHAPES:
        for n in ns:
            c = coverage(
                shape, 1, 1, n, rho=args.rho, reps=args.reps, b=args.b, methods=METHODS, statistic="reference"
            )
            ref_worst = min(ref_worst, 100 * c.coverage["bounds"])
            cells = "".join(f"{100 * c.coverage[m]:6.1f} ({c.width[m]:5.1f})  " for m in METHODS)
            print(f"{shape:<18} {'1D K=1':<7} {n:>3} {c.truth:6.2f} {c.bias:+6.2f}  {cells}", flush=True)
    print("-" * len(head))
    print(
        f"worst coverage: released-code bounds {ref_worst:.1f}%; paper "
        + ", ".join(f"{m} {worst[m]:.1f}%" for m in METHODS)
    )
    print(f"elapsed {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
