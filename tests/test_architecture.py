"""The arrows run dashboard → landscape → cache, with no import cycles; pure modules import no torch."""

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


def _cycles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (each a set of modules importing
    one another in a circle), sorted."""
    upstream = {m: graph.find_upstream_modules(m) for m in graph.modules}
    groups = {frozenset({m} | {x for x in upstream[m] if m in upstream[x]}) for m in graph.modules}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def test_no_import_cycles():
    """No module of landscape, cache or dashboard imports itself through others, counting imports
    inside functions (grimp sees every import statement). Registries live in a ``base`` module that
    methods import, so a package's ``__init__`` filling its registry closes no circle."""
    import grimp

    graph = grimp.build_graph("landscape", "cache", "dashboard", cache_dir=None)
    cycles = _cycles(graph)
    details = [
        f"{a} -> {b} (line {d['line_number']}: {d['line_contents']})"
        for group in cycles
        for a in group
        for b in sorted(graph.find_modules_directly_imported_by(a) & set(group))
        for d in graph.get_import_details(importer=a, imported=b)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(details)


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
