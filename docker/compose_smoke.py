"""Smoke test of docker/compose.yaml: the dashboard, a Ray head and one CPU Ray worker come up.

    python docker/compose_smoke.py [--image safety-landscape:smoke] [--ray-scan]

Uses docker/compose.local.yaml (host networking: an engine started with --bridge=none has no
network for Compose to make) with free loopback ports, a tiny model root mounted read-only and a
fresh project name, then checks:

- the Ray head answers ``ray status`` and lists three nodes (head, the worker, and the dashboard,
  which joins with no CPUs because a Ray driver needs a node where it runs), the worker's CPUs;
- the dashboard container turns healthy and cannot write the model root;
- two dashboard replicas (``DASHBOARD_REPLICAS=2``) behind the container's nginx: a browser keeps its
  replica (cookie), new browsers reach both, and a scan started through one replica's Run page shows
  on the other's Run page, where a second launch is refused by the job limit (``MAX_JOBS=1``);
- RAY SCAN STEP (``--ray-scan``, off until ``landscape scan --ray-address/--workers`` is merged):
  a tiny scan run from the dashboard container with the dashboard's own Ray settings finishes in the
  store.

Everything is removed at the end (``compose down -v``, then any container of the project by id).
If the image has no Ray yet (ray==2.60.0 not in requirements.txt), a derived image adds it first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "docker")]

from smoke import (  # noqa: E402  (docker/smoke.py)
    SmokeError,
    browser,
    fill_scan_form,
    free_port,
    make_model_root,
    open_page,
    sh,
)

from dashboard.replicas import replica_at  # noqa: E402

RAY_PIN = "ray==2.60.0"


def compose_cmd() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SmokeError("neither `docker compose` nor docker-compose is installed")


def image_with_ray(image: str) -> str:
    has = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", image, "python3", "-c", "import ray"],
        capture_output=True,
    )
    if has.returncode == 0:
        return image
    tag = f"{image}-ray"
    print(f"compose-smoke: {image} has no Ray; building {tag} with {RAY_PIN} on top", file=sys.stderr)
    dockerfile = f"FROM {image}\nUSER root\nRUN python3 -m pip install {RAY_PIN}\nUSER 10001\n"
    res = subprocess.run(
        ["docker", "build", "--network", "host", "-t", tag, "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if res.returncode != 0:
        raise SmokeError(f"building {tag} failed: {res.stdout[-300:]}{res.stderr[-300:]}")
    return tag


def ray_nodes(status: str) -> int:
    """Active nodes in `ray status` output (the lines between 'Active:' and 'Pending:')."""
    active = status.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return sum("node_" in line for line in active.splitlines())


def run(args) -> dict:
    figures: dict = {}
    compose = compose_cmd()
    image = image_with_ray(args.image)
    work = Path(tempfile.mkdtemp(prefix="landscape-compose-"))
    project = f"landscape-smoke-{os.getpid()}"
    env = dict(
        os.environ,
        LANDSCAPE_IMAGE=image,
        MODEL_ROOT=str(make_model_root(work)),
        RAY_PORT=str(free_port()),
        DASHBOARD_PORT=str(free_port()),
        DASHBOARD_REPLICAS="2",
        REPLICA_PORT=str(free_port()),
        MAX_JOBS="1",
    )
    files = ["-f", str(ROOT / "docker/compose.yaml"), "-f", str(ROOT / "docker/compose.local.yaml")]
    base = [*compose, "-p", project, *files]

    def dc(*cmd: str, check: bool = True) -> str:
        res = subprocess.run([*base, *cmd], capture_output=True, text=True, env=env, timeout=600)
        if check and res.returncode != 0:
            raise SmokeError(f"compose {' '.join(cmd)} failed: {res.stderr.strip()[-400:]}")
        return res.stdout.strip()

    try:
        t0 = time.monotonic()
        dc("up", "-d", "--scale", "ray-worker=1")
        head = dc("ps", "-q", "ray-head")
        dash = dc("ps", "-q", "dashboard")
        status, nodes = "", 0
        while time.monotonic() - t0 < 180:
            res = subprocess.run(
                ["docker", "exec", head, "ray", "status", f"--address=127.0.0.1:{env['RAY_PORT']}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            status, nodes = res.stdout, ray_nodes(res.stdout)
            if nodes >= 3:
                break
            time.sleep(2)
        if nodes != 3:
            raise SmokeError(
                f"ray status shows {nodes} nodes, not head + 1 worker + dashboard: {status[-400:]}"
            )
        figures["ray_up_s"] = time.monotonic() - t0
        figures["ray_status"] = status
        while sh("docker", "inspect", "-f", "{{.State.Health.Status}}", dash) != "healthy":
            if time.monotonic() - t0 > 240:
                raise SmokeError("the dashboard container never became healthy")
            time.sleep(1)
        figures["dashboard_healthy_s"] = time.monotonic() - t0
        if (
            subprocess.run(["docker", "exec", dash, "touch", "/models/x"], capture_output=True).returncode
            == 0
        ):
            raise SmokeError("the dashboard container can write the model root")
        if not args.no_ray_scan:
            figures["ray_scan_s"] = ray_scan_step(dash, env["RAY_PORT"])
        figures["replicas"] = replica_step(f"http://127.0.0.1:{env['DASHBOARD_PORT']}")
    finally:
        dc("down", "-v", "--remove-orphans", check=False)
        for cid in dc("ps", "-aq", check=False).split():
            sh("docker", "rm", "-f", cid, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return figures


def ray_scan_step(dash: str, ray_port: str) -> float:
    """RAY SCAN STEP: a 3-point scan from the dashboard container (the driver, beside the store)
    with its points on the cluster, through the CLI flags the dashboard's Ray settings pass."""
    from dashboard import commands

    args = commands.scan_args(
        commands.ScanChoice(
            model="/models/tiny", points=3, limit=2, max_new_tokens=4, alpha_range=(-0.2, 0.2)
        )
    )
    # The flags a job launched from the Run page gets: the dashboard container's own settings
    # (SAFETY_LANDSCAPE_RAY_ADDRESS / _RAY_WORKERS from the compose file), read inside it.
    code = "import json; from dashboard.settings import load_settings; print(json.dumps(load_settings().ray_args()))"
    ray_args = json.loads(sh("docker", "exec", dash, "python3", "-c", code).splitlines()[-1])
    if ray_args[:1] != ["--workers"] or f"127.0.0.1:{ray_port}" not in ray_args:
        raise SmokeError(f"the dashboard's settings give no Ray cluster: {ray_args}")
    args += ray_args
    t0 = time.monotonic()
    res = subprocess.run(
        ["docker", "exec", dash, "landscape", "-q", *args], capture_output=True, text=True, timeout=600
    )
    if res.returncode != 0:
        raise SmokeError(f"the Ray scan failed: {(res.stderr or res.stdout).strip()[-300:]}")
    code = (
        "import json; from cache import Store; s = Store('/data/store'); "
        "print(json.dumps([r.get('status') for r in s.list_scans()]))"
    )
    out = sh("docker", "exec", dash, "python3", "-c", code)
    if json.loads(out.splitlines()[-1]) != ["complete"]:
        raise SmokeError(f"after the Ray scan the store holds {out}")
    code = (  # each point says which worker computed it: a Ray actor (the head has no CPUs for one)
        "import json; from cache import Store; s = Store('/data/store'); k = s.list_scans()[0]['key']; "
        "print(json.dumps(sorted({s.point(k, i, 0)['provenance']['worker'][:5] for i in range(3)})))"
    )
    out = sh("docker", "exec", dash, "python3", "-c", code)
    if json.loads(out.splitlines()[-1]) != ["scan-"]:
        raise SmokeError(f"the Ray scan's points were not computed by Ray actors: {out}")
    return time.monotonic() - t0


def replica_step(url: str) -> str:
    """Two replicas: sticky, both reached, and a job started through one is seen and counted by the
    other (through the Run pages, in Chromium)."""
    cookies: dict[str, str] = {}
    for _ in range(40):
        where, cookie = replica_at(url)
        cookies.setdefault(where, cookie)
    if len(cookies) != 2 or None in cookies.values():
        raise SmokeError(f"40 new browsers reached {sorted(cookies)}, not two replicas with a cookie each")
    for where, cookie in cookies.items():
        seen = {replica_at(url, cookie)[0] for _ in range(10)}
        if seen != {where}:
            raise SmokeError(f"a browser pinned to {where} reached {sorted(seen)}")
    (a, cookie_a), (b, cookie_b) = sorted(cookies.items())
    pw, chrome = browser()
    try:
        pages = []
        for cookie in (cookie_a, cookie_b):
            ctx = chrome.new_context(viewport={"width": 1400, "height": 1000})
            ctx.add_cookies([{"name": "landscape_replica", "value": cookie, "url": url}])
            pages.append(ctx.new_page())
        first, second = pages
        open_page(first, f"{url}/run", "Run a scan")
        fill_scan_form(first, points=21, prompts=2, tokens=16)  # long enough to be seen running
        first.get_by_role("button", name="Start scan").click()
        started = first.get_by_text("Started job for scan")
        started.wait_for(timeout=60_000)
        key = started.inner_text().split("scan ", 1)[1].strip(" .")
        open_page(second, f"{url}/run", "Run a scan")
        try:
            second.get_by_text(f"scan {key}").first.wait_for(timeout=60_000)
        except Exception:
            raise SmokeError(f"the job {key} started through {a} is not shown by {b}") from None
        fill_scan_form(second, points=3, prompts=2, tokens=4)
        second.get_by_role("button", name="Start scan").click()
        try:
            second.get_by_text("1 job(s) already running").first.wait_for(timeout=60_000)
        except Exception:
            raise SmokeError(f"{b} did not count the job running through {a} against MAX_JOBS=1") from None
    finally:
        chrome.close()
        pw.stop()
    return f"{a} and {b}: sticky; job {key} started through one, shown and counted by the other"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="safety-landscape:smoke", help="the image docker/smoke.py built")
    p.add_argument(
        "--no-ray-scan", action="store_true", help="skip the RAY SCAN STEP (a scan's points on the cluster)"
    )
    args = p.parse_args(argv)
    try:
        f = run(args)
    except (SmokeError, subprocess.TimeoutExpired) as exc:
        print(f"compose-smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f.pop("ray_status").strip())
    print(
        f"ray head + 1 CPU worker + the dashboard's node up (ray status: 3 active nodes) after {f['ray_up_s']:.1f} s"
    )
    print(f"dashboard healthy after {f['dashboard_healthy_s']:.1f} s (from compose up)")
    if "ray_scan_s" in f:
        print(f"ray scan step: 3-point scan complete in the store after {f['ray_scan_s']:.1f} s")
    else:
        print("ray scan step: not run (--ray-scan enables it once scan --ray-address is merged)")
    print(f"two dashboard replicas: {f['replicas']}")
    print("compose-smoke: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
