"""Load benchmark of the team server: N users in headless Chromium, idle tabs, memory over visits.

    python bench/bench_load.py --store STORE [--users 1,4,8,16] [--idle-tabs 8] [--idle-s 30]
                               [--visits 100] [--replicas 1] [--phases users,idle,memory] [--root DIR]

Starts the real server (``python -m dashboard.replicas``: one Streamlit process, or ``--replicas``
of them behind nginx) on a copy of ``STORE`` (model weights left out) and drives it with Playwright, as the browser
tests do:

- users: N simultaneous users, each in its own browser context, visit every page once (a page
  counts as rendered when its title heading shows and Streamlit's running indicator is gone). Per
  page: median and p95 render time; errors (an exception box, a traceback, a timeout); the server's
  CPU time (user + system of the server and its children, from psutil) per full visit.
- idle: ``--idle-tabs`` tabs left open on each page; the server's CPU over ``--idle-s`` seconds,
  as a share of one core (after the tabs have rendered and settled).
- memory: one user visits every page ``--visits`` times in a row; the server's resident memory
  after visit 10 and after the last, and the difference.

The browsers share the machine's cores with the server, so visit times mostly show the machine;
the server's CPU per visit is the figure to compare across N. Targets (issue 26): no error at any N;
CPU per visit at 16 users ≤ 1.2 × at 1; 8 idle tabs ≤ 2% of a core on every page; memory after 100
visits within 20 MB of after 10.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "docker")]

from smoke import PAGES, free_port  # noqa: E402  (docker/smoke.py: the pages and their titles)

from landscape.figures.export import CHROMIUM_ARGS, chromium_path  # noqa: E402

TIMEOUT_MS = 180_000

# --tracemalloc: the server under tracemalloc; SIGUSR1 takes a snapshot, and from the second on
# writes the 25 sites whose allocations grew most since the first (where the memory went)
TRACED = r"""
import os, signal, sys, tracemalloc
tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
first = []
def dump(*_):
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if not first:
        first.append(snap)
        return
    with open(os.environ["BENCH_TRACEMALLOC_OUT"], "w") as fh:
        for stat in snap.compare_to(first[0], "traceback")[:25]:
            fh.write(f"{stat.size_diff / 2**20:+.2f} MB in {stat.count_diff:+d} blocks\n")
            for line in stat.traceback.format()[-12:]:  # the innermost frames kept
                fh.write(f"    {line}\n")
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["streamlit", "run", sys.argv[1]]
from streamlit.web.cli import main
main()
"""


class Server:
    def __init__(
        self, store: Path, replicas: int, root: Path = ROOT, traced: Path | None = None, frames: int = 12
    ):
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
        self.store = self.tmp / "store"
        # the dashboard never loads a model: weights are left out of the copy
        shutil.copytree(store, self.store, ignore=shutil.ignore_patterns("*.safetensors", "*.gguf", "*.bin"))
        port = free_port()
        env = dict(
            os.environ,
            SAFETY_LANDSCAPE_STORE=str(self.store),
            SAFETY_LANDSCAPE_REPLICAS=str(replicas),
            SAFETY_LANDSCAPE_REPLICA_PORT=str(free_port()),
            STREAMLIT_SERVER_PORT=str(port),
            STREAMLIT_SERVER_ADDRESS="127.0.0.1",
            STREAMLIT_SERVER_HEADLESS="true",
            STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
            PYTHONPATH=str(root),  # another checkout's dashboard (--root: a before/after run)
        )
        command = [sys.executable, "-m", "dashboard.replicas"]
        if replicas == 1:  # what dashboard.replicas becomes; also runs a checkout older than it
            command = [sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py")]
        if traced is not None:
            env["BENCH_TRACEMALLOC_OUT"] = str(traced)
            env["BENCH_TRACEMALLOC_FRAMES"] = str(frames)
            command = [sys.executable, "-c", TRACED, str(root / "dashboard" / "app.py")]
        self.proc = subprocess.Popen(
            command,
            cwd=self.tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("error: the server did not become healthy")

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.processes()) / 2**20

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def render(page, url: str, title: str) -> tuple[float, str | None]:
    t0 = time.monotonic()
    try:
        await page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        await page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=TIMEOUT_MS)
        await page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
        )
    except Exception as exc:
        return time.monotonic() - t0, f"{url}: {str(exc).splitlines()[0][:120]}"
    elapsed = time.monotonic() - t0
    if await page.locator('[data-testid="stException"]').count():
        return elapsed, f"{url}: an exception box"
    return elapsed, None


async def visit(browser, base: str, times: dict, errors: list) -> None:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    for path, title in PAGES.items():
        elapsed, error = await render(page, f"{base}/{path}", title)
        times.setdefault(path or "/", []).append(elapsed)
        if error:
            errors.append(error)
    await ctx.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def users_phase(browser, server: Server, n: int) -> dict:
    times: dict[str, list[float]] = {}
    errors: list[str] = []
    cpu0, t0 = server.cpu_s(), time.monotonic()
    await asyncio.gather(*(visit(browser, server.url, times, errors) for _ in range(n)))
    wall = time.monotonic() - t0
    cpu = server.cpu_s() - cpu0
    flat = [t for ts in times.values() for t in ts]
    return {
        "n": n,
        "wall_s": wall,
        "cpu_per_visit_s": cpu / n,
        "page_median_s": statistics.median(flat),
        "page_p95_s": pct(flat, 0.95),
        "per_page": {p: (statistics.median(ts), pct(ts, 0.95)) for p, ts in times.items()},
        "errors": errors,
    }


async def idle_phase(browser, server: Server, tabs: int, seconds: float) -> dict[str, float]:
    out = {}
    for path, title in PAGES.items():
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
        pages = [await ctx.new_page() for _ in range(tabs)]
        for page in pages:
            await render(page, f"{server.url}/{path}", title)
        await asyncio.sleep(5)  # let the last reruns settle
        cpu0, t0 = server.cpu_s(), time.monotonic()
        await asyncio.sleep(seconds)
        out[path or "/"] = 100 * (server.cpu_s() - cpu0) / (time.monotonic() - t0)
        await ctx.close()
    return out


async def memory_phase(browser, server: Server, visits: int, traced: bool = False) -> dict:
    rss = {}
    errors: list[str] = []
    times: dict[str, list[float]] = {}
    for i in range(1, visits + 1):
        await visit(browser, server.url, times, errors)
        if i in (10, visits):
            await asyncio.sleep(2)
            rss[i] = server.rss_mb()
            if traced:
                os.kill(server.proc.pid, signal.SIGUSR1)
                await asyncio.sleep(20)  # a snapshot of a large heap takes a while
    return {"rss_mb": rss, "errors": errors}


async def main_async(args) -> None:
    from playwright.async_api import async_playwright

    phases = set(args.phases.split(","))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
        )
        if "users" in phases:
            server = Server(args.store, args.replicas, args.root)
            try:
                await visit(browser, server.url, {}, [])  # warm the server's caches once
                print("| users | page median | page p95 | visit wall | server CPU per visit | errors |")
                print("|---|---|---|---|---|---|")
                rows = []
                for n in [int(x) for x in args.users.split(",")]:
                    r = await users_phase(browser, server, n)
                    rows.append(r)
                    print(
                        f"| {n} | {r['page_median_s']:.1f} s | {r['page_p95_s']:.1f} s | {r['wall_s']:.0f} s | "
                        f"{r['cpu_per_visit_s']:.2f} s | {len(r['errors'])} |",
                        flush=True,
                    )
                    for e in r["errors"][:5]:
                        print(f"    error: {e}")
                ratio = rows[-1]["cpu_per_visit_s"] / rows[0]["cpu_per_visit_s"]
                print(f"server CPU per visit at {rows[-1]['n']} users / at {rows[0]['n']}: {ratio:.2f}×")
            finally:
                server.close()
        if "idle" in phases:
            server = Server(args.store, args.replicas, args.root)
            try:
                idle = await idle_phase(browser, server, args.idle_tabs, args.idle_s)
                print(f"\n{args.idle_tabs} idle tabs, server CPU over {args.idle_s:.0f} s (% of a core):")
                print("| page | " + " | ".join(idle) + " |")
                print("|---|" + "---|" * len(idle))
                print("| CPU | " + " | ".join(f"{v:.1f}%" for v in idle.values()) + " |", flush=True)
            finally:
                server.close()
        if "memory" in phases:
            server = Server(args.store, args.replicas, args.root, args.tracemalloc, args.trace_frames)
            try:
                m = await memory_phase(browser, server, args.visits, args.tracemalloc is not None)
                (a, ra), (b, rb) = sorted(m["rss_mb"].items())
                print(
                    f"\nserver memory: {ra:.0f} MB after {a} visits, {rb:.0f} MB after {b} "
                    f"({rb - ra:+.1f} MB); errors: {len(m['errors'])}"
                )
            finally:
                server.close()
        await browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True, help="a store to serve (copied first)")
    p.add_argument("--users", default="1,4,8,16")
    p.add_argument("--idle-tabs", type=int, default=8)
    p.add_argument("--idle-s", type=float, default=30.0)
    p.add_argument("--visits", type=int, default=100)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--phases", default="users,idle,memory")
    p.add_argument(
        "--tracemalloc",
        type=Path,
        metavar="FILE",
        help="memory phase under tracemalloc: write where memory grew between visit 10 and the last",
    )
    p.add_argument(
        "--trace-frames",
        type=int,
        default=12,
        help="frames tracemalloc keeps per allocation (1-2 keep the server fast enough for 100 visits)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="serve this checkout's dashboard (e.g. a worktree of an older commit)",
    )
    args = p.parse_args()
    if not (args.store / "meta").is_dir():
        raise SystemExit(f"error: {args.store} is not a store (no meta/ inside)")
    if chromium_path() is None:
        raise SystemExit("error: Debian chromium is missing (make system-deps)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
