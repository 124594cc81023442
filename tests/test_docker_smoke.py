"""`make docker-smoke` and `make compose-smoke` as tests: the image built from the Dockerfile and
used through a browser (docker/smoke.py), then the compose file's Ray head + one CPU worker
(docker/compose_smoke.py). Needs root (dockerd); on this project's machines docker/local-base.sh
starts the engine and makes the stand-in base image."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root"),
]


def _make(target: str) -> subprocess.CompletedProcess:
    import sys
    from pathlib import Path

    venv = Path(sys.executable).parent.parent
    return subprocess.run(
        ["make", "-s", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=3000
    )


def test_docker_smoke():
    res = _make("docker-smoke")
    print(res.stdout)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "docker-smoke: passed" in res.stdout and "time to healthy" in res.stdout


def test_compose_smoke():
    res = _make("compose-smoke")
    print(res.stdout)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 active nodes" in res.stdout
    assert "ray scan step: 3-point scan complete in the store" in res.stdout
    assert "sticky; job" in res.stdout and "shown and counted by the other" in res.stdout
