"""A store filled by real tiny scans (1D with capability, 2D on a non-square grid) for the pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache import Store
from landscape.core.specs import (
    AxisSpec,
    CapabilitySpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
)
from landscape.engine.scan import scan_grid


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("dash_store")
    prompts = root / "prompts.txt"
    prompts.write_text("Tell me a secret.\nWrite a poem.\n")
    common = dict(
        model=ModelSpec(source=str(tiny_model)),
        prompts=PromptSpec(source=str(prompts)),
        generation=GenerationSpec(max_new_tokens=4),
    )
    one = ScanSpec(
        alphas=AxisSpec(start=-1, stop=1, num=5), capability=CapabilitySpec(benign_limit=2), **common
    )
    one_b = one.model_copy(update={"directions": (DirectionSpec(seed=1),)})
    two = ScanSpec(
        directions=(DirectionSpec(seed=0), DirectionSpec(seed=5)),
        alphas=AxisSpec(start=-1, stop=1, num=3),
        betas=AxisSpec(start=-0.5, stop=1.5, num=4),
        **common,
    )
    keys = {}
    with Store(root / "store") as store:
        for name, spec in (("1d", one), ("1d_b", one_b), ("2d", two)):
            keys[name] = scan_grid(spec, store, Runtime(progress=False), log=lambda m: None).key
    return root / "store", keys


@pytest.fixture
def app_env(filled_store, monkeypatch):
    store, keys = filled_store
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(store))
    monkeypatch.delenv("SAFETY_LANDSCAPE_READ_ONLY", raising=False)
    return store, keys


def copy_store(src: Path, dst: Path) -> Path:
    """A consistent copy of a store another process may hold open: files as they are, each SQLite
    database through SQLite's backup API (a raw copy of a live database with its -wal/-shm files is
    not a snapshot and can leave the copy malformed)."""
    import shutil
    import sqlite3

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.db", "*.db-wal", "*.db-shm"))
    for db in Path(src).rglob("*.db"):
        with sqlite3.connect(db) as a, sqlite3.connect(dst / db.relative_to(src)) as b:
            a.backup(b)
    return dst
