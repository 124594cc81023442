"""Benchmark: server time to render the 2D page for a cached 41×41 scan, and the Overview with 500 scans.

Synthetic scans are written straight into a temporary store (the store API, real diskcache), so the
numbers measure the dashboard, not the model. Every 1D scan has its 21 points, since the Overview
recomputes each scan's VISAGE from its grid. Each page is rendered with Streamlit's AppTest (the
same script runner the server uses) cold (first render: store reads + figure building) and warm
(cached loaders), and compared with the time of reading the grid alone in the same run.

    python bench/bench_dashboard.py [--side 41] [--scans 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fill(store, side: int, n_scans: int) -> str:
    alphas = np.linspace(-0.2, 0.2, side).tolist()
    aa, bb = np.meshgrid(alphas, alphas, indexing="ij")
    asr = np.clip(100 * (aa**2 + bb**2) / 0.02, 0, 100)
    spec = {
        "model": {"source": "aligned"},
        "directions": [{"kind": "random", "seed": 0, "norm": "layer"}] * 2,
        "prompts": {"source": "builtin:harmful", "limit": 32},
        "system_prompt": "default",
        "judge": {"name": "keywords"},
    }
    key = "big" + "0" * 61
    store.put_scan_record(
        key,
        {
            "spec": spec,
            "kind": "2d",
            "alphas": alphas,
            "betas": alphas,
            "total_points": side * side,
            "status": "complete",
            "created": time.time(),
            "summary": {"visage": 42.0, "visage_reference": None, "asr_origin_pct": 0.0},
        },
    )
    for i in range(side):
        for j in range(side):
            store.put_point(
                key,
                i,
                j,
                {"asr_pct": float(asr[i, j]), "incoherent_pct": 0.0, "alpha": alphas[i], "beta": alphas[j]},
                [{"prompt": "p", "response": "r", "refused": True}],
            )
    curve = np.clip(100 * np.asarray(alphas[:21]) ** 2 / 0.01, 0, 100)
    for k in range(n_scans - 1):
        key_k = f"s{k:063d}"
        store.put_scan_record(
            key_k,
            {
                "spec": dict(spec, directions=spec["directions"][:1]),
                "kind": "1d",
                "alphas": alphas[:21],
                "betas": None,
                "total_points": 21,
                "status": "complete",
                "created": time.time() - k,
                "summary": {"visage": 50.0 + k % 10, "asr_origin_pct": 0.0},  # as old records have
            },
        )
        # Every scan has its points: the pages recompute VISAGE from the grid, never the summary.
        for i, a in enumerate(alphas[:21]):
            store.put_point(key_k, i, 0, {"asr_pct": float(curve[i]), "alpha": a, "beta": 0.0}, [])
    return key


def render(page: str | None) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    if page:
        at.run()
        at.switch_page(f"views/{page}.py")
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    assert not at.exception, at.exception
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=41)
    p.add_argument("--scans", type=int, default=500)
    args = p.parse_args()
    from cache import Store

    with tempfile.TemporaryDirectory() as tmp:
        with Store(tmp) as store:
            t0 = time.perf_counter()
            key = fill(store, args.side, args.scans)
            fill_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.scan_grid(key)
            grid_s = time.perf_counter() - t0
        os.environ["SAFETY_LANDSCAPE_STORE"] = tmp
        first = render(None)  # a fresh server: every scan's summary is computed from its grid
        time.sleep(2.5)  # let the scan table's 2 s TTL lapse, as between a user's page visits
        basin_cold = render("basin")
        basin_warm = render("basin")
        overview_cold = render(None)
        overview_warm = render(None)
    print(f"store: one {args.side}x{args.side} scan + {args.scans - 1} 1D scans (filled in {fill_s:.1f} s)")
    print(f"reading the {args.side}x{args.side} grid alone: {grid_s:.3f} s")
    print(
        f"2D basin page:  cold {basin_cold:.3f} s   warm {basin_warm:.3f} s   (cold / grid read: {basin_cold / grid_s:.1f}x)"
    )
    print(
        f"overview, {args.scans} scans:  first render {first:.3f} s   cold {overview_cold:.3f} s   "
        f"warm {overview_warm:.3f} s"
    )


if __name__ == "__main__":
    main()
