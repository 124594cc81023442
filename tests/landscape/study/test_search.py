"""Worst-case attack search on tiny models: seeded proposals that depend only on the history, a
killed search that resumes to the uninterrupted table, trials stored as JSON in our store, the
task floor, and bad spaces as one-line errors that write nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from cache import Store
from landscape.core.specs import Runtime, SpecError
from landscape.study.pipeline import parse_study
from landscape.study.search import attack_search, best_so_far, propose, search_markdown, worst_trial

from ...conftest import ROOT, run_cli
from .test_sweep import SWEEP

SEARCH = (
    SWEEP.partition("sweep:")[0]
    + """search:
  space: {{learning_rate: {{low: 1.0e-4, high: 1.0e-1, log: true}}, epochs: {{low: 1, high: 2}}}}
  trials: 4
  runs: [harmful, harmful+antidote]
"""
)


def search_yaml(directory, model, text: str = SEARCH):
    path = directory / "search.yaml"
    path.write_text(text.format(model=model))
    return path


def _records(root) -> dict:
    with Store(root) as s:
        return {k: s.get_json(k) for k in s.keys("search:")}


def _trials(searches) -> list:
    return [[(t["number"], t["values"], t["harmful_k"], t["task_k"]) for t in s["trials"]] for s in searches]


@pytest.fixture(scope="module")
def searched(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    spec = parse_study(search_yaml(root, tiny_model).read_text())
    with Store(root / "store") as s:
        searches = attack_search(spec, s, Runtime(progress=False), log=lambda _: None)
    return root, spec, searches


def test_a_proposal_depends_only_on_the_history_and_its_number(searched):
    _, spec, searches = searched
    trials = searches[0]["trials"]
    for t, trial in enumerate(trials):
        assert propose(spec.search, trials[:t], t) == trial["values"]
        assert propose(spec.search, trials[:t], t) == propose(spec.search, trials[:t], t)
    assert propose(spec.search, trials[:2], 2) != propose(spec.search, trials[:2], 3)
    lo, hi = 1e-4, 1e-1
    assert all(lo <= t["values"]["learning_rate"] <= hi and t["values"]["epochs"] in (1, 2) for t in trials)


def test_the_search_record_holds_every_trial_the_worst_and_its_distance(searched):
    root, _, searches = searched
    assert [s["run"] for s in searches] == ["harmful", "harmful+antidote"]
    stored = _records(root / "store")
    assert len(stored) == 2  # one JSON record a run: the store is the search's only storage
    for s in searches:
        assert len(s["trials"]) == 4 and [t["number"] for t in s["trials"]] == [0, 1, 2, 3]
        worst = worst_trial(s["trials"], None)
        assert s["best_so_far"][-1] == worst["harmful_pct"] == max(t["harmful_pct"] for t in s["trials"])
        assert all(a <= b for a, b in zip(s["best_so_far"], s["best_so_far"][1:], strict=False))
        assert s["worst"]["number"] == worst["number"]
        assert 0 < s["worst"]["relative_distance"] < 1 and s["worst"]["distance"] > 0
    # the random start (2 trials) proposes the same settings to both runs: their fine-tunes are shared
    first = [[t["finetune_key"] for t in s["trials"][:2]] for s in searches]
    assert first[0] == first[1]


def test_a_killed_search_resumes_to_the_uninterrupted_table(searched, tiny_model, tmp_path):
    root, _, searches = searched
    file = search_yaml(tmp_path, tiny_model)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "landscape", "-q", "--store", str(store), "attack-search", str(file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed once the first run's search has stored 2 of its 4 trials
        deadline = time.time() + 300
        while time.time() < deadline:
            recs = _records(store) if (store / "meta").exists() else {}
            if any(len(r["trials"]) >= 2 for r in recs.values()):
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = _records(store)
    assert killed and all(len(r["trials"]) < 4 for r in killed.values()), "not killed in the middle"
    out = run_cli("attack-search", str(file), store=store)
    assert out.returncode == 0, out.stderr
    resumed = sorted(_records(store).values(), key=lambda r: r["run"])
    assert _trials(resumed) == _trials(searches)
    for before in killed.values():  # the trials stored before the kill are kept as they were
        after = next(r for r in resumed if r["run"] == before["run"])
        assert after["trials"][: len(before["trials"])] == before["trials"]
    assert search_markdown(searches) in out.stdout


def test_a_task_floor_keeps_only_stealthy_attacks():
    trials = [
        {"number": 0, "harmful_pct": 90.0, "task_pct": 40.0},
        {"number": 1, "harmful_pct": 60.0, "task_pct": 80.0},
        {"number": 2, "harmful_pct": 70.0, "task_pct": 75.0},
        {"number": 3, "harmful_pct": 70.0, "task_pct": 90.0},
    ]
    assert worst_trial(trials, None)["number"] == 0
    assert worst_trial(trials, 75.0)["number"] == 2  # the earliest of a tie
    assert best_so_far(trials, 75.0) == [None, 60.0, 70.0, 70.0]
    assert worst_trial(trials, 95.0) is None
    from landscape.study.search import strongest_below_floor

    assert strongest_below_floor(trials, 75.0)["number"] == 0  # what the floor kept out
    assert strongest_below_floor(trials, None) is None


def test_search_claims_test_each_defences_worst_case_against_no_defences(searched):
    """The antidote run's worst trial against the harmful run's worst: McNemar's exact test on the
    very verdicts stored with those two trials."""
    from landscape.core.stats import mcnemar_exact
    from landscape.study.search import search_claims

    _, _, searches = searched
    (claim,) = search_claims(searches)
    worst = {s["run"]: worst_trial(s["trials"], None) for s in searches}
    want = mcnemar_exact(worst["harmful+antidote"]["harmful_complied"], worst["harmful"]["harmful_complied"])
    assert (claim.p, claim.statistic) == (want.p, want.statistic)
    assert (
        claim.subject == "harmful+antidote (worst of 4 trials)"
        and claim.reference == "harmful (worst of 4 trials)"
    )
    table = search_markdown(searches)
    assert "**Search claims**" in table and claim.text() in table and "with one seed a side" in table


def test_a_floor_no_trial_meets_is_said_in_the_table(tiny_model, tmp_path):
    text = SEARCH.replace("trials: 4", "trials: 2\n  task_floor: 100").replace(
        "runs: [harmful, harmful+antidote]\n", "runs: [harmful]\n", 1
    )
    spec = parse_study(search_yaml(tmp_path, tiny_model, text).read_text())
    with Store(tmp_path / "store") as s:
        searches = attack_search(spec, s, Runtime(progress=False), log=lambda _: None)
    if any(t["task_pct"] >= 100 for t in searches[0]["trials"]):
        pytest.skip("a tiny random model met a 100% task floor")
    assert "worst" not in searches[0] and searches[0]["best_so_far"] == [None, None]
    assert "no trial met the task floor 100%" in search_markdown(searches)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("low: 1.0e-4, high: 1.0e-1", "low: 1.0e-1, high: 1.0e-4", "search field 'learning_rate': the range"),
        ("epochs: {low: 1, high: 2}", "epoch: {low: 1, high: 2}", "search field 'epoch' is unknown"),
        ("trials: 4", "trials: 0", "search trials is the budget and must be at least 1"),
        (
            "epochs: {low: 1, high: 2}",
            "epochs: {low: 1.5, high: 2}",
            "search field 'epochs' takes whole numbers",
        ),
        ("high: 1.0e-1, log", "high: 2.0, log", "search cell learning_rate=2.0, epochs=1 of run harmful"),
    ],
    ids=["empty-range", "unknown-field", "budget-0", "fractional-epochs", "out-of-bounds"],
)
def test_bad_search_spaces_are_one_line_errors_that_write_nothing(tiny_model, tmp_path, old, new, message):
    file = search_yaml(tmp_path, tiny_model)
    assert old in file.read_text()
    file.write_text(file.read_text().replace(old, new))
    out = run_cli("attack-search", str(file), store=tmp_path / "store")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr
    assert not (tmp_path / "store").exists()


def test_attack_search_needs_a_search_block(tmp_path):
    out = run_cli("attack-search", "--preset", "tiny", store=tmp_path / "store")
    assert out.returncode == 2 and "has no search: block" in out.stderr
    with pytest.raises(SpecError, match="search names unknown run 'nope'"):
        parse_study(SEARCH.replace("runs: [harmful, harmful+antidote]\n", "runs: [nope]\n").format(model="m"))


@pytest.mark.slow
def test_tiny_search_preset_runs_on_the_embedded_model(tmp_path):
    out = run_cli("attack-search", "--preset", "tiny-search", store=tmp_path / "store", timeout=1500)
    assert out.returncode == 0, out.stderr[-2000:]
    recs = sorted(_records(tmp_path / "store").values(), key=lambda r: r["run"])
    assert [r["run"] for r in recs] == ["harmful", "harmful+antidote"]
    assert all(len(r["trials"]) == 3 and "worst" in r for r in recs)
    assert "| harmful+antidote | 3 |" in out.stdout
