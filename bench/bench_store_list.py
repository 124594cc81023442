"""Benchmark: `landscape list` and the dashboard's scan table on a store of many scans.

A synthetic store holds N copies of one stored scan (its record, progress, points and responses
under N new keys), as a lab's store of N scans. Timed in one run, each the same way:

- ``list cold``: `landscape list` as a subprocess on a store whose summaries are not memoised yet
  (every grid read, every VISAGE interval bootstrapped: what every call cost before);
- ``list warm``: the same command again (complete scans' summaries read from the store);
- ``table``: building the dashboard's Overview table once (``dashboard.data._scan_table``'s body),
  which the dashboard now does only when the store's change counter moves (before: every 2 s).

    python bench/bench_store_list.py --source STORE --scan KEY [--sizes 200,1000]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_store(source: str, scan: str, n: int, root: Path) -> Path:
    from cache import Store

    with Store(source, create=False) as src, Store(root) as dst:
        key = src.resolve_scan_key(scan)
        record = src.scan_record(key)
        points = [(k, src.points.get(k)) for k in src.points.iterkeys() if k.startswith(key)]
        progress = src.get_json(f"progress:{key}")
        for c in range(n):
            new = hashlib.sha256(f"{key}:{c}".encode()).hexdigest()
            for k, raw in points:
                dst.points.set(new + k[len(key) :], raw)
            dst.put_json(f"progress:{new}", progress)
            dst.put_scan_record(new, dict(record, created=record.get("created", 0) + c))
    return root


def time_list(root: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "landscape", "-q", "--store", str(root), "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    return time.perf_counter() - t0, len(res.stdout.splitlines()) - 1


def time_table(root: Path) -> float:
    from cache import Store
    from dashboard import data

    with Store(root) as store:
        data._SUMMARIES.clear()
        t0 = time.perf_counter()
        rows = [data._describe(store, s) for s in store.list_scans() if not s.get("calibration")]
        assert rows
        return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a store holding the scan to copy")
    ap.add_argument("--scan", required=True, help="its key (a prefix is enough)")
    ap.add_argument("--sizes", default="200,1000")
    args = ap.parse_args(argv)
    print(f"{'scans':>6} {'list cold s':>12} {'list warm s':>12} {'cold/warm':>10} {'table s':>8}")
    for n in (int(v) for v in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp())
        try:
            root = synthetic_store(args.source, args.scan, n, tmp / "store")
            cold, rows = time_list(root)
            warm, rows2 = time_list(root)
            assert rows == rows2 >= n
            table = time_table(root)
            print(f"{n:>6} {cold:>12.2f} {warm:>12.2f} {cold / warm:>10.1f} {table:>8.2f}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
