"""The study's comparison table: one schema for the markdown the CLI prints and the dashboard's table.

``COLUMNS`` names each column once, with how to read it from a model's row of the study record;
``study_rows`` gives plain values (the dashboard makes a DataFrame of them, passing its own VISAGE
reader so scans recomputed since are shown), ``study_markdown`` formats them for papers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from landscape.core.format import format_number as _f
from landscape.study.claims import claims_markdown
from landscape.study.specs import EvalSpec


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[dict], object]
    numeric: bool = True
    digits: int = 1

    def text(self, value) -> str:
        if not self.numeric:
            return str(value)
        if isinstance(value, tuple):  # (mean, std, n): VISAGE over K directions
            mean, std, n = value
            return _f(mean, self.digits) + (f" ± {std:.{self.digits}f}" if n > 1 else "")
        return _f(value, self.digits)


def _stored_visage(m: dict):
    return (m.get("visage"), m.get("visage_std"), m.get("visage_n", 0))


def _seeded(name: str) -> Callable[[dict], object]:
    """A field as stored, or (mean, std, seeds) when the row averages several seeds."""

    def get(m: dict):
        n = len(m.get("per_seed") or [])
        return (m.get(name), m.get(f"{name}_sd"), n) if n > 1 else m.get(name)

    return get


def _visage_ci(m: dict) -> str:
    """The stored interval; one drawn by another method than today's default (an older record's
    percentile interval) says which."""
    ci = m.get("visage_ci")
    if not ci:
        return "—"
    method = ci.get("method", "percentile")
    return f"[{ci['lo']:.1f}, {ci['hi']:.1f}]" + ("" if method == "bounds" else f" ({method})")


COLUMNS = (
    Column("model", lambda m: m["name"], numeric=False),
    Column("attack", lambda m: m.get("attack") or "—", numeric=False),
    Column("defences", lambda m: ", ".join(m.get("defenses") or []) or "—", numeric=False),
    Column("harmful score %", _seeded("harmful_score_pct")),
    Column("ASR (default fmt) %", _seeded("asr_default_pct")),
    Column("task acc %", _seeded("task_accuracy_pct")),
    Column("benign refusal %", _seeded("benign_refusal_pct")),
    Column("VISAGE", _stored_visage),
    Column("VISAGE 95% CI", _visage_ci, numeric=False),
    Column("basin width (50%)", _seeded("basin_width50"), digits=3),
)


def study_rows(record: dict, visage: Callable[[list[str]], tuple] | None = None) -> list[dict]:
    """``{header: value}`` per model; ``visage(keys) -> (mean, std, n)`` overrides the stored one."""
    rows = []
    for m in record.get("models", []):
        row = {c.header: c.get(m) for c in COLUMNS}
        if visage is not None:
            row["VISAGE"] = visage(m.get("visage_keys") or [])
        rows.append(row)
    return rows


def defense_notes(m: dict) -> list[str]:
    """Each defence's one-line account of what it did to this model (from ``defense_details``)."""
    from landscape.training.defenses import DEFENSES

    out = []
    for name, details in (m.get("defense_details") or {}).items():
        line = DEFENSES[name].summary(details) if name in DEFENSES and details else None
        if line:
            out.append(line)
    return out


def study_markdown(record: dict) -> str:
    """The comparison table as GitHub markdown (the CLI prints it; papers paste it)."""
    rows = study_rows(record)
    lines = [f"### Study `{record['name']}`", "", "| " + " | ".join(c.header for c in COLUMNS) + " |"]
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.text(row[c.header]) for c in COLUMNS) + " |")
    notes = [f"- {m['name']}: {line}" for m in record.get("models", []) for line in defense_notes(m)]
    for b in record.get("format_baselines", []):
        notes.append(
            f"- {b['model']} in the {b['structure']} format (the before of runs in that format): "
            f"harmful score {_f(b['harmful_score_pct'])}%"
        )
    for t in record.get("trajectories", []):
        for run, path in t["paths"].items():
            pts = ", ".join(
                f"e{p['epoch']}: ({p['alpha']:.2f}, {p['beta']:.2f}) ASR {_f(p['asr_pct'], 0)}%" for p in path
            )
            notes.append(f"- trajectory {run} on the {t['plane']} plane: {pts}")
    ev = record.get("spec", {}).get("evaluation")
    if ev is not None:  # 32 prompts cannot tell 60% from 70%: say how far a share can move by chance
        ev = EvalSpec(**ev)
        half = [196 * (0.25 / n) ** 0.5 for n in (ev.harmful_limit, ev.task_limit)]
        notes.append(
            f"- sampling error: harmful score and ASR are shares of {ev.harmful_limit} prompts, task accuracy "
            f"of {ev.task_limit} items; near 50% a 95% binomial interval is ±{half[0]:.0f} / ±{half[1]:.0f} points"
        )
    if record.get("seeds"):
        notes.append(
            f"- seeds {', '.join(map(str, record['seeds']))}: each run's numbers are mean ± std over its "
            "seeds (VISAGE's ± too); the θ₀ row is measured once"
        )
    notes.append(
        "- VISAGE 95% CI: bounds bootstrap over prompts (B = 1000, seed 0), resampled jointly across a row's "
        "scans (directions and seeds): from the lowest VISAGE the verdicts allow (every point seen at 100% "
        "counted inside the basin) to the paper estimator's upper quantile; it covers the population VISAGE "
        'in simulation where the plain percentile interval does not (docs: methods, "VISAGE intervals")'
    )
    if record.get("elapsed_s") is not None:
        runs = record.get("invocations", 1)
        notes.append(
            f"- study time: {record['elapsed_s'] / 60:.1f} min"
            + (f" over {runs} invocations (resumes and replays add up)" if runs > 1 else "")
        )
    claims = claims_markdown(record)
    attacks = []  # the sweep's and the searches' tables
    if record.get("sweep"):
        from landscape.study.sweep import sweep_markdown

        fields = ", ".join(record["sweep"]["fields"])
        seeds = record["sweep"].get("seeds") or [0]
        said = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over seeds {', '.join(map(str, seeds))}"
        attacks = ["", f"#### Sweep over {fields} ({said}; harmful score in each run's own format)", ""]
        attacks.append(sweep_markdown(record["sweep"]))
    if record.get("searches"):
        from landscape.study.search import search_markdown

        s = record["spec"]["search"]
        floor = "" if s["task_floor"] is None else f", task accuracy ≥ {s['task_floor']:g}%"
        attacks += ["", f"#### Worst-case search ({s['trials']} trials a run, seed {s['seed']}{floor})", ""]
        attacks.append(search_markdown(record["searches"]))
    return "\n".join(lines + ([""] + notes if notes else []) + ([""] + claims if claims else []) + attacks)
