"""Intervals of stored results, computed on read from what every point already stores.

Nothing here is stored and no key changes: a point's Wilson interval comes from its ``asr_pct``
and ``n_prompts`` (the scan record's ``n_prompts`` for points written before points carried it),
and VISAGE's bootstrap interval from the per-prompt verdicts in each point's responses, so stores
written before this module get intervals too. The maths is in ``core.stats`` (numpy only).
"""

from __future__ import annotations

import numpy as np

from landscape.core.stats import BOOTSTRAP_B, BOOTSTRAP_SEED, VisageInterval, bootstrap_visage, wilson
from landscape.core.visage import POINT_KINDS, record_kind


def point_counts(metrics: dict, n_default: int | None = None) -> tuple[int, int] | None:
    """(complied, asked) of one point's harmful prompts, or None when its size is unknown."""
    n = metrics.get("n_prompts") or n_default
    if not n or metrics.get("asr_pct") is None:
        return None
    return int(round(metrics["asr_pct"] * n / 100)), int(n)


def point_interval(metrics: dict, n_default: int | None = None) -> tuple[float, float] | None:
    """The 95% Wilson interval (percent) of one point's ASR, or None when its size is unknown."""
    counts = point_counts(metrics, n_default)
    return None if counts is None else wilson(*counts)


def interval_text(interval: tuple[float, float] | None, nd: int = 1) -> str:
    """``[lo, hi]`` for reports; "" when there is no interval."""
    return "" if interval is None else f"[{interval[0]:.{nd}f}, {interval[1]:.{nd}f}]"


def harmful_complied(rows: list[dict] | None) -> np.ndarray | None:
    """Per-prompt attack success (True: complied) over a point's harmful prompts (capability rows,
    marked ``set: benign``, are left out); None when the point kept no verdicts. A row without a
    verdict (``refused`` None: cut apart by a rejudge, unparsed by a model judge) is not a success,
    as in the point's ``asr_pct`` (``judges.verdict_metrics``), so an interval and its estimate
    come from the same counts."""
    verdicts = [r["refused"] is False for r in rows or [] if r.get("set", "harmful") == "harmful"]
    return np.asarray(verdicts, dtype=bool) if verdicts else None


def scan_complied(store, key: str, record: dict | None = None) -> np.ndarray | None:
    """Every point's per-prompt verdicts, shaped ``(*grid, n_prompts)``; None unless every point of
    the grid is computed and kept the same number of verdicts."""
    record = record if record is not None else store.scan_record(key)
    if record is None:
        return None
    shape = (len(record["alphas"]),) + (() if record.get("betas") is None else (len(record["betas"]),))
    rows = []
    for flat in range(int(np.prod(shape))):
        i, j = np.unravel_index(flat, shape) if len(shape) == 2 else (flat, 0)
        v = harmful_complied(store.point_responses(key, int(i), int(j)))
        if v is None or (rows and v.size != rows[0].size):
            return None
        rows.append(v)
    return np.stack(rows).reshape(*shape, rows[0].size)


def family_complied(store, keys: list[str]) -> list[np.ndarray] | None:
    """Every scan's per-prompt verdicts (``scan_complied``), read once for any number of intervals;
    None when a scan is a single-point evaluation (no VISAGE), incomplete, kept no verdicts, or the
    scans were asked different numbers of prompts."""
    records = [store.scan_record(k) for k in keys]
    if any(r is None or record_kind(r) in POINT_KINDS for r in records):  # a single point has no VISAGE
        return None
    mats = [scan_complied(store, k, r) for k, r in zip(keys, records, strict=True)]
    if not mats or any(m is None for m in mats) or len({m.shape[-1] for m in mats}) != 1:
        return None
    return mats


def complied_interval(
    mats: list[np.ndarray] | None,
    b: int = BOOTSTRAP_B,
    seed: int = BOOTSTRAP_SEED,
    method: str = "bounds",
    statistic: str = "paper",
) -> VisageInterval | None:
    """``bootstrap_visage`` of ``family_complied``'s verdicts; None without them, or for the
    released code's VISAGE of a scan that is not 1D."""
    if mats is None or (statistic == "reference" and any(m.ndim != 2 for m in mats)):
        return None
    return bootstrap_visage(mats, b=b, seed=seed, method=method, statistic=statistic)


def visage_interval(
    store,
    keys: list[str],
    b: int = BOOTSTRAP_B,
    seed: int = BOOTSTRAP_SEED,
    method: str = "bounds",
    statistic: str = "paper",
) -> VisageInterval | None:
    """The bootstrap interval of the paper's VISAGE (or the released code's, ``statistic``) of one
    scan, or of a family's mean over its K scans (prompts resampled jointly); None where
    ``family_complied`` gives no verdicts."""
    return complied_interval(family_complied(store, keys), b, seed, method, statistic)


METHOD_NAMES = {"bounds": "bounds", "percentile": "percentile", "bca": "BCa"}


def interval_label(ci: VisageInterval | None) -> str:
    """How a VISAGE interval was drawn, for every surface that prints one: ``95% bounds bootstrap
    interval over prompts (B = 1000, seed 0)``. "Bounds" runs from the lowest VISAGE the data allow
    (every point seen at 100% counted inside the basin) to the paper estimator's upper quantile."""
    if ci is None:
        return "95% interval"
    return f"{_name(ci)} (B = {ci.b}, seed {ci.seed})"


def interval_phrase(ci: VisageInterval) -> str:
    """``95% bounds bootstrap interval over prompts [lo, hi] (B = 1000, seed 0)``."""
    return f"{_name(ci)} {visage_interval_text(ci)} (B = {ci.b}, seed {ci.seed})"


def _name(ci: VisageInterval) -> str:
    return (
        f"{round(100 * ci.level)}% {METHOD_NAMES.get(ci.method, ci.method)} bootstrap interval over prompts"
    )


def visage_interval_text(ci: VisageInterval | None, nd: int = 2) -> str:
    """``[lo, hi]`` of a VISAGE bootstrap, or "—" when there is none."""
    return "—" if ci is None else f"[{ci.lo:.{nd}f}, {ci.hi:.{nd}f}]"
