"""Attack-strength figures: a sweep's harmful score against the swept field per defence, and a
worst-case search's best-so-far trace. Pure ``build_*_figure(...) -> go.Figure`` like ``plots``;
the dashboard's Attack strength page draws them."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from landscape.core.format import format_setting
from landscape.figures.plots import FONT, PALETTE, _axis_title, _band

# lines that coincide (two defences at the same score) stay told apart in print and in grey
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x")


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[k : k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def log_axis(values) -> bool:
    """A swept field spanning a factor of 10 or more in positive numbers reads on a log axis."""
    values = list(values)
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return len(nums) == len(values) and bool(nums) and min(nums) > 0 and max(nums) / min(nums) >= 10


def bands_said(seeds: int, metric: str = "harmful") -> str:
    """What a sweep's bands are: Wilson's interval with one seed; with several, the mean over seeds
    with the clustered Wilson interval (harmful score) or each item counted once (task accuracy)."""
    if seeds <= 1:
        return "95% Wilson bands"
    kind = "clustered Wilson" if metric == "harmful" else "Wilson, each item once"
    return f"mean of {seeds} seeds, 95% {kind} bands"


def build_sweep_figure(
    cells: list[dict], field: str, metric: str = "harmful", title: str | None = None, seeds: int = 1
) -> go.Figure:
    """``metric`` ('harmful' or 'task') against ``field`` for each run of ``cells`` (already
    filtered to one value of every other swept field): a line per run with its 95% band
    (``bands_said``: Wilson, or over ``seeds`` seeds the clustered interval). Each point's customdata
    is its index in ``cells``, so a click selects a cell."""
    label = {"harmful": "harmful score %", "task": "task accuracy %"}[metric]
    runs = list(dict.fromkeys(c["run"] for c in cells))
    xs = list(dict.fromkeys(c["values"][field] for c in cells))
    categorical = any(isinstance(x, str) for x in xs)
    fig = go.Figure()
    for k, run in enumerate(runs):
        color = PALETTE[k % len(PALETTE)]
        mine = [(i, c) for i, c in enumerate(cells) if c["run"] == run]
        if not categorical:
            mine.sort(key=lambda ic: ic[1]["values"][field])
        x = [c["values"][field] for _, c in mine]
        lo = [c[f"{metric}_lo"] for _, c in mine]
        hi = [c[f"{metric}_hi"] for _, c in mine]
        if all(v is not None for v in lo + hi):
            band = _band(x, np.asarray(lo, float), np.asarray(hi, float), color, 0.15, f"{run} 95% CI")
            fig.add_trace(band.update(legendgroup=run))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[c[f"{metric}_pct"] for _, c in mine],
                mode="lines+markers",
                name=f"{run} ({', '.join(mine[0][1]['defenses']) or 'no defence'})",
                legendgroup=run,
                line={"color": color, "width": 2, "dash": DASHES[k % len(DASHES)]},
                marker={"size": 8, "symbol": SYMBOLS[k % len(SYMBOLS)]},
                customdata=[[i, c[f"{metric}_k"], c[f"{metric}_n"]] for i, c in mine],
                hovertemplate=f"{run}<br>{field} %{{x}}<br>{label} %{{y:.1f}} (%{{customdata[1]}}/%{{customdata[2]}})<extra></extra>",
            )
        )
    fig.update_layout(
        title={
            "text": title or f"{label[0].upper()}{label[1:]} against {field} ({bands_said(seeds, metric)})"
        },
        xaxis={
            **_axis_title(field),
            "type": "category" if categorical else ("log" if log_axis(xs) else "linear"),
            **(
                {}
                if categorical
                else {"tickvals": sorted(xs), "ticktext": [format_setting(x) for x in sorted(xs)]}
            ),
        },
        yaxis={**_axis_title(label), "range": [-2, 102]},
        font={"family": FONT},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 60, "r": 20, "t": 60, "b": 100},
    )
    return fig


def build_search_figure(searches: list[dict]) -> go.Figure:
    """Each searched run's trials (harmful score, with Wilson error bars; hollow when below the task
    floor) and its best-so-far trace, each run its own dash and symbol (two defences that both hold
    at 0% would otherwise draw one line). A point's customdata is (search index, trial number)."""
    fig = go.Figure()
    for k, s in enumerate(searches):
        color = PALETTE[k % len(PALETTE)]
        trials = s["trials"]
        n = [t["number"] for t in trials]
        floor = s["search"].get("task_floor")
        ok = [floor is None or (t["task_pct"] is not None and t["task_pct"] >= floor) for t in trials]
        fig.add_trace(
            go.Scatter(
                x=n,
                y=s["best_so_far"],
                mode="lines",
                line={"color": color, "width": 2, "shape": "hv", "dash": DASHES[k % len(DASHES)]},
                name=f"{s['run']}: worst so far",
                legendgroup=s["run"],
            )
        )
        fig.add_trace(
            go.Scatter(
                x=n,
                y=[t["harmful_pct"] for t in trials],
                mode="markers",
                name=f"{s['run']}: trials",
                legendgroup=s["run"],
                marker={  # runs whose trials coincide stay apart by symbol, as the sweep's lines
                    "color": [color if f else "white" for f in ok],
                    "line": {"color": color, "width": 1.5},
                    "size": 9,
                    "symbol": SYMBOLS[k % len(SYMBOLS)],
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [t["harmful_hi"] - t["harmful_pct"] for t in trials],
                    "arrayminus": [t["harmful_pct"] - t["harmful_lo"] for t in trials],
                    "color": _rgba(color, 0.5),
                },
                customdata=[[k, t["number"], _settings(t["values"]), t["task_pct"]] for t in trials],
                hovertemplate="trial %{x}: %{customdata[2]}<br>harmful %{y:.1f}%, task %{customdata[3]:.1f}%<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": "Worst-case search: each trial's harmful score and the worst so far"},
        xaxis={**_axis_title("trial"), "dtick": 1},
        yaxis={**_axis_title("harmful score %"), "range": [-2, 102]},
        font={"family": FONT},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 60, "r": 20, "t": 60, "b": 100},
    )
    return fig


def _settings(values: dict) -> str:
    return ", ".join(f"{k}={format_setting(v, 3)}" for k, v in values.items())


def sweep_view(sweep: dict, field: str | None) -> tuple[str, list[dict], dict]:
    """(the field along the x axis, its cells, the other fields' values they are fixed at: each at
    its first listed value)."""
    from landscape.figures import ExportError

    fields = sweep["fields"]
    field = field or fields[0]
    if field not in fields:
        raise ExportError(f"the sweep varies {', '.join(fields)}, not {field!r}")
    fixed = {f: sweep["cells"][0]["values"][f] for f in fields if f != field}
    cells = [c for c in sweep["cells"] if all(c["values"][f] == v for f, v in fixed.items())]
    return field, cells, fixed


def export_sweep(
    store, study: str, field: str | None, fmt: str, out, preset: str = "double-column", show_title=None
):
    """Write a study's sweep as a figure (PDF/SVG/PNG/HTML: harmful score against ``field`` per
    defence with Wilson bands) or its cells as CSV/JSON; returns (path, caption)."""
    import json
    from pathlib import Path

    import pandas as pd

    from landscape.figures import ExportError
    from landscape.figures.export import figure_bytes
    from landscape.figures.figure1 import find_study

    record = find_study(store, study)
    sweep = record.get("sweep")
    if not sweep:
        raise ExportError(f"study {record['name']!r} has no sweep (a sweep: block)")
    field, cells, fixed = sweep_view(sweep, field)
    seeds = sweep.get("seeds") or [0]
    out = Path(out or f"study-{record['name']}-sweep-{field}.{fmt}")
    rows = [
        {
            "run": c["run"],
            "defences": ", ".join(c["defenses"]) or "none",
            **c["values"],
            **{f"{m}_{x}": c[f"{m}_{x}"] for m in ("harmful", "task") for x in ("pct", "k", "n", "lo", "hi")},
            "finetune_key": c["finetune_key"],
        }
        for c in sweep["cells"]
    ]
    if fmt == "csv":
        out.write_text(pd.DataFrame(rows).to_csv(index=False))
    elif fmt == "json":
        out.write_text(
            json.dumps(
                {"study": record["key"] if "key" in record else record["name"], "sweep": rows}, indent=2
            )
        )
    else:
        figure = build_sweep_figure(cells, field, seeds=len(seeds))
        out.write_bytes(figure_bytes(figure, fmt, preset, show_title))
    others = "; ".join(f"{f} = {format_setting(v)}" for f, v in fixed.items())
    n = sorted({c["harmful_n"] // len(seeds) for c in cells if c["harmful_n"]})
    prompts = "/".join(map(str, n))
    said = (
        f"bands: 95% Wilson intervals over {prompts} prompts; seed {seeds[0]}."
        if len(seeds) == 1
        else f"mean over seeds {', '.join(map(str, seeds))}; bands: 95% clustered Wilson intervals "
        f"over {prompts} prompts (a prompt's verdicts under every seed one unit)."
    )
    caption = (
        f"Harmful score against {field} per defence, study {record['name']}"
        + (f" ({others})" if others else "")
        + f"; {said}"
    )
    return out, caption
