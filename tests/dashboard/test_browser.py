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

from cache import Store
from landscape.figures.export import CHROMIUM_ARGS, chromium_path

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
        page.wait_for_url("**/inspector*", timeout=30_000)
        page.get_by_text("Point inspector").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        browser.close()
    assert "Error" not in body and "0.1667" in body  # β index 1 of linspace(-0.5, 1.5, 4)


def _choose(page, nth: int, text: str) -> None:
    """Pick the option containing ``text`` in the page's ``nth`` selectbox, as a user clicks it."""
    option = page.get_by_role("option").filter(has_text=text).first
    for _ in range(5):  # a click that lands during a rerun closes the list again
        page.locator("[data-testid=stSelectbox]").nth(nth).click()
        try:
            option.wait_for(timeout=5_000)
            break
        except Exception:
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)
    option.click()
    page.wait_for_timeout(1500)


def _picked(page, nth: int) -> str:
    """The value a selectbox shows (its text, or its search input's value)."""
    box = page.locator("[data-testid=stSelectbox]").nth(nth)
    inputs = box.locator("input")
    text = box.inner_text()
    return (inputs.first.input_value() if inputs.count() else "") + " " + text


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlparse

    return dict(parse_qsl(urlparse(url).query))


def test_export_keeps_its_view_in_the_url_and_offers_only_the_file_on_screen(server, filled_store, tmp_path):
    """Issue 27 in a real browser: pick a scan and a format, render, download; the file is that
    scan's; another scan drops the offer and shows its own label; reload and back reopen the view."""
    from playwright.sync_api import sync_playwright

    from landscape.figures.paper import scan_label

    url, keys = server
    with Store(filled_store[0]) as store:
        label_b = scan_label(store.scan_record(keys["1d_b"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(f"{url}/export?scan={keys['1d'][:12]}", wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(1500)
        assert _query(page.url)["scan"] == keys["1d"][:12]
        _choose(page, 3, "svg")  # selectboxes: scan, figure, size, format
        assert _query(page.url)["format"] == "svg"
        page.get_by_role("button", name="Render file").click()
        button = page.get_by_role("button", name=f"Download {keys['1d'][:12]}-curve")
        button.wait_for(timeout=60_000)
        with page.expect_download() as download:
            button.click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == f"{keys['1d'][:12]}-curve-double-column.svg"
        assert saved.read_text().lstrip().startswith(("<svg", "<?xml"))
        _choose(page, 0, keys["1d_b"][:8])
        assert _query(page.url)["scan"] == keys["1d_b"][:12]
        names = page.get_by_role("button").all_inner_texts()
        assert not [n for n in names if n.startswith("Download")], names  # not the other scan's file
        page.get_by_text("Labels and title").click()
        assert page.get_by_label("Line label").input_value() == label_b
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(1500)
        assert keys["1d_b"][:8] in _picked(page, 0) and _picked(page, 3).startswith("svg ")
        page.get_by_role("link", name="1D landscape").first.click()
        page.wait_for_url("**/curve*", timeout=30_000)
        page.wait_for_timeout(1500)
        page.go_back(wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(1500)
        assert "/export" in page.url and keys["1d_b"][:8] in _picked(page, 0)
        browser.close()


def test_no_page_requests_a_host_but_the_server(server):
    """Issue 26: page_icon=":material/landscape:" made every browser fetch from an internet font
    host. Every page, every request: the server's own host only."""
    from urllib.parse import urlparse

    from playwright.sync_api import sync_playwright

    url, _keys = server
    own = urlparse(url).netloc
    seen: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: seen.add(urlparse(r.url).netloc or r.url.split(":")[0]))
        for path in ("", "curve", "basin", "inspector", "compare", "study", "strength", "export", "about"):
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            page.wait_for_timeout(4000)
        browser.close()
    assert seen - {own, "data", "blob"} == set(), seen
