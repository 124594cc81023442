"""The arrows run dashboard → landscape → cache; pure modules import no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

from .conftest import ROOT


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(ROOT / ".venv" / "bin" / "lint-imports")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_pure_modules_import_without_torch():
    code = (
        "import sys, cache, landscape, landscape.core.specs, landscape.core.grid, landscape.core.visage, "
        "landscape.core.judges, landscape.core.prompts, landscape.study.report, landscape.cli\n"
        "bad = [m for m in ('torch', 'transformers', 'streamlit') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_only_the_cli_imports_click():
    """The library layers take plain arguments (store, runtime, log, out), never a click context: a
    forbidden contract says so, and ``test_import_linter_contracts_hold`` keeps it."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    sources = {
        m
        for c in contracts
        if c["type"] == "forbidden" and "click" in c["forbidden_modules"]
        for m in c["source_modules"]
    }
    assert {"landscape.core", "landscape.engine", "landscape.training", "landscape.study"} <= sources
