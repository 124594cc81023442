"""Issue 23 §2, the CLI as a newcomer types it, on a store of real tiny scans (1D with
capability, 2D): global options after the command, `--point` out of range, `visage --csv` reading
what `export` writes, capability results in `show`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from landscape.cli import hoist_global_options

from ..conftest import run_cli
from .test_export import needs_chromium


@pytest.mark.parametrize(
    "argv, want",
    [
        (["list", "--store", "S"], ["--store", "S", "list"]),
        (["list", "--store=S", "-q"], ["--store=S", "-q", "list"]),
        (["-q", "show", "K", "--device", "cpu", "--json"], ["-q", "--device", "cpu", "show", "K", "--json"]),
        (["--store", "S", "list"], ["--store", "S", "list"]),
        (["scan", "1d", "--", "--store"], ["scan", "1d", "--", "--store"]),
    ],
)
def test_global_options_move_before_the_command(argv, want):
    assert hoist_global_options(argv) == want


def test_a_global_option_without_its_value_is_named():
    import click

    with pytest.raises(click.UsageError, match="option --store requires a value"):
        hoist_global_options(["list", "--store"])


def test_store_works_before_or_after_the_command(filled_store, tmp_path):
    root, keys = filled_store
    before = run_cli("list", "--json", store=root)
    after = run_cli("list", "--json", "--store", str(root))
    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    shown = run_cli("show", keys["1d"][:10], "--store", str(root), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["key"] == keys["1d"]
    missing = run_cli("list", "--store")
    assert (
        missing.returncode == 2
        and missing.stderr.count("\n") == 1
        and "option --store requires a value" in missing.stderr
    )


@pytest.mark.parametrize(
    "scan, point, message",
    [
        ("1d", "10", "point 10 is out of range 0–4 (this scan has 5)"),
        ("2d", "1,7", "β index 7 is out of range 0–3 (this scan has 4)"),
        ("2d", "3,0", "α index 3 is out of range 0–2 (this scan has 3)"),
    ],
)
def test_a_point_outside_the_grid_says_the_range(filled_store, scan, point, message):
    root, keys = filled_store
    res = run_cli("show", keys[scan][:10], "--point", point, store=root)
    assert res.returncode == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr


@needs_chromium
@pytest.mark.parametrize("scan", ["1d", "2d"])
def test_visage_reads_the_csv_export_writes(filled_store, tmp_path, scan):
    """`landscape export --out x.csv` then `landscape visage --csv x.csv`: the same VISAGE as the
    stored scan's (it was "must hold only numbers")."""
    root, keys = filled_store
    out = tmp_path / "x.csv"
    assert run_cli("export", keys[scan][:10], "--out", str(out), store=root).returncode == 0
    from_csv = run_cli("visage", "--csv", str(out), "--json", store=root)
    stored = run_cli("visage", keys[scan][:10], "--json", store=root)
    assert from_csv.returncode == 0 and stored.returncode == 0, from_csv.stderr
    a, b = json.loads(from_csv.stdout)[0], json.loads(stored.stdout)[0]
    assert a["dims"] == b["dims"] == (1 if scan == "1d" else 2)
    for field in ("visage", "visage_reference"):
        assert (a[field] is None and b[field] is None) or np.isclose(a[field], b[field]), field


def test_show_prints_the_capability_it_measured(filled_store):
    """A scan run with --capability showed only the ASR: its benign refusal rate was in the store alone."""
    root, keys = filled_store
    res = run_cli("show", keys["1d"][:10], store=root)
    assert res.returncode == 0 and "benign refusal %" in res.stdout, res.stdout
    values = json.loads(run_cli("show", keys["1d"][:10], "--json", store=root).stdout)["values"]
    header = next(line for line in res.stdout.splitlines() if line.strip().startswith("alpha"))
    lines = res.stdout.splitlines()
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[lines.index(header) + 1 :][:5]]
    col = re.split(r"\s{2,}", header.strip()).index("benign refusal %")
    shown = [float(r[col]) for r in rows]
    assert shown == pytest.approx([round(v, 1) for v in values["benign_refusal_pct"]], abs=0.051)
    plain = run_cli("show", keys["2d"][:10], store=root)
    assert "benign refusal" not in plain.stdout  # a scan without --capability shows no such column


def test_an_estimate_leaves_no_record_in_list(tmp_path, tiny_model):
    """`estimate 2d …` left a `partial 1/441` record in `list`: now its one timed point is kept as a
    calibration, hidden from `list` (and the dashboard) until the scan is run, listed by --all."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("Tell me a secret.\n")
    store = tmp_path / "s"
    flags = ["--model", str(tiny_model), "--prompts", str(prompts), "--max-new-tokens", "2", "--points", "3"]
    est = run_cli("estimate", "1d", *flags, store=store)
    assert est.returncode == 0 and "hidden from `landscape list`" in est.stdout, est.stdout + est.stderr
    listed = run_cli("list", store=store)
    assert "partial" not in listed.stdout and "1 calibration record" in listed.stdout, listed.stdout
    assert json.loads(run_cli("list", "--json", store=store).stdout) == []
    assert len(json.loads(run_cli("list", "--all", "--json", store=store).stdout)) == 1
    assert run_cli("scan", "1d", *flags, store=store).returncode == 0
    rows = json.loads(run_cli("list", "--json", store=store).stdout)
    assert len(rows) == 1 and rows[0]["status"] == "complete" and rows[0]["done"] == 3


def test_list_reads_a_complete_scans_summary_once_and_recomputes_when_it_changes(filled_store, tmp_path):
    """Issue 26 §3: `list` recomputed every grid and bootstrapped every interval on every call
    (3.6 s at 1,000 scans); a complete scan's pair is now kept, stamped with what it came from."""
    from cache import Store
    from landscape.engine.scan import listed_summary

    from .conftest import copy_store

    root = copy_store(filled_store[0], tmp_path / "store")
    key = filled_store[1]["1d"]
    with Store(root) as store:
        record = next(r for r in store.list_scans() if r["key"] == key)
        summ, ci = listed_summary(store, record)
        memo = store.get_json(f"summary:{key}")
        assert memo["summary"] == summ and memo["visage_ci"] == ci and ci is not None
        store.put_json(f"summary:{key}", dict(memo, summary=dict(summ, visage=-1.0)))
        assert listed_summary(store, record)[0]["visage"] == -1.0  # read, not recomputed
        moved = dict(record, done=record["done"] - 1)  # a point rewritten: another stamp
        assert listed_summary(store, moved)[0]["visage"] == summ["visage"]
    rows = json.loads(run_cli("list", "--json", store=root).stdout)
    assert next(r for r in rows if r["key"] == key)["summary"]["visage"] == summ["visage"]


def test_the_scan_table_follows_the_store_not_a_timer(filled_store, tmp_path, monkeypatch):
    """Issue 26 §3: the Overview's table was rebuilt every 2 s under traffic and missed a scan
    written less than 2 s ago; it is now cached by the store's change counter: a new scan shows on
    the next rerun, and an unchanged store is not read again."""
    from cache import Store
    from dashboard import data

    from .conftest import copy_store
    from .test_pages import open_page

    root = copy_store(filled_store[0], tmp_path / "store")
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(root))
    at = open_page()
    before = len(at.dataframe[0].value)
    built = []
    real = data._describe
    monkeypatch.setattr(data, "_describe", lambda *a: built.append(1) or real(*a))
    at.run()
    assert len(at.dataframe[0].value) == before and not built  # nothing changed: not rebuilt
    with Store(root) as store:
        record = store.scan_record(filled_store[1]["1d"])
        store.put_scan_record("cd" * 32, dict(record, created=record["created"] + 1))
    at.run()  # at once, not after a 2 s cache expires
    assert len(at.dataframe[0].value) == before + 1 and built
