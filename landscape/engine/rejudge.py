"""Rejudge a stored scan: its stored responses scored by another judge, without generating again.

The result is a *derived scan*: a scan record and points like any other (``landscape list``, the
dashboard and ``show`` read it unchanged), whose key is the hash of the source scan's key and the
new judge's fingerprint, and whose record says where it came from (``derived``: source key, judge,
its fingerprint, how cut rows were treated). Its spec is the source's with the new judge, so the
generation it records is the one that produced the responses. A rejudge of a rejudge goes back to
the scan that generated the responses. Points are rejudged one at a time and stored at once, so an
interrupted rejudge resumes; a source still filling in gives a partial derived scan.

Incoherence is recomputed with the current rule (``judges.incoherence``, whose version is part of
the judge's fingerprint and so of the derived key) on each response's incoherence window: the one
stored beside it, or, for rows written before windows were stored, the response's first
``incoherence_window`` tokens re-tokenised with the scan model's tokenizer. So rejudging a scan with
its own judge gives its verdicts under today's incoherence rule (``asr_coherent_pct`` before/after).

Responses cut by early stopping (``end == "early_stop"``) were cut when the *source* judge's verdict
was final; another judge would judge fragments. A fragment on which the new judge's own verdict is
already final (its ``decided`` predicate holds: the same keyword judge, a keyword already in it) is
judged as usual; the others are refused (``CutResponsesError``, naming how many) unless
``count_cut_apart``: then they get no verdict (``apart = "cut"``, ``cut_pct``).

``scan_agreement`` compares two scans of the same responses (the source and its rejudges) point
by point with ``landscape.core.agreement``; no torch is imported here at module level.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cache import Store, StoreError, canonical_json
from landscape.core.agreement import AgreementTable, agreement_table
from landscape.core.format import plural
from landscape.core.judges import (
    get_judge,
    incoherence,
    judge_fingerprint,
    judge_model_identity,
    verdict_metrics,
    verdict_row,
)
from landscape.core.provenance import provenance
from landscape.core.specs import JudgeSpec, Runtime, ScanSpec, SpecError, spec_hash
from landscape.core.visage import scan_summary

CUT = "early_stop"
CARRIED = ("alpha", "beta", "nll", "tokens", "ended_eos", "ended_budget", "ended_early_stop")


class CutResponsesError(SpecError):
    """The source scan has responses cut by early stopping: they cannot be rejudged honestly."""


def response_source(store: Store, key: str) -> str:
    """The scan that generated the responses ``key`` holds: itself, or the source of a rejudge."""
    record = _record(store, key)
    return (record.get("derived") or {}).get("source", key)


def _record(store: Store, key: str) -> dict:
    record = store.scan_record(key)
    if record is None:
        raise StoreError(f"no scan with key {key!r} in {store.root}")
    return record


def _points(store: Store, key: str) -> list[tuple[int, int]]:
    """The computed points of a scan, in grid order."""
    import numpy as np

    asr = store.scan_grid(key, fields=("asr_pct",)).values["asr_pct"]
    return [(int(ix[0]), int(ix[1]) if len(ix) > 1 else 0) for ix in np.argwhere(np.isfinite(asr))]


def rejudge_key(source: str, judge: JudgeSpec, count_cut_apart: bool = False) -> str:
    return spec_hash("rejudge", _identity(source, judge, count_cut_apart))


def _identity(source: str, judge: JudgeSpec, count_cut_apart: bool) -> dict:
    fp = judge_fingerprint(judge.name, judge_model_identity(judge))
    return {"source": source, "judge": {"name": judge.name, "definition": fp}, "cut_apart": count_cut_apart}


def row_windows(rows: list[dict], window_of: Callable[[str], str]) -> list[str]:
    """Each row's incoherence window: stored, or re-made from its response."""
    return [r["window"] if "window" in r else window_of(r["response"]) for r in rows]


def window_maker(store: Store, record: dict) -> Callable[[str], str]:
    """response → its first ``incoherence_window`` tokens, with the scan model's tokenizer (loaded
    on first use, only when a row has no stored window)."""
    n = (record["spec"].get("generation") or {}).get("incoherence_window", 16)
    tok = []

    def make(response: str) -> str:
        if not tok:
            from landscape.core.models import load_tokenizer
            from landscape.core.specs import ModelSpec

            tok.append(load_tokenizer(ModelSpec.model_validate(record["spec"]["model"]), store))
        ids = tok[0](response, add_special_tokens=False)["input_ids"][:n]
        return tok[0].decode(ids, skip_special_tokens=True)

    return make


def _undecided_cut(row: dict, decided) -> bool:
    """A row cut by early stopping whose verdict the new judge could not give on the fragment."""
    return row.get("end") == CUT and not (decided is not None and decided(row["response"]))


def _rejudge_rows(rows: list[dict], scorer, batch_size: int, windows: list[str], decided=None) -> list[dict]:
    """``rows`` with new verdicts (cut rows get none) and incoherence under the current rule on
    ``windows``; response and ending kept."""
    rows = [
        dict(r, window=w, incoherent=why is not None, incoherent_reason=why)
        for r, w, why in ((r, w, incoherence(w)) for r, w in zip(rows, windows, strict=True))
    ]
    judged = [k for k, r in enumerate(rows) if not _undecided_cut(r, decided)]
    verdicts = scorer.score(
        [rows[k]["prompt"] for k in judged], [rows[k]["response"] for k in judged], batch_size
    )
    kept = [{k: v for k, v in row.items() if k not in ("refused", "reason", "apart")} for row in rows]
    out = [dict(row, refused=None, reason="cut by early stopping: not judged", apart="cut") for row in kept]
    for k, verdict in zip(judged, verdicts, strict=True):
        out[k] = dict(kept[k], **verdict_row(rows[k]["prompt"], rows[k]["response"], verdict))
    return out


def _metrics(rows: list[dict], source: dict, abstains: bool, elapsed_s: float) -> dict:
    harmful = [r for r in rows if r.get("set") != "benign"]
    benign = [r for r in rows if r.get("set") == "benign"]
    metrics = verdict_metrics(harmful, abstains)
    if benign:
        b = verdict_metrics(benign, abstains)
        metrics["benign_refusal_pct"] = b["refusal_pct"]
        metrics["benign_incoherent_pct"] = b["incoherent_pct"]
    metrics.update({k: source[k] for k in CARRIED if k in source})
    metrics.update(elapsed_s=elapsed_s, finished=time.time())
    return metrics


def rejudge_scan(
    source: str,
    judge: JudgeSpec,
    store: Store,
    runtime: Runtime | None = None,
    *,
    count_cut_apart: bool = False,
    log: Callable[[str], None] = print,
    session=None,
):
    """Score the stored responses of scan ``source`` (a full key) with ``judge`` into a derived
    scan; returns the engine's ``ScanResult`` for it. ``session``: an engine ``Session`` whose
    loaded judges are reused."""
    from landscape.core.judges import load_judge
    from landscape.engine.scan import ScanResult

    runtime = runtime or Runtime()
    root = response_source(store, source)
    root_record = _record(store, root)
    points = _points(store, root)
    decided = get_judge(judge.name).decided  # None for a model judge: it needs whole responses
    cut = total = 0
    for i, j in points:
        rows = store.point_responses(root, i, j) or []
        total += len(rows)
        cut += sum(_undecided_cut(r, decided) for r in rows)
    if cut and not count_cut_apart:
        raise CutResponsesError(
            f"scan {root[:12]}: {cut} of {total} responses were cut by early stopping before judge "
            f"{judge.name} could decide them, so it would judge fragments; rescan with --full-responses, "
            "or pass --count-cut-apart"
        )
    identity = _identity(root, judge, count_cut_apart)
    key = spec_hash("rejudge", identity)
    record = store.scan_record(key)
    if record is None:
        spec = dict(root_record["spec"], judge=judge.model_dump(mode="json"))
        record = {k: v for k, v in root_record.items() if k not in ("status", "completed", "summary")}
        record.update(
            spec=spec,
            spec_json=canonical_json(spec),
            family=spec_hash("rejudge-family", dict(identity, source=root_record.get("family", root))),
            status="pending",
            derived={
                "source": root,
                "judge": judge.model_dump(mode="json"),
                "judge_fingerprint": identity["judge"]["definition"],
                "count_cut_apart": count_cut_apart,
                "cut": cut,
            },
            **provenance(),
        )
        store.put_scan_record(key, record)
    todo = [(i, j) for i, j in points if store.point(key, i, j) is None]
    computed = 0
    if todo:
        log(
            f"rejudge {root[:12]} → {key[:12]} with {judge.name}: {plural(len(todo), 'point')}"
            + (f", {cut} cut rows apart" if cut else "")
        )
        scorer = session.judge(judge) if session is not None else load_judge(judge, runtime.device)
        make_window = window_maker(store, root_record)
        for i, j in todo:
            t0 = time.perf_counter()
            source_rows = store.point_responses(root, i, j) or []
            windows = row_windows(source_rows, make_window)
            rows = _rejudge_rows(source_rows, scorer, runtime.batch_size, windows, decided)
            metrics = _metrics(rows, store.point(root, i, j) or {}, scorer.abstains, time.perf_counter() - t0)
            store.put_point(key, i, j, metrics, rows)
            computed += 1
    grid = store.scan_grid(key)
    summary = scan_summary(record, grid.values["asr_pct"])
    if grid.done == record.get("total_points") and record.get("status") != "complete":
        record.update(status="complete", completed=time.time())
        store.put_scan_record(key, record)
    spec = ScanSpec.model_validate(record["spec"])
    return ScanResult(key, spec, grid, summary, computed, record)


def _verdicts(rows: list[dict]) -> list[bool | None]:
    return [r.get("refused") for r in rows if r.get("set") != "benign"]


def scan_agreement(store: Store, key_a: str, key_b: str) -> AgreementTable:
    """Per-point and pooled agreement of two scans' verdicts on the same (harmful) responses. The
    two must share responses (one source scan and its rejudges): a one-line StoreError otherwise."""
    if response_source(store, key_a) != response_source(store, key_b):
        raise StoreError(
            f"scans {key_a[:12]} and {key_b[:12]} judge different responses: compare a scan with "
            "its rejudges (`landscape rejudge`)"
        )
    shared = sorted(set(_points(store, key_a)) & set(_points(store, key_b)))
    points = {}
    for i, j in shared:
        rows_a = store.point_responses(key_a, i, j) or []
        rows_b = store.point_responses(key_b, i, j) or []
        if [r["response"] for r in rows_a] != [r["response"] for r in rows_b]:
            raise StoreError(f"point ({i}, {j}) of {key_a[:12]} and {key_b[:12]} holds different responses")
        m = store.point(key_a, i, j) or {}
        points[(i, j)] = (m.get("alpha", 0.0), m.get("beta", 0.0), _verdicts(rows_a), _verdicts(rows_b))
    return agreement_table(points)
