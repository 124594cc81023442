"""The documented nginx basic-auth proxy (docker/proxy/nginx-basic-auth.conf) in front of the real
server: strangers are refused, the proxy's user name reaches the dashboard, and the launch list is
enforced per user, also when a client sends the user header itself."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from landscape.figures.export import chromium_path

from ..conftest import ROOT
from .test_browser import _free_port, streamlit_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = ROOT / "docker" / "proxy" / "nginx-basic-auth.conf"
USERS = {"alice": "wonderland", "bob": "builder"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="needs Debian chromium"),
    pytest.mark.skipif(not os.path.exists(NGINX), reason="needs Debian nginx (make system-deps)"),
]


@pytest.fixture
def proxied(tmp_path, tiny_model):
    env = {
        "SAFETY_LANDSCAPE_STORE": str(tmp_path / "store"),
        "SAFETY_LANDSCAPE_MODEL_ROOTS": str(tiny_model.parent),
        "SAFETY_LANDSCAPE_USER_HEADER": "X-Forwarded-User",
        "SAFETY_LANDSCAPE_LAUNCHERS": "alice",
    }
    with streamlit_server(env, tmp_path) as upstream:
        port = _free_port()
        passwd = tmp_path / "htpasswd"
        passwd.write_text(
            "".join(
                f"{u}:{{SHA}}{base64.b64encode(hashlib.sha1(p.encode()).digest()).decode()}\n"
                for u, p in USERS.items()
            )
        )
        site = CONF.read_text()
        for old, new in (
            ("listen 8080;", f"listen 127.0.0.1:{port};"),
            ("proxy_pass http://127.0.0.1:8501;", f"proxy_pass {upstream};"),
            ("/etc/nginx/landscape.htpasswd", str(passwd)),
        ):
            assert old in site, old  # the documented file still has the line the README explains
            site = site.replace(old, new)
        (tmp_path / "site.conf").write_text(site)
        main = tmp_path / "nginx.conf"
        main.write_text(
            # As root, nginx's workers would run as nobody and could not read pytest's 0700 tmp dirs.
            ("user root; " if os.getuid() == 0 else "")
            + f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
            "events {}\n"
            f"http {{ access_log off; client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;\n"
            f"  include {tmp_path}/site.conf; }}\n"
        )
        proc = subprocess.Popen([NGINX, "-c", str(main), "-p", str(tmp_path)], stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(url)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_for(url: str) -> None:
    import time

    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401: nginx is answering
        except OSError:
            time.sleep(0.1)
    raise AssertionError("nginx did not start")


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    req = urllib.request.Request(url)
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_strangers_are_refused_and_users_pass(proxied):
    for path in ("/", "/run", "/_stcore/health", "/_stcore/host-config"):
        assert _status(proxied + path) == 401, path
        assert _status(proxied + path, "alice", "wrong") == 401, path
    assert _status(proxied + "/_stcore/health", "alice", USERS["alice"]) == 200
    assert _status(proxied + "/run", "bob", USERS["bob"]) == 200


def test_launch_list_is_enforced_per_proxy_user(proxied):
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        for name, user, spoof in (
            ("alice", "alice", None),
            ("bob", "bob", None),
            ("bob as alice", "bob", "alice"),
        ):
            ctx = browser.new_context(
                http_credentials={"username": user, "password": USERS[user]},
                extra_http_headers={"X-Forwarded-User": spoof} if spoof else None,
            )
            page = ctx.new_page()
            page.goto(f"{proxied}/run", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Run a scan").first.wait_for(timeout=60_000)
            page.locator("text=Start scan").or_(
                page.locator("text=may browse but not launch")
            ).first.wait_for(timeout=60_000)
            seen[name] = page.inner_text("body")
            ctx.close()
        browser.close()
    assert "Start scan" in seen["alice"] and "may browse but not launch" not in seen["alice"]
    for name in ("bob", "bob as alice"):
        assert "may browse but not launch" in seen[name] and "Start scan" not in seen[name], name
