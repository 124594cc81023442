"""Text reports for the CLI and the demo: curves, grids, summaries, scan lists, VISAGE tables.

Every function returns its text; the caller prints it (no click, no torch here)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np

from landscape.core.format import axis_decimals, format_coordinate, model_name
from landscape.core.format import format_number as _fmt
from landscape.core.specs import SpecError
from landscape.core.stats import VisageInterval, wilson, wilson_arrays
from landscape.core.uncertainty import (
    interval_label,
    interval_phrase,
    interval_text,
    point_counts,
    point_interval,
    visage_interval,
)
from landscape.core.visage import mean_std, record_kind, reference_text, scan_summary

BAR = 30


def grid_intervals(grid, n_default: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each point's 95% Wilson interval (percent) from its ASR and prompt count (``n_prompts`` on
    the point, else ``n_default``, the scan record's); NaN where unknown."""
    n = grid.values.get("n_prompts")
    if n is None or not np.isfinite(n).any():
        n = np.full(grid.shape, np.nan if n_default is None else float(n_default))
    return wilson_arrays(grid.values["asr_pct"], n)


# capability measured with --capability, shown beside the ASR: (field, header, decimals)
CAPABILITY_COLUMNS = (("benign_refusal_pct", "benign refusal %", 1), ("nll", "NLL", 3))


def _capability(grid) -> list[tuple[str, str, int]]:
    return [c for c in CAPABILITY_COLUMNS if c[0] in grid.values and np.isfinite(grid.values[c[0]]).any()]


def curve_text(grid, n_default: int | None = None) -> str:
    """ASR along alpha as a bar chart in the terminal, with its 95% Wilson interval (plus the
    incoherent share and, for a scan with ``--capability``, the benign refusal rate and the NLL)."""
    asr, inc = grid.values["asr_pct"], grid.values.get("incoherent_pct")
    lo, hi = grid_intervals(grid, n_default)
    nd = axis_decimals(grid.alphas)
    extra = _capability(grid)
    head = "".join(f"  {h:>{max(len(h), 7)}}" for _, h, _ in extra)
    lines = [f"{'alpha':>8}  {'ASR %':>6}  {'95% CI':>14}  {'incoh %':>7}{head}"]
    for k, a in enumerate(grid.alphas):
        v = asr[k]
        bar = "" if not np.isfinite(v) else "█" * int(round(v / 100 * BAR))
        inc_v = inc[k] if inc is not None else np.nan
        ci = f"[{lo[k]:.1f}, {hi[k]:.1f}]" if np.isfinite(lo[k]) else "—"
        cells = "".join(f"  {_fmt(grid.values[f][k], d):>{max(len(h), 7)}}" for f, h, d in extra)
        lines.append(
            f"{format_coordinate(a, nd):>8}  {_fmt(v, 1):>6}  {ci:>14}  {_fmt(inc_v, 1):>7}{cells}  {bar}"
        )
    return "\n".join(lines)


def grid_text(grid) -> str:
    """A 2D ASR grid: rows alpha, columns beta (then the capability grids, when measured)."""
    na, nb = axis_decimals(grid.alphas), axis_decimals(grid.betas)
    blocks = []
    for field, name, d in (("asr_pct", "ASR %", 1), *_capability(grid)):
        values = grid.values[field]
        lines = [
            f"{name} (rows: alpha, columns: beta)",
            " " * 8 + "".join(f"{format_coordinate(b, nb):>8}" for b in grid.betas),
        ]
        for i, a in enumerate(grid.alphas):
            lines.append(f"{format_coordinate(a, na):>8}" + "".join(f"{_fmt(v, d):>8}" for v in values[i]))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def landscape_text(grid, n_default: int | None = None) -> str:
    """A 1D scan as a curve (with Wilson intervals), a 2D scan as a grid."""
    return curve_text(grid, n_default) if grid.betas is None else grid_text(grid)


def interval_line(ci: VisageInterval | None, what: str = "VISAGE (paper)") -> str:
    """The bootstrap interval of a VISAGE, with how it was drawn (so it can be reproduced)."""
    if ci is None:
        return f"{what} 95% interval: — (needs every point's per-prompt verdicts)"
    return f"{what} {ci.visage:.2f}, {interval_phrase(ci)}"


def origin_text(summary: dict) -> str:
    """The ASR at θ₀ as shown everywhere: "0.0%", or "not sampled" when θ₀ is not a grid point."""
    if summary.get("origin_sampled") is False:
        return "not sampled (θ₀ not on the grid)"
    return f"{_fmt(summary.get('asr_origin_pct'), 1)}%"


def halfwidth_side(summary: dict, key: str) -> str:
    """One side of a basin half-width as every view prints it: ``−0.050``, ``+0.133``, ``0`` (at
    θ₀ already) or ``not reached``."""
    v = summary.get(key)
    if v is None:
        return "not reached"
    if round(v, 3) == 0:
        return "0"  # already at θ₀ (no signed zero)
    return f"{'−' if key.endswith('_neg') else '+'}{_fmt(v, 3)}"


def halfwidth_pair(summary: dict, axis: str, level: int) -> str | None:
    """``−0.050 / +0.133``: both sides of the basin along ``axis`` at ASR ≥ ``level``% (50 or 100),
    the note when θ₀ is not sampled, None when the summary has no widths for ``axis``."""
    if f"halfwidth100_{axis}_pos" not in summary:
        return None
    note = summary.get(f"halfwidth_{axis}_note")
    if note and note.startswith("not sampled"):
        return note
    return " / ".join(halfwidth_side(summary, f"halfwidth{level}_{axis}_{d}") for d in ("neg", "pos"))


def halfwidth_text(summary: dict, axis: str) -> str | None:
    """One axis' basin half-widths, or None when the summary has none for ``axis``."""
    if f"halfwidth100_{axis}_pos" not in summary:
        return None
    note = summary.get(f"halfwidth_{axis}_note")
    head = f"basin half-width along {axis} (from θ₀; crossings by linear interpolation of the ASR)"
    if note and note.startswith("not sampled"):
        return f"basin half-width along {axis}: {note}"

    text = (
        f"{head}: ASR ≥ 50% at {halfwidth_pair(summary, axis, 50)}, "
        f"ASR = 100% at {halfwidth_pair(summary, axis, 100)}"
    )
    if any(summary.get(f"halfwidth{t}_{axis}_{d}") is None for t in (50, 100) for d in ("neg", "pos")):
        text += " (not reached: not on this grid)"
    return text + (f" [{note}]" if note else "")


def summary_text(summary: dict) -> str:
    """VISAGE both ways, ASR at θ₀ and the basin half-widths of one scan."""
    if not summary.get("complete"):
        return "scan incomplete: rerun the same command to resume"
    lines = [
        f"VISAGE (paper): {_fmt(summary['visage'], 2)}   "
        f"VISAGE (reference 1D): {reference_text(summary)}   "
        f"ASR at θ₀: {origin_text(summary)}"
    ]
    lines += [t for axis in ("alpha", "beta") if (t := halfwidth_text(summary, axis))]
    return "\n".join(lines)


def family_visage(summaries: list[dict], ci: VisageInterval | None = None) -> str:
    """VISAGE mean ± std over K directions (the reference only over scans where it is defined), and
    the bootstrap interval over prompts of their mean when ``ci`` is given."""
    p = mean_std(s.get("visage") for s in summaries if s)
    refs = [s.get("visage_reference") for s in summaries if s]
    r = mean_std(v for v in refs if v is not None)
    line = f"over {p.n} directions: VISAGE (paper) {_fmt(p.mean, 2)} ± {_fmt(p.std, 2)}"
    if r.n:
        line += f", reference {_fmt(r.mean, 2)} ± {_fmt(r.std, 2)}"
        if r.n < len(refs):
            line += f" (over {r.n})"
    else:
        notes = sorted({s.get("visage_reference_note") for s in summaries if s} - {None})
        line += ", reference —" + (f" ({', '.join(notes)})" if notes else "")
    if ci is not None:
        line += f"; {interval_phrase(ci)}"
    return line


def read_asr_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """An ASR grid from a CSV: ``(alphas, betas or None, asr %)``.

    Two layouts: the table ``landscape export --out x.csv`` writes (a header with ``alpha``,
    ``asr_pct`` and, for 2D, ``beta``: one row per point, the grid's real coordinates; a point not
    in the file is NaN), or a bare grid of numbers, one row per alpha (its axes are then grid
    indices centred on the middle row and column)."""
    if not path.is_file():
        raise SpecError(f"CSV file not found: {path}")
    rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
    if not rows:
        raise SpecError(f"{path.name} is empty")
    header = [c.strip() for c in rows[0]]
    if "asr_pct" in header or "alpha" in header:
        return _read_point_table(path.name, header, rows[1:])
    try:
        grid = (
            np.array([[float(v) for v in row] for row in rows]) if len({len(r) for r in rows}) == 1 else None
        )
    except ValueError:
        raise SpecError(
            f"{path.name} must hold only numbers (ASR %, one row per alpha) or be a table from "
            "`landscape export --out FILE.csv`"
        ) from None
    if grid is None:
        raise SpecError(f"{path.name} must be a rectangular grid of numbers")
    return tuple(np.arange(n, dtype=float) - n // 2 for n in grid.shape) + (grid,)


def _read_point_table(name: str, header: list[str], rows: list[list[str]]):
    missing = [c for c in ("alpha", "asr_pct") if c not in header]
    if missing:
        raise SpecError(f"{name}: a point table needs the column(s) {', '.join(missing)}")
    col = {c: header.index(c) for c in header}
    try:
        pts = [
            (
                float(r[col["alpha"]]),
                float(r[col["beta"]]) if "beta" in col else 0.0,
                float(r[col["asr_pct"]]),
            )
            for r in rows
        ]
    except (ValueError, IndexError):
        raise SpecError(f"{name}: alpha, beta and asr_pct must be numbers on every row") from None
    if not pts:
        raise SpecError(f"{name} has a header but no points")
    alphas = np.unique([p[0] for p in pts])
    betas = np.unique([p[1] for p in pts])
    grid = np.full((len(alphas), len(betas)), np.nan)
    for a, b, v in pts:
        grid[np.searchsorted(alphas, a), np.searchsorted(betas, b)] = v
    if len(betas) == 1:  # a 1D scan's table has beta = 0 on every row
        return alphas, None, grid[:, 0]
    return alphas, betas, grid


def visage_table(rows, as_json: bool) -> str:
    """VISAGE both ways for each (name, asr, summary[, bootstrap interval]) row; "—" and why where
    undefined. A row's interval is None for numbers given by hand (no per-prompt verdicts)."""
    out = []
    for name, asr, s, *rest in rows:
        ci = rest[0] if rest else None
        ref_ci = rest[1] if len(rest) > 1 and s.get("visage_reference") is not None else None
        asr = np.asarray(asr, dtype=float)
        finite = asr[np.isfinite(asr)]
        if ((finite < 0) | (finite > 100)).any():  # one check for --asr, --csv and stored scans
            raise SpecError(f"{name}: ASR values must lie in [0, 100]")
        out.append(
            {
                "source": name,
                "dims": asr.ndim,
                "complete": bool(s.get("complete")),
                "visage": s["visage"],
                "visage_reference": s["visage_reference"],
                "visage_reference_note": s["visage_reference_note"],
                "visage_ci": None if ci is None else ci._asdict(),
                "visage_reference_ci": None if ref_ci is None else ref_ci._asdict(),
            }
        )
    if as_json:
        return json.dumps(out, indent=2)
    lines = [
        f"{'source':<16} {'dims':>4} {'VISAGE (paper)':>15} {'95% CI':>16}  {'VISAGE (reference)':<20} 95% CI"
    ]
    labels = set()
    for r in out:
        paper = (
            _fmt(r["visage"], 2) if r["visage"] is not None else "—" if r["complete"] else "— (incomplete)"
        )
        cis = []
        for c in (r["visage_ci"], r["visage_reference_ci"]):
            cis.append("—" if c is None else interval_text((c["lo"], c["hi"]), 2))
            if c is not None:
                labels.add(interval_label(VisageInterval(**c)))
        lines.append(
            f"{r['source']:<16} {r['dims']:>4} {paper:>15} {cis[0]:>16}  {reference_text(r):<20} {cis[1]}"
        )
    if labels:
        lines.append("95% CI: " + "; ".join(sorted(labels)) + ' (docs: methods, "VISAGE intervals")')
    return "\n".join(lines)


def _derived_text(record: dict) -> str:
    """``  (rejudge of <source> with <judge>)`` for a derived scan, else ""."""
    d = record.get("derived")
    if not d:
        return ""
    return f"  (rejudge of {d['source'][:12]} with {d.get('judge', {}).get('name', '?')})"


def scan_list_text(scans: list[dict], root) -> str:
    """One line per stored scan: kind, model, grid, status, ASR at θ₀ and VISAGE both ways."""
    if not scans:
        return f"no scans in {root} yet: run `landscape demo` or `landscape scan 1d`"
    lines = [
        f"{'key':<12} {'kind':<13} {'model':<42} {'grid':<9} {'status':<13} {'ASR0':>5} {'VISAGE':>7} "
        f"{'95% CI':>14} {'created':<16}  VISAGE ref"
    ]
    for s in scans:
        spec = s.get("spec", {})
        grid = f"{len(s['alphas'])}" + (f"x{len(s['betas'])}" if s.get("betas") else "")
        status = (
            s["status"] if s["status"] == "complete" else f"{s['status']} {s['done']}/{s['total_points']}"
        )
        summ = s.get("summary") or {}  # the caller's (``engine.scan.listed_summary``)
        ci = s.get("visage_ci")  # the caller's bootstrap over prompts (a dict), or None
        model = model_name(spec.get("model") or {})
        model = model if len(model) <= 42 else model[:41] + "…"
        created = dt.datetime.fromtimestamp(s.get("created", 0)).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"{s['key'][:12]:<12} {record_kind(s):<13} {model:<42} {grid:<9} {status:<13} "
            f"{_fmt(summ.get('asr_origin_pct'), 1):>5} {_fmt(summ.get('visage'), 1):>7} "
            f"{interval_text((ci['lo'], ci['hi']) if ci else None) or '—':>14} {created:<16}  "
            + reference_text(summ, 1)
            + _derived_text(s)
        )
    return "\n".join(lines)


def scan_text(store, key: str, as_json: bool) -> str:
    """One stored scan: its record and spec, grid and summary (or all of it as JSON)."""
    record = store.scan_record(key)
    grid = store.scan_grid(key)
    summary = scan_summary(record, grid.values["asr_pct"])
    ci = visage_interval(store, [key]) if summary.get("complete") else None
    if as_json:
        lo, hi = grid_intervals(grid, record.get("n_prompts"))
        values = {k: np.where(np.isfinite(v), v, None).tolist() for k, v in grid.values.items()}
        values["asr_ci_lo_pct"], values["asr_ci_hi_pct"] = (
            np.where(np.isfinite(x), x, None).tolist() for x in (lo, hi)
        )
        visage_ci = None if ci is None else ci._asdict()
        out = dict(record, key=key, summary=summary, values=values, visage_ci=visage_ci)
        return json.dumps(out, indent=2, default=str)
    spec = json.dumps(record["spec"], indent=2).splitlines()
    lines = [
        f"scan {key}",
        f"kind: {record['kind']}  status: {record.get('status')}  points: {grid.done}/{record['total_points']}",
        f"version {record.get('version')}  commit {record.get('commit')}",
        "spec:\n" + "\n".join("  " + line for line in spec),
        landscape_text(grid, record.get("n_prompts")),
        summary_text(summary),
    ]
    if summary.get("complete"):
        lines.append(interval_line(ci))
    return "\n".join(lines)


def _coord(record: dict, axis: str, value: float) -> str:
    """A point's coordinate with its axis' decimals (β = 0 on a 1D scan)."""
    return format_coordinate(value, axis_decimals(record.get(axis) or [value]))


def point_text(store, key: str, i: int, j: int, as_json: bool) -> str:
    metrics = store.point(key, i, j)
    if metrics is None:
        raise SpecError(f"point ({i}, {j}) of scan {key[:12]} is not computed")
    rows = store.point_responses(key, i, j) or []
    record = store.scan_record(key) or {}
    n_default = record.get("n_prompts")
    ci = point_interval(metrics, n_default)
    if as_json:
        interval = (
            None if ci is None else {"lo_pct": ci[0], "hi_pct": ci[1], "method": "wilson", "level": 0.95}
        )
        return json.dumps({"metrics": metrics, "asr_ci": interval, "responses": rows}, indent=2)
    ci_text = "" if ci is None else f" (95% Wilson interval {interval_text(ci)})"
    lines = [
        f"point ({i}, {j}) alpha={_coord(record, 'alphas', metrics['alpha'])} "
        f"beta={_coord(record, 'betas', metrics['beta'])}: ASR {metrics['asr_pct']:.1f}%"
        f"{ci_text}  incoherent {_fmt(metrics.get('incoherent_pct'), 1)}%"
    ]
    for r in rows:
        tag = {True: "REFUSED ", False: "COMPLIED"}.get(r["refused"], f"NO VERDICT ({r.get('apart')})")
        if r["incoherent"]:
            tag += " (incoherent: " + str(r["incoherent_reason"]) + ")"
        lines.append(f"\n[{tag}] {r['prompt']}\n  → {r['response']!r}\n  judge: {r['reason']}")
    return "\n".join(lines)


def rate_text(pct: float | None, n: int | None) -> str:
    """A rate with what it is measured over: ``10.0% (5/50) [5.2, 20.8]``, the bracket its 95%
    Wilson interval; "—" without a rate."""
    counts = None if pct is None else point_counts({"asr_pct": pct, "n_prompts": n})
    if counts is None:
        return "—"
    k, n = counts
    return f"{pct:.1f}% ({k}/{n}) {interval_text(wilson(k, n))}"


def evaluate_models(
    store,
    runtime,
    log,
    sources: list[str],
    harmful: str,
    limit: int,
    benign_limit: int | None = None,
    max_new_tokens: int = 48,
) -> str:
    """ASR on ``harmful`` and over-refusal on the built-in benign set, for each model (cached); the
    first ``limit`` prompts of each set (``benign_limit`` for the benign one when given). Every
    rate says its count over how many prompts, with its 95% Wilson interval, and the footer says
    the decoding budget."""
    from landscape.core.specs import ModelSpec, PromptSpec, point_spec
    from landscape.engine.scan import scan_grid

    benign_limit = limit if benign_limit is None else benign_limit
    cols = (f"ASR on {Path(harmful).name[:20]}", "benign refusal (over-refusal)", "incoherent (harmful set)")
    lines = [f"{'model':<40} {cols[0]:>30} {cols[1]:>30} {cols[2]:>30}"]
    for src in sources:
        row = []
        for prompts in (
            PromptSpec(source=harmful, limit=limit),
            PromptSpec(source="builtin:benign", limit=benign_limit),
        ):
            spec = point_spec(ModelSpec(source=src), prompts, max_new_tokens)
            res = scan_grid(spec, store, runtime, log=log)
            row.append(store.point(res.key, 0, 0))
        name = src if len(src) <= 40 else "…" + src[-39:]
        h, b = row
        cells = (
            rate_text(h["asr_pct"], h.get("n_prompts")),
            rate_text(b["refusal_pct"], b.get("n_prompts")),
            rate_text(h["incoherent_pct"], h.get("n_prompts")),
        )
        lines.append(f"{name:<40} {cells[0]:>30} {cells[1]:>30} {cells[2]:>30}")
    lines.append(
        f"(k/n) prompts, [95% Wilson interval]; greedy, ≤ {max_new_tokens} new tokens, paper keyword "
        "judge; benign refusal is the share of harmless prompts refused"
    )
    return "\n".join(lines)
