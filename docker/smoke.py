"""Smoke test of the team-server image: built from the real Dockerfile, run, and used through a browser.

    python docker/smoke.py [--base IMAGE] [--find-links DIR] [--tag TAG]

1. ``docker build --network host`` of the repository's Dockerfile (``--base`` replaces the official
   Python base, e.g. the stand-in docker/local-base.sh makes; ``--find-links`` is a wheel folder
   served on 127.0.0.1 to the build's pip, e.g. the CPU torch wheel).
2. A tiny random Llama (the tests' own) is written to a model root mounted read-only (``:ro``) and
   the image started with a fresh store volume, on a free loopback port (host networking).
3. Waits for Docker's HEALTHCHECK to say ``healthy`` (its command as built, polled every 2 s here).
4. Checks the container runs as uid 10001 and cannot write the model root but can write the store.
5. Headless Chromium launches a 3-point scan of that model from the Run page and waits until the
   store (read inside the container) says it is complete; then opens every page, timing each.
6. Restarts the server read-only on the same store: the launch pages are gone from the navigation
   and their URLs show no launch form. Streamlit's XSRF protection refuses an upload without token.
7. Removes the containers and the volume it made, by id, whatever happened.

Prints the image size, the build time, the time to healthy and each page's load time; exits 1 with
one line naming the failed check. Needs root (or a docker group) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Every page of dashboard/app.py: url path → its st.title.
PAGES = {
    "": "Safety Landscape",
    "curve": "1D safety landscape",
    "basin": "2D safety basin",
    "inspector": "Point inspector",
    "compare": "Compare scans",
    "study": "Study: attacks and defences",
    "strength": "Attack strength: defences against the attacker's settings",
    "run": "Run a scan",
    "run-study": "Run a study",
    "export": "Export figures",
    "about": "About this server",
}
LAUNCH_PAGES = ("run", "run-study")


class SmokeError(RuntimeError):
    pass


def sh(*cmd: str, check: bool = True, timeout: float = 600) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise SmokeError(f"{' '.join(cmd[:3])} … failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return res.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_dir(directory: Path, port: int) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A read-only HTTP server for a wheel folder on 127.0.0.1 (pip's --find-links). A fixed port:
    the URL is a build argument, and a changed one rebuilds every layer after it."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise SmokeError(f"cannot serve {directory} on 127.0.0.1:{port} ({exc}); pass --wheel-port") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def build(tag: str, base: str | None, find_links: Path | None, wheel_port: int, log: Path) -> float:
    cmd = ["docker", "build", "--network", "host", "-t", tag]
    server = None
    if base:
        cmd += ["--build-arg", f"BASE={base}"]
    if find_links:
        server, port = serve_dir(find_links, wheel_port)
        cmd += ["--build-arg", f"PIP_EXTRA_ARGS=--find-links http://127.0.0.1:{port}/"]
    t0 = time.monotonic()
    with log.open("w") as out:
        res = subprocess.run([*cmd, str(ROOT)], stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    if server:
        server.shutdown()
    if res.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise SmokeError(f"docker build failed (log {log}): {' | '.join(tail)}")
    return time.monotonic() - t0


def make_model_root(directory: Path) -> Path:
    """The tests' tiny random Llama (real tokenizer) as ``<root>/tiny``, readable by anyone."""
    import transformers

    from landscape.core.models import builtin_gguf_path
    from tests.conftest import make_tiny_model

    transformers.logging.set_verbosity_error()
    gguf = builtin_gguf_path()
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok_dir = directory / "tokenizer"
    tok.save_pretrained(tok_dir)
    root = directory / "models"
    make_tiny_model(root / "tiny", tok_dir)
    # World-writable on the host, so only the read-only mount keeps the container from writing it.
    for path in [directory, root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return root


class Server:
    """One container of the image, started on a free loopback port; removed by id."""

    def __init__(self, tag: str, volume: str, models: Path, env: dict[str, str], started: list[str]):
        self.port = free_port()
        # --init: a reaper as PID 1 (finished job processes are Streamlit's children).
        args = ["docker", "run", "-d", "--init", "--network", "host", "--health-interval", "2s"]
        env = {"STREAMLIT_SERVER_PORT": str(self.port), "STREAMLIT_SERVER_ADDRESS": "127.0.0.1", **env}
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        args += ["-v", f"{volume}:/data/store", "-v", f"{models}:/models:ro", tag]
        t0 = time.monotonic()
        self.id = sh(*args)
        started.append(self.id)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = t0 + 180
        status = ""
        while time.monotonic() < deadline:
            status = sh("docker", "inspect", "-f", "{{.State.Health.Status}}", self.id)
            if status == "healthy":
                break
            if (
                status == "unhealthy"
                or sh("docker", "inspect", "-f", "{{.State.Running}}", self.id) != "true"
            ):
                break
            time.sleep(0.5)
        self.healthy_s = time.monotonic() - t0
        if status != "healthy":
            logs = sh("docker", "logs", "--tail", "5", self.id, check=False)
            raise SmokeError(f"container never became healthy ({status}): {logs[-300:]}")

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(["docker", "exec", self.id, *cmd], capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise SmokeError(f"docker exec {' '.join(cmd)} failed: {res.stderr.strip()[-300:]}")
        return res


def check_user_and_mounts(server: Server) -> None:
    uid = server.exec("id", "-u").stdout.strip()
    if uid != "10001":
        raise SmokeError(f"the server runs as uid {uid}, not the image's non-root user 10001")
    mounts = server.exec("cat", "/proc/mounts").stdout.splitlines()
    models = next((m.split() for m in mounts if m.split()[1:2] == ["/models"]), None)
    if models is None or "ro" not in models[3].split(","):
        raise SmokeError(f"/models is not mounted read-only: {models}")
    if server.exec("touch", "/models/tiny/written", check=False).returncode == 0:
        raise SmokeError("the container can write to the model root")
    server.exec("sh", "-c", "touch /data/store/.probe && rm /data/store/.probe")
    # st.login (OIDC, docker/proxy/oidc-secrets.example.toml) needs Authlib in the image.
    server.exec("python3", "-c", "import authlib")


STORE_STATUS = (
    "import json; from cache import Store; s = Store('/data/store'); "
    "print(json.dumps([(r['key'], r.get('status'), r['done'], r.get('total_points')) for r in s.list_scans()]))"
)


def scans_in_store(server: Server) -> list:
    return json.loads(server.exec("python3", "-c", STORE_STATUS).stdout.strip().splitlines()[-1])


def browser():
    from playwright.sync_api import sync_playwright

    from landscape.figures.export import CHROMIUM_ARGS, chromium_path

    exe = chromium_path()
    if exe is None:
        raise SmokeError("Debian chromium is missing (apt-get install chromium)")
    pw = sync_playwright().start()
    return pw, pw.chromium.launch(executable_path=exe, headless=True, args=list(CHROMIUM_ARGS))


def open_page(page, url: str, title: str) -> float:
    """Load ``url`` and wait until its title heading shows and Streamlit has stopped running."""
    t0 = time.monotonic()
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
        )
    except Exception as exc:
        raise SmokeError(f"page {url} did not show {title!r}: {str(exc).splitlines()[0]}") from None
    elapsed = time.monotonic() - t0
    body = page.inner_text("body")
    if "Traceback" in body or page.locator('[data-testid="stException"]').count():
        raise SmokeError(f"page {url} shows an exception: {body[:300]}")
    return elapsed


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(600)


def fill_scan_form(page, points: int, prompts: int, tokens: int) -> None:
    """The Run page's form: the tiny model under /models and these sizes, until its command shows."""
    path = page.get_by_label("…or a model path under the allowed roots")
    path.fill("/models/tiny")
    path.press("Enter")
    page.wait_for_timeout(600)
    set_number(page, "Points per axis", points)
    set_number(page, "Prompts (first N)", prompts)
    set_number(page, "Max new tokens", tokens)
    page.get_by_text("/models/tiny --").first.wait_for(timeout=30_000)


def launch_scan(page, server: Server) -> str:
    open_page(page, f"{server.url}/run", "Run a scan")
    fill_scan_form(page, points=3, prompts=2, tokens=4)
    page.get_by_role("button", name="Start scan").click()
    page.get_by_text("Started job for scan").wait_for(timeout=60_000)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        scans = scans_in_store(server)
        if scans and scans[0][1] == "complete":
            return scans[0][0]
        time.sleep(2)
    raise SmokeError(f"the scan launched from the Run page did not complete in 300 s: {scans}")


def check_xsrf(server: Server) -> None:
    """An upload without Streamlit's XSRF cookie and header is refused (403)."""
    req = urllib.request.Request(f"{server.url}/_stcore/upload_file/session/file", data=b"x", method="PUT")
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as exc:
        if exc.code == 403:
            return
        raise SmokeError(f"an upload without XSRF token got HTTP {exc.code}, not 403") from None
    raise SmokeError("an upload without XSRF token was accepted: XSRF protection is off")


def run(args) -> dict:
    figures: dict = {}
    started: list[str] = []
    volume = None
    work = Path(tempfile.mkdtemp(prefix="landscape-smoke-"))
    try:
        figures["build_s"] = build(args.tag, args.base, args.find_links, args.wheel_port, work / "build.log")
        figures["image_bytes"] = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", args.tag))
        models = make_model_root(work)
        volume = sh("docker", "volume", "create")
        server = Server(args.tag, volume, models, {}, started)
        figures["healthy_s"] = server.healthy_s
        check_user_and_mounts(server)
        check_xsrf(server)
        pw, chrome = browser()
        try:
            page = chrome.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.monotonic()
            figures["scan_key"] = launch_scan(page, server)
            figures["scan_s"] = time.monotonic() - t0
            figures["pages_s"] = {
                path or "/": open_page(page, f"{server.url}/{path}", title) for path, title in PAGES.items()
            }
            page.goto(f"{server.url}/curve", wait_until="domcontentloaded")
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the scan, drawn
            sh("docker", "rm", "-f", server.id)
            started.remove(server.id)
            ro = Server(args.tag, volume, models, {"SAFETY_LANDSCAPE_READ_ONLY": "1"}, started)
            open_page(page, ro.url, PAGES[""])
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            if "Run a scan" in nav or "Run a study" in nav or "Overview" not in nav:  # nav labels
                raise SmokeError(f"read-only navigation still offers launching: {nav!r}")
            for path in LAUNCH_PAGES:
                page.goto(f"{ro.url}/{path}", wait_until="domcontentloaded")
                page.get_by_role("heading", name=PAGES[""], exact=True).first.wait_for(timeout=60_000)
                if page.get_by_role("button", name="Start scan").count():
                    raise SmokeError(f"read-only /{path} still shows a Start button")
        finally:
            chrome.close()
            pw.stop()
    finally:
        for cid in started:
            sh("docker", "rm", "-f", cid, check=False)
        if volume:
            sh("docker", "volume", "rm", volume, check=False)
        if args.rm_image:
            sh("docker", "image", "rm", args.tag, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="base image instead of the Dockerfile's python:3.11-slim-bookworm")
    p.add_argument("--find-links", type=Path, help="a wheel folder for the build's pip (served on 127.0.0.1)")
    p.add_argument("--wheel-port", type=int, default=38457, help="loopback port serving --find-links")
    p.add_argument("--tag", default="safety-landscape:smoke")
    p.add_argument("--rm-image", action="store_true", help="remove the image afterwards too")
    args = p.parse_args(argv)
    if shutil.which("docker") is None:
        print("docker-smoke: no docker client (run docker/local-base.sh first)", file=sys.stderr)
        return 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.monotonic()
    try:
        f = run(args)
    except (SmokeError, subprocess.TimeoutExpired) as exc:
        print(f"docker-smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # Playwright's timeouts and the like: one line, not a traceback
        print(f"docker-smoke: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"image {args.tag}: {f['image_bytes'] / 1e9:.2f} GB (docker image inspect .Size, bytes/1e9)")
    print(f"build: {f['build_s']:.0f} s (with this machine's layer cache)")
    print(f"time to healthy: {f['healthy_s']:.1f} s from docker run (health polled every 2 s)")
    print(f"scan {f['scan_key'][:12]} from the Run page: complete in the store after {f['scan_s']:.1f} s")
    for path, s in f["pages_s"].items():
        print(f"page {path:<11} {s:5.2f} s  (goto → title shown and Streamlit idle)")
    print(f"docker-smoke: passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
