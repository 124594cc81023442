"""Rejudging stored responses: a derived scan with provenance, honest about early-stopped rows, and
the agreement of two judges of the same responses."""

from __future__ import annotations

import json

import pytest

from cache import StoreError
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
)
from landscape.engine.rejudge import CutResponsesError, rejudge_scan, response_source, scan_agreement
from landscape.engine.scan import scan_grid

from ...conftest import run_cli

QUIET = {"log": lambda m: None}


def _scan(model, prompts, store, early_stop: bool, judge: str = "keywords", max_new_tokens: int = 24):
    spec = ScanSpec(
        model=ModelSpec(source=str(model)),
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(start=-0.1, stop=0.1, num=3),
        prompts=PromptSpec(source=str(prompts)),
        generation=GenerationSpec(max_new_tokens=max_new_tokens, early_stop=early_stop, incoherence_window=1),
        judge=JudgeSpec(name=judge),
    )
    return scan_grid(spec, store, Runtime(progress=False), **QUIET)


@pytest.fixture
def full(tiny_model, prompts_file, store):
    return _scan(tiny_model, prompts_file, store, early_stop=False)


def _cut_rows(store, key) -> list[dict]:
    """Mark two stored rows as cut by early stopping (what a keyword refusal found early leaves)."""
    rows = store.point_responses(key, 1, 0)
    for row in rows[:2]:
        row["end"] = "early_stop"
    store.put_point(key, 1, 0, store.point(key, 1, 0), rows)
    return rows


def test_rejudge_is_a_derived_scan_with_provenance(full, store, forced_judges):
    guard = JudgeSpec(name="guard", model=str(forced_judges["guard_unsafe"]))
    r = rejudge_scan(full.key, guard, store, Runtime(progress=False), **QUIET)
    assert r.key != full.key and r.computed == 3
    assert r.grid.values["asr_pct"].tolist() == [100.0] * 3
    d = r.record["derived"]
    assert d["source"] == full.key and d["judge"]["model"] == str(forced_judges["guard_unsafe"])
    assert r.record["spec"]["judge"]["name"] == "guard" and r.record["status"] == "complete"
    assert r.record["spec"]["generation"] == full.record["spec"]["generation"]
    assert r.grid.alphas.tolist() == full.grid.alphas.tolist()
    assert r.key in {s["key"] for s in store.list_scans()}  # listed like any other scan
    src_rows, new_rows = store.point_responses(full.key, 0, 0), store.point_responses(r.key, 0, 0)
    assert [x["response"] for x in src_rows] == [x["response"] for x in new_rows]  # nothing generated
    assert [x["incoherent"] for x in src_rows] == [x["incoherent"] for x in new_rows]
    again = rejudge_scan(full.key, guard, store, **QUIET)
    assert again.key == r.key and again.computed == 0  # served from the store
    other = rejudge_scan(
        full.key, JudgeSpec(name="guard", model=str(forced_judges["guard_safe"])), store, **QUIET
    )
    assert other.key != r.key and other.grid.values["asr_pct"].tolist() == [0.0] * 3
    # a rejudge of a rejudge goes back to the responses' source
    assert rejudge_scan(r.key, guard, store, **QUIET).key == r.key
    assert response_source(store, r.key) == full.key


def test_rejudging_with_the_same_text_judge_reproduces_the_scan(full, store):
    r = rejudge_scan(full.key, JudgeSpec(name="keywords"), store, **QUIET)
    for name in ("asr_pct", "refusal_pct", "incoherent_pct", "asr_coherent_pct"):
        assert r.grid.values[name].tolist() == full.grid.values[name].tolist()


def test_cut_rows_are_refused_or_counted_apart(full, store, forced_judges):
    _cut_rows(store, full.key)
    guard = JudgeSpec(name="guard", model=str(forced_judges["guard_unsafe"]))
    with pytest.raises(CutResponsesError, match="2 of 12 responses were cut") as err:
        rejudge_scan(full.key, guard, store, **QUIET)
    assert "--full-responses" in str(err.value) and "\n" not in str(err.value)
    r = rejudge_scan(full.key, guard, store, count_cut_apart=True, **QUIET)
    assert r.record["derived"]["cut"] == 2
    assert r.grid.values["asr_pct"].tolist() == [100.0, 50.0, 100.0]  # 2 of 4 prompts apart at i=1
    assert r.grid.values["cut_pct"][1] == 50.0
    # issue 25: the interval and its estimate come from the same verdicts as the grid; a row
    # counted apart is not a success in either (it was one in the interval: 0.00 vs 50.00)
    from landscape.core.uncertainty import visage_interval
    from landscape.core.visage import scan_summary

    ci = visage_interval(store, [r.key])
    est = scan_summary(r.record, r.grid.values["asr_pct"])["visage"]
    assert ci.visage == pytest.approx(est) == 50.0  # one point inside the basin, at 50%
    assert ci.lo <= est <= ci.hi
    rows = store.point_responses(r.key, 1, 0)
    assert [x["apart"] for x in rows[:2]] == ["cut", "cut"] and rows[0]["refused"] is None


def test_a_cut_fragment_the_new_judge_has_decided_is_judged(full, store):
    """The keyword judge cut a response once a refusal keyword appeared: rejudged by the keyword
    judge (say, under a new incoherence rule) that fragment is decided, so it is judged, not refused;
    a cut fragment without a keyword is still refused."""
    rows = store.point_responses(full.key, 1, 0)
    rows[0].update(end="early_stop", response="I'm sorry, but I")  # decided: a keyword is in it
    store.put_point(full.key, 1, 0, store.point(full.key, 1, 0), rows)
    r = rejudge_scan(full.key, JudgeSpec(name="keywords"), store, **QUIET)
    new = store.point_responses(r.key, 1, 0)
    assert r.record["derived"]["cut"] == 0 and new[0]["refused"] is True and "apart" not in new[0]
    rows[1].update(end="early_stop", response="Sure, here")  # not decided by keywords
    store.put_point(full.key, 1, 0, store.point(full.key, 1, 0), rows)
    with pytest.raises(CutResponsesError, match="1 of 12 responses were cut"):
        rejudge_scan(full.key, JudgeSpec(name="prefix"), store, **QUIET)


def test_agreement_of_two_judges_of_the_same_responses(
    full, store, forced_judges, tiny_model, prompts_file, tmp_path
):
    unsafe = rejudge_scan(
        full.key, JudgeSpec(name="guard", model=str(forced_judges["guard_unsafe"])), store, **QUIET
    )
    safe = rejudge_scan(
        full.key, JudgeSpec(name="guard", model=str(forced_judges["guard_safe"])), store, **QUIET
    )
    same = scan_agreement(store, unsafe.key, unsafe.key)
    assert same.overall.kappa == 1.0 and same.overall.disagree_pct == 0.0 and same.overall.n == 12
    opposite = scan_agreement(store, unsafe.key, safe.key)
    assert opposite.overall.disagree_pct == 100.0 and opposite.overall.kappa == 0.0
    assert [p.alpha for p in opposite.points] == pytest.approx([-0.1, 0.0, 0.1])
    mixed = scan_agreement(store, full.key, unsafe.key)  # the source against its rejudge
    complied = 100 - full.grid.values["refusal_pct"]
    assert [p.agreement.disagree_pct for p in mixed.points] == pytest.approx(list(100 - complied))
    other = _scan(tiny_model, prompts_file, store, early_stop=False, max_new_tokens=3)
    with pytest.raises(StoreError, match="judge different responses"):
        scan_agreement(store, full.key, other.key)


def test_cli_rejudge_agree_and_full_responses(tiny_model, prompts_file, tmp_path, forced_judges):
    root = tmp_path / "s"
    common = [
        "--model",
        str(tiny_model),
        "--prompts",
        str(prompts_file),
        "--points",
        "3",
        "--range",
        "-0.1",
        "0.1",
    ]
    scan = run_cli("scan", "1d", *common, "--max-new-tokens", "4", "--json", store=root)
    assert scan.returncode == 0, scan.stderr
    key = json.loads(scan.stdout)[0]["key"]
    full = run_cli("scan", "1d", *common, "--max-new-tokens", "4", "--full-responses", "--json", store=root)
    full_key = json.loads(full.stdout)[0]["key"]
    no_stop = run_cli("scan", "1d", *common, "--max-new-tokens", "4", "--no-early-stop", "--json", store=root)
    assert full_key != key and json.loads(no_stop.stdout)[0]["key"] == full_key  # one key for both spellings
    guard = ["--judge", "guard", "--judge-model", str(forced_judges["guard_unsafe"])]
    res = run_cli("rejudge", full_key[:10], *guard, "--json", store=root)
    assert res.returncode == 0, res.stderr
    derived = json.loads(res.stdout)
    assert derived["derived"]["source"] == full_key and derived["summary"]["asr_origin_pct"] == 100.0
    agree = run_cli("agree", full_key[:10], derived["key"][:10], store=root)
    assert agree.returncode == 0 and "kappa" in agree.stdout and agree.stdout.count("\n") == 5
    listed = run_cli("list", "--json", store=root)
    assert derived["key"] in {s["key"] for s in json.loads(listed.stdout)}
    row = next(
        line
        for line in run_cli("list", store=root).stdout.splitlines()
        if line.startswith(derived["key"][:12])
    )
    assert row.endswith(f"(rejudge of {full_key[:12]} with guard)")  # marked as derived (issue 25)
    bad = run_cli(
        "rejudge",
        full_key[:10],
        "--judge",
        "classifier",
        "--judge-model",
        str(forced_judges["classifier_0"]),
        "--label-map",
        "LABEL_0=safe",
        store=root,
    )
    assert bad.returncode == 2 and "does not cover" in bad.stderr and bad.stderr.count("\n") == 1


def test_rejudge_applies_the_current_incoherence_rule_to_each_window(full, store, tiny_model):
    """Rows carry their incoherence window; a rejudge recomputes incoherence on it with today's
    rule, and re-makes the window with the scan model's tokenizer for rows stored without one."""
    from landscape.core.judges import incoherence
    from landscape.core.models import load_tokenizer

    rows = store.point_responses(full.key, 2, 0)
    assert all("window" in r for r in rows)  # windows are stored with every new row
    old = [dict(r, incoherent=False, incoherent_reason=None) for r in rows]  # as a v1 rule left them
    old[0]["window"] = "it M butl St coulde next True next and The next St'LaDre"  # stored: used as is
    for r in old[1:]:
        r.pop("window")  # written before windows were stored: re-made from the response
    store.put_point(full.key, 2, 0, store.point(full.key, 2, 0), old)
    r = rejudge_scan(full.key, JudgeSpec(name="prefix"), store, Runtime(progress=False), **QUIET)
    new = store.point_responses(r.key, 2, 0)
    assert new[0]["incoherent"] and new[0]["incoherent_reason"].startswith("word salad")
    tok = load_tokenizer(ModelSpec(source=str(tiny_model)))
    for src, row in zip(old[1:], new[1:], strict=True):
        window = tok.decode(
            tok(src["response"], add_special_tokens=False)["input_ids"][:1], skip_special_tokens=True
        )
        assert row["window"] == window and row["incoherent"] == (incoherence(window) is not None)
