"""End to end: the real Streamlit server in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.export import CHROMIUM_ARGS, chromium_path

from ..conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium_path() is None, reason="needs Debian chromium")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], cwd: Path):
    """The real server, started as `make serve` does (the console script, from another directory, so
    nothing rides on the test's working directory being importable); yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "streamlit"),
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
        ],
        cwd=cwd,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not become healthy")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def server(filled_store, tmp_path_factory):
    store, keys = filled_store
    env = {"SAFETY_LANDSCAPE_STORE": str(store), "SAFETY_LANDSCAPE_READ_ONLY": "1"}
    with streamlit_server(env, tmp_path_factory.mktemp("elsewhere")) as url:
        yield url, keys


def test_basin_page_renders_in_chromium(server, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    url, keys = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/basin", wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(1500)
        assert "2D safety basin" in page.content()
        assert "Error" not in page.inner_text("body")
        shot = tmp_path / "basin.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    img = Image.open(shot).convert("L")
    colours = img.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "screenshot is (nearly) blank"
    lo, hi = img.getextrema()
    assert hi - lo > 100


def test_clicking_a_contour_point_opens_the_inspector(server):
    from playwright.sync_api import sync_playwright

    url, keys = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/basin", wait_until="domcontentloaded")
        contour = page.locator(".js-plotly-plot").nth(1)
        points = contour.locator(".scatterlayer .trace").last.locator("path.point")
        points.first.wait_for(state="attached", timeout=60_000)
        page.wait_for_timeout(1500)
        assert points.count() == 3 * 4  # the filled store's 3 × 4 grid
        box = points.nth(5).bounding_box()  # customdata [1, 1]: i = 5 // 4, j = 5 % 4
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_url("**/inspector", timeout=30_000)
        page.get_by_text("Point inspector").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        browser.close()
    assert "Error" not in body and "0.1667" in body  # β index 1 of linspace(-0.5, 1.5, 4)
