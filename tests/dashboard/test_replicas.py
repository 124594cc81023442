"""More than one dashboard process on one store (issue 26 §6).

- Two processes (two replicas, or two visitors racing) submitting at the same moment never pass the
  job limit together, nor start one key twice: each round releases both at once from a go-file.
- ``python -m dashboard.replicas`` with two replicas behind its nginx: a browser stays on its replica
  (cookie), new browsers spread over both, and a scan started through one replica shows on the
  other's Run page and counts against the job limit there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from cache import Store
from dashboard import jobs
from dashboard.replicas import replica_at
from landscape.figures.export import chromium_path

from ..conftest import ROOT
from .test_browser import _free_port
from .test_jobs import SLEEPER

RACER = """
import json, sys, time
from pathlib import Path
from cache import Store
from dashboard import jobs
from dashboard.commands import ScanChoice, scan_args

real = jobs.job_command
jobs.job_command = lambda d, a: [real(d, a)[0], "-c", SLEEPER, *real(d, a)[1:]]
store = Store(sys.argv[1])
args = scan_args(ScanChoice(model=sys.argv[2], points=int(sys.argv[3]), limit=2))
jobs.prepare_scan(jobs.scan_spec(args).spec, store)  # warm: the race is the launch, not the parsing
print("ready", flush=True)
go = Path(sys.argv[4])
while not go.exists():
    time.sleep(0.0002)
try:
    job = jobs.submit_scan(args, store, max_jobs=1)
    print(json.dumps({"pid": job.pid, "attached": job.attached}), flush=True)
except jobs.JobError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
""".replace("SLEEPER", repr(SLEEPER))


def _race(store_dir: Path, model: Path, points: tuple[int, int], go: Path) -> list[dict]:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(store_dir), str(model), str(n), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in points
    ]
    for r in racers:
        assert r.stdout.readline().strip() == "ready"
    go.touch()
    out = [json.loads(r.stdout.readline()) for r in racers]
    for r in racers:
        r.wait(timeout=60)
    go.unlink()
    return out


def _kill_jobs(store: Store) -> None:
    for job in jobs.running_jobs(store):
        jobs.cancel(store, job.key)
    for p in psutil.process_iter(["cmdline"]):
        if SLEEPER in (p.info["cmdline"] or []):
            p.kill()


@pytest.mark.parametrize("same_key", [False, True], ids=["two scans", "one scan twice"])
def test_simultaneous_launches_from_two_processes_hold_the_job_limit(store, tiny_model, tmp_path, same_key):
    go = tmp_path / "go"
    points = (3, 3) if same_key else (3, 5)
    try:
        for _ in range(4):
            out = _race(store.root, tiny_model, points, go)
            started = [o for o in out if "pid" in o and not o["attached"]]
            sleepers = [p for p in psutil.process_iter(["cmdline"]) if SLEEPER in (p.info["cmdline"] or [])]
            assert len(started) == 1, out
            assert len(sleepers) == 1, out  # one process, not one per replica
            if same_key:
                assert [o.get("attached") for o in out].count(True) == 1, out
            else:
                assert any("1 job(s) already running" in o.get("error", "") for o in out), out
            _kill_jobs(store)
    finally:
        _kill_jobs(store)


# -- two replicas behind the launcher's nginx ------------------------------------------------

NGINX = "/usr/sbin/nginx"


@pytest.fixture
def replicas(tmp_path, tiny_model):
    port = _free_port()
    env = dict(
        os.environ,
        SAFETY_LANDSCAPE_STORE=str(tmp_path / "store"),
        SAFETY_LANDSCAPE_MODEL_ROOTS=str(tiny_model.parent),
        SAFETY_LANDSCAPE_REPLICAS="2",
        SAFETY_LANDSCAPE_REPLICA_PORT=str(_free_port()),
        STREAMLIT_SERVER_PORT=str(port),
        STREAMLIT_SERVER_ADDRESS="127.0.0.1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.replicas"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("the replicas did not become healthy")
        yield url, tmp_path / "store"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with Store(tmp_path / "store") as store:
            _kill_jobs(store)


def _cookie_for_each_replica(url: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for _ in range(40):
        where, cookie = replica_at(url)
        assert cookie, "a browser without the cookie is given one"
        found.setdefault(where, cookie)
        if len(found) == 2:
            return found
    raise AssertionError(f"40 new browsers all reached {list(found)}")


def _fill_scan_form(page, model: Path, numbers: dict[str, int]) -> None:
    """Type the model path and the numbers, then wait until the form's estimate line shows them all
    (Start is enabled from then on). On a loaded machine a rerun triggered by one box can land while
    the next is being typed and swallow it, so a form that does not show its values is typed again;
    one that never does fails with the page's own errors."""
    points = numbers.get("Points per axis", 7)
    shown = f"{points} points × {numbers.get('Prompts (first N)', 16)} prompts × ≤{numbers.get('Max new tokens', 32)} tokens"
    for _ in range(3):
        box = page.get_by_label("…or a model path under the allowed roots")
        box.fill(str(model))
        box.press("Enter")
        for label, value in numbers.items():
            field = page.get_by_label(label, exact=True)
            field.fill(str(value))
            field.press("Enter")
            page.wait_for_timeout(500)
        try:
            page.get_by_text(shown).first.wait_for(timeout=30_000)
            return
        except Exception:  # Playwright's TimeoutError: type the form again
            continue
    errors = page.locator("[data-testid=stAlertContentError]").all_inner_texts()
    raise AssertionError(f"the form never showed {shown!r}; its errors: {errors}")


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="needs Debian chromium")
@pytest.mark.skipif(not os.path.exists(NGINX), reason="needs Debian nginx (make system-deps)")
def test_two_replicas_are_sticky_and_share_the_jobs(replicas, tiny_model):
    from playwright.sync_api import sync_playwright

    url, store_dir = replicas
    cookies = _cookie_for_each_replica(url)
    for where, cookie in cookies.items():  # a browser with its cookie always reaches its replica
        assert {replica_at(url, cookie) for _ in range(10)} == {(where, None)}
    (a, cookie_a), (b, cookie_b) = sorted(cookies.items())
    host = url.removeprefix("http://").split(":")[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        pages = {}
        for name, cookie in (("a", cookie_a), ("b", cookie_b)):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.add_cookies([{"name": "landscape_replica", "value": cookie, "domain": host, "path": "/"}])
            pages[name] = ctx.new_page()
        page = pages["a"]
        page.goto(f"{url}/run", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Run a scan").first.wait_for(timeout=60_000)
        _fill_scan_form(
            page, tiny_model, {"Points per axis": 21, "Prompts (first N)": 2, "Max new tokens": 16}
        )
        page.get_by_role("button", name="Start scan").click()
        page.get_by_text("Started job for scan").wait_for(timeout=60_000)
        with Store(store_dir) as store:
            (job,) = jobs.running_jobs(store)
        other = pages["b"]
        other.goto(f"{url}/run", wait_until="domcontentloaded")
        # the job started through replica a: its progress on replica b's page
        other.get_by_text(f"scan {job.key[:12]}").first.wait_for(timeout=60_000)
        _fill_scan_form(other, tiny_model, {"Points per axis": 3})
        other.get_by_role("button", name="Start scan").click()
        other.get_by_text("1 job(s) already running").first.wait_for(timeout=60_000)
        browser.close()
    with Store(store_dir) as store:
        assert [j.key for j in jobs.running_jobs(store)] == [job.key]
