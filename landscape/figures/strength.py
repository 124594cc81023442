"""Attack-strength figures: a sweep's harmful score against the swept field per defence, and a
worst-case search's best-so-far trace. Pure ``build_*_figure(...) -> go.Figure`` like ``plots``;
the dashboard's Attack strength page draws them."""

from __future__ import annotations

import plotly.graph_objects as go

from landscape.figures.plots import FONT, PALETTE, _axis_title


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[k : k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def log_axis(values) -> bool:
    """A swept field spanning more than a factor of 10 in positive numbers reads on a log axis."""
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return len(nums) == len(list(values)) and bool(nums) and min(nums) > 0 and max(nums) / min(nums) > 10


def build_sweep_figure(
    cells: list[dict], field: str, metric: str = "harmful", title: str | None = None
) -> go.Figure:
    """``metric`` ('harmful' or 'task') against ``field`` for each run of ``cells`` (already
    filtered to one value of every other swept field): a line per run with its 95% Wilson band.
    Each point's customdata is its index in ``cells``, so a click selects a cell."""
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
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=hi + lo[::-1],
                    fill="toself",
                    fillcolor=_rgba(color, 0.15),
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=run,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[c[f"{metric}_pct"] for _, c in mine],
                mode="lines+markers",
                name=f"{run} ({', '.join(mine[0][1]['defenses']) or 'no defence'})",
                legendgroup=run,
                line={"color": color, "width": 2},
                marker={"size": 8},
                customdata=[[i, c[f"{metric}_k"], c[f"{metric}_n"]] for i, c in mine],
                hovertemplate=f"{run}<br>{field} %{{x}}<br>{label} %{{y:.1f}} (%{{customdata[1]}}/%{{customdata[2]}})<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title or f"{label[0].upper()}{label[1:]} against {field} (95% Wilson bands)"},
        xaxis={
            **_axis_title(field),
            "type": "category" if categorical else ("log" if log_axis(xs) else "linear"),
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
    floor) and its best-so-far trace. A point's customdata is (search index, trial number)."""
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
                line={"color": color, "width": 2, "shape": "hv"},
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
                marker={
                    "color": [color if f else "white" for f in ok],
                    "line": {"color": color, "width": 1.5},
                    "size": 9,
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
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
