"""Cached loaders over the store for the pages (``st.cache_data``; never torch).

Cache entries are keyed by the store directory, the scan key and the scan's progress counter, so a
scan that is still filling in is re-read as soon as a point lands, and a finished one is read once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cache import Store, StoreError
from dashboard.settings import Settings, load_settings
from landscape.core.format import model_name
from landscape.core.stats import VisageInterval, wilson_arrays
from landscape.core.uncertainty import visage_interval
from landscape.core.visage import POINT_KINDS, mean_std, record_kind, reference_text, scan_summary
from landscape.figures.plots import Curve
from landscape.study.report import halfwidth_pair


@st.cache_resource
def _store(root: str) -> Store:
    return Store(root)


def settings() -> Settings:
    return load_settings()


def store() -> Store:
    return _store(str(settings().store))


# (store root, scan key) → (progress counter, summary). A plain dict rather than st.cache_data: the
# Overview asks for every scan's summary on each rerun, and st.cache_data's argument hashing and
# result copying cost more than the lookup. One entry per scan; a moved counter replaces it.
_SUMMARIES: dict[tuple[str, str], tuple[int, dict]] = {}


def _summary(store: Store, key: str, progress: int, record: dict | None = None) -> dict:
    memo = _SUMMARIES.get((str(store.root), key))
    if memo is not None and memo[0] == progress:
        return memo[1]
    try:
        record = record if record is not None else store.scan_record(key)
    except StoreError:
        return {}
    if record is None:
        return {}
    grid = store.scan_grid(key, fields=("asr_pct",), record=record)
    summ = scan_summary(record, grid.values["asr_pct"])
    _SUMMARIES[(str(store.root), key)] = (progress, summ)
    return summ


def summary(key: str) -> dict:
    """A scan's basin metrics, recomputed from its grid (never a summary stored on an old record);
    re-read when its progress counter moves. Treat the result as read-only."""
    s = store()
    return _summary(s, key, s.progress(key))


def _describe(store: Store, s: dict) -> dict:
    spec = s.get("spec", {})
    summ = _summary(store, s["key"], store.progress(s["key"]), s)
    dirs = spec.get("directions", [])
    grid = f"{len(s['alphas'])}" + (f"×{len(s['betas'])}" if s.get("betas") else "")
    total = s.get("total_points") or 1
    return {
        "key": s["key"],
        "model": model_name(spec.get("model") or {}),
        "kind": record_kind(s),
        "directions": ", ".join(
            f"{d['kind']}" + (f" s{d['seed']} {d['norm']}" if d["kind"] == "random" else "") for d in dirs
        )
        or "—",
        "grid": grid,
        "range": f"[{s['alphas'][0]:.3g}, {s['alphas'][-1]:.3g}]",
        "prompts": f"{spec.get('prompts', {}).get('source', '?')}"
        + (f" ≤{spec['prompts']['limit']}" if spec.get("prompts", {}).get("limit") else ""),
        "system prompt": spec.get("system_prompt"),
        "judge": f"{spec.get('judge', {}).get('name')}" + (" (rejudge)" if s.get("derived") else ""),
        "status": s["status"],
        "done %": round(100 * s.get("done", 0) / total, 1),
        "ASR θ₀ %": summ.get("asr_origin_pct"),
        "VISAGE": summ.get("visage"),
        "VISAGE ref": reference_text(summ) if summ.get("complete") else None,
        "half-width 100%": halfwidth_pair(summ, "alpha", 100)
        if summ.get("complete") and record_kind(s) not in POINT_KINDS
        else None,
        "created": s.get("created", 0),
        "family": s.get("family"),
    }


def scan_table(root: str) -> pd.DataFrame:
    """One row per scan (newest first), rebuilt only when the store's listing changes (its change
    counter, moved by any process writing a scan record or a point), not every 2 s."""
    return _scan_table(root, _store(root).changes())


@st.cache_data(max_entries=4, show_spinner=False)
def _scan_table(root: str, changes: int) -> pd.DataFrame:
    store = _store(root)
    df = pd.DataFrame([_describe(store, s) for s in store.list_scans() if not s.get("calibration")])
    if not df.empty:  # one conversion for the whole column, not one per row
        df["created"] = pd.to_datetime(df["created"], unit="s")
    return df


def scans() -> pd.DataFrame:
    return scan_table(str(settings().store))


@st.cache_data(show_spinner=False, max_entries=256)
def _grid(root: str, key: str, progress: int):
    g = _store(root).scan_grid(key)
    return g.alphas, g.betas, {k: v for k, v in g.values.items()}


def grid(key: str):
    """(alphas, betas, values) of a scan; re-read when its progress counter moves."""
    s = store()
    return _grid(str(s.root), key, s.progress(key))


def record(key: str) -> dict | None:
    try:
        return store().scan_record(key)
    except StoreError:
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def _agreement(root: str, key_a: str, key_b: str, progress: tuple[int, int]) -> pd.DataFrame | str:
    from landscape.engine.rejudge import scan_agreement

    try:
        table = scan_agreement(_store(root), key_a, key_b)
    except StoreError as exc:
        return str(exc)
    rows = [{"alpha": p.alpha, "beta": p.beta, **vars(p.agreement)} for p in table.points] + [
        {"alpha": None, "beta": None, **vars(table.overall)}
    ]
    return pd.DataFrame(rows).rename(columns={"disagree_pct": "disagree %", "kappa": "κ", "n_apart": "apart"})


def agreement(key_a: str, key_b: str) -> pd.DataFrame | str:
    """Per-point judge agreement of two scans of the same responses (last row: all pooled), or why
    there is none (a one-line reason); re-read when either scan's progress moves."""
    s = store()
    return _agreement(str(s.root), key_a, key_b, (s.progress(key_a), s.progress(key_b)))


def responses(key: str, i: int, j: int) -> list[dict]:
    return store().point_responses(key, i, j) or []


def prompt_counts(key: str, values: dict) -> np.ndarray:
    """Prompts asked at each point: ``n_prompts`` on the point, else the scan record's (older points)."""
    n = values.get("n_prompts")
    if n is not None and np.isfinite(n).any():
        return n
    rec = record(key) or {}
    return np.full(np.shape(values["asr_pct"]), float(rec.get("n_prompts") or np.nan))


def curve_for(key: str, label: str | None = None) -> Curve:
    """One scan's curve with each point's 95% Wilson interval."""
    alphas, _betas, values = grid(key)
    n = prompt_counts(key, values)
    return Curve(
        name=label or key[:8],
        alphas=alphas,
        asr=values["asr_pct"],
        incoherent=values.get("incoherent_pct"),
        benign_refusal=values.get("benign_refusal_pct"),
        nll=values.get("nll"),
        ci=wilson_arrays(values["asr_pct"], n),
        extra={"n": n},
    )


def family_curve(keys: list[str], label: str) -> Curve:
    """Mean ± std over K scans sharing a grid (K random directions); the Wilson interval is that of
    the pooled share (every direction's prompts together, K·n at each point)."""
    curves = [curve_for(k) for k in keys]
    base = curves[0].alphas
    same = [c for c in curves if len(c.alphas) == len(base) and np.allclose(c.alphas, base)]

    def stack(attr):
        return None if getattr(same[0], attr) is None else np.vstack([getattr(c, attr) for c in same])

    asr, n = stack("asr"), np.vstack([c.extra["n"] for c in same])
    pooled = np.where(np.isfinite(asr).all(axis=0), (asr * n).sum(axis=0) / n.sum(axis=0), np.nan)
    return Curve(
        name=label,
        alphas=base,
        asr=asr,
        incoherent=stack("incoherent"),
        benign_refusal=stack("benign_refusal"),
        nll=stack("nll"),
        ci=wilson_arrays(pooled, n.sum(axis=0)),
        extra={"keys": [k for k, c in zip(keys, curves, strict=True) if any(c is x for x in same)]},
    )


# (store root, keys) → (progress counters, interval): the bootstrap reads every point's responses,
# so it is redone only when one of the scans moves.
_INTERVALS: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, ...], VisageInterval | None]] = {}


def visage_ci(keys: list[str]) -> VisageInterval | None:
    """The seeded bootstrap interval over prompts of the paper VISAGE of one scan, or of the mean of
    a family (prompts resampled jointly); None while a scan is incomplete or kept no verdicts."""
    s = store()
    memo_key = (str(s.root), tuple(keys))
    progress = tuple(s.progress(k) for k in keys)
    memo = _INTERVALS.get(memo_key)
    if memo is not None and memo[0] == progress:
        return memo[1]
    try:
        ci = visage_interval(s, list(keys))
    except StoreError:
        ci = None
    _INTERVALS[memo_key] = (progress, ci)
    return ci


def label(row) -> str:
    """How a scan is named in pickers and legends; a rejudged scan says so and by which judge (it
    was named exactly like its original)."""
    judge = f" · {row['judge']}" if "(rejudge)" in str(row.get("judge", "")) else ""
    return (
        f"{row['key'][:8]} · {row['model']} · {row['kind']} {row['grid']} · {row['system prompt']}"
        f"{judge} · {row['status']}"
    )


@st.cache_data(max_entries=4, show_spinner=False)
def _studies(root: str, changes: int) -> list[dict]:
    s = _store(root)
    out = []
    for k in s.keys("study:"):
        try:
            rec = s.get_json(k)
        except StoreError:
            continue
        if isinstance(rec, dict):
            out.append(dict(rec, key=k.removeprefix("study:")))
    return sorted(out, key=lambda r: r.get("updated", 0), reverse=True)


def studies() -> list[dict]:
    """Every study record (running ones included), newest first; re-read when the store changes."""
    root = str(settings().store)
    return _studies(root, _store(root).changes())


@st.cache_data(max_entries=4, show_spinner=False)
def _searches(root: str, changes: int) -> list[dict]:
    from landscape.study.search import best_so_far, strongest_below_floor, worst_trial

    s = _store(root)
    out = []
    for k in s.keys("search:"):
        try:
            rec = s.get_json(k)
        except StoreError:
            continue
        if isinstance(rec, dict) and rec.get("trials"):
            floor = (rec.get("search") or {}).get("task_floor")
            out.append(
                dict(
                    rec,
                    key=k.removeprefix("search:"),
                    study=rec.get("study", "—"),  # records from before these fields: derived, not assumed
                    best_so_far=best_so_far(rec["trials"], floor),
                    worst_found=worst_trial(rec["trials"], floor),
                    kept_out=strongest_below_floor(rec["trials"], floor),
                )
            )
    return sorted(out, key=lambda r: r.get("updated", 0), reverse=True)


def searches() -> list[dict]:
    """Every worst-case search record with a trial (one per searched run), newest first, with its
    worst-so-far trace and worst feasible trial recomputed from its trials; re-read when the store
    changes (a study's or ``landscape attack-search``'s alike)."""
    root = str(settings().store)
    return _searches(root, _store(root).changes())


def study_frame(record: dict) -> pd.DataFrame:
    """The comparison table, one row per model, in the study's own schema (``landscape.study.table``)
    plus each defence's account of what it did; VISAGE recomputed from the stored scans (the value on
    the study record may be older)."""
    from landscape.study.table import COLUMNS, defense_notes, study_rows

    def visage(keys):
        vis = mean_std(summary(k).get("visage") for k in keys)
        return vis.mean if vis.n else None

    rows = study_rows(record, visage)
    for row, m in zip(rows, record.get("models", []), strict=True):
        for c in COLUMNS:  # mean ± std over seeds reads as the markdown writes it
            if isinstance(row[c.header], tuple) and c.header != "VISAGE":
                row[c.header] = c.text(row[c.header])
        row["defence notes"] = "; ".join(defense_notes(m)) or "—"
    return pd.DataFrame(rows)
