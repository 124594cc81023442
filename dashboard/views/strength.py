"""Attack strength: how each defence holds as the attacker's settings grow (a study's sweep) and
the worst case a search found within its budget; click a cell or trial to open its model."""

import streamlit as st

from dashboard import data
from landscape.core.format import format_setting
from landscape.figures.strength import build_search_figure, build_sweep_figure

st.title("Attack strength: defences against the attacker's settings")
st.caption(
    "A defence is worth what it holds against the attacker's best settings, not one run. A sweep "
    "crosses fine-tuning settings with a study's defences; a search looks for the worst attack "
    "within a budget. Bands and bars are 95% Wilson intervals of each cell's prompts (with several "
    "seeds, the clustered interval, as each figure's title says)."
)
sweeps = [r for r in data.studies() if r.get("sweep")]
searches = data.searches()
if not sweeps and not searches:
    st.info(
        "No sweep or search in the store yet. Run one: `landscape study --preset tiny-sweep` "
        "(a sweep: block) or `landscape attack-search --preset tiny-search` (a search: block)."
    )
    st.stop()


def open_model(cell: dict, what: str) -> None:
    """A picked cell's or trial's model: its numbers, and its evaluation and landscape on their pages."""
    st.success(
        f"{what}: {cell['run']} at "
        + ", ".join(f"{k}={format_setting(v)}" for k, v in cell["values"].items())
        + f" — harmful {cell['harmful_pct']:.1f}% ({cell['harmful_k']}/{cell['harmful_n']}), "
        f"task {cell['task_pct']:.1f}% · fine-tune {cell['finetune_key'][:12]}"
    )
    st.session_state["selected_scan"] = cell["eval_keys"][-1]
    c1, c2 = st.columns(2)
    c1.page_link("views/inspector.py", label="Its harmful-prompt answers in the point inspector →")
    keys = cell.get("visage_keys") or []
    if keys:
        if c2.button("Its 1D landscape →", key=f"open_curve_{what}"):
            st.session_state["selected_scan"] = keys[0]
            st.switch_page("views/curve.py")


st.header("Sweeps")
if not sweeps:
    st.info("No study with a sweep: block yet (`landscape study --preset tiny-sweep`).")
else:
    names = {r["key"]: f"{r['name']} · {r['key'][:8]}" for r in sweeps}
    key = st.selectbox("Study", list(names), format_func=names.get, key="strength_study")
    sweep = next(r for r in sweeps if r["key"] == key)["sweep"]
    fields = sweep["fields"]
    c1, c2 = st.columns(2)
    field = c1.selectbox("Along", fields, key="strength_field")
    metric = c2.radio(
        "Measure",
        ["harmful", "task"],
        format_func={"harmful": "harmful score", "task": "task accuracy"}.get,
        horizontal=True,
        key="strength_metric",
    )
    fixed = {}
    others = [f for f in fields if f != field]
    if others:
        cols = st.columns(len(others))
        for col, other in zip(cols, others, strict=True):
            values = list(dict.fromkeys(c["values"][other] for c in sweep["cells"]))
            fixed[other] = col.selectbox(f"{other} at", values, key=f"strength_fix_{other}")
    cells = [c for c in sweep["cells"] if all(c["values"][f] == v for f, v in fixed.items())]
    seeds = sweep.get("seeds") or [0]
    if len(seeds) > 1:
        st.caption(
            f"Each cell is the mean over seeds {', '.join(map(str, seeds))} (k/n pooled); a click "
            f"opens seed {seeds[0]}'s model. Docs: methods, Claim tests."
        )
    event = st.plotly_chart(
        build_sweep_figure(cells, field, metric, seeds=len(seeds)),
        width="stretch",
        key="strength_sweep",
        on_select="rerun",
        selection_mode="points",
    )
    points = event.selection.points if event is not None else []
    picked = [p for p in points if p.get("customdata")]
    if picked:
        open_model(cells[int(picked[0]["customdata"][0])], "Cell")
    else:
        st.caption("Click a point to open that cell's model.")

st.header("Worst-case searches")
if not searches:
    st.info("No search yet (`landscape attack-search --preset tiny-search`).")
else:
    labels = {
        r["key"]: f"{r['study']} · {r['run']} · {len(r['trials'])}/{r['search']['trials']} trials"
        for r in searches
    }
    chosen = st.multiselect(
        "Searches", list(labels), default=list(labels)[:4], format_func=labels.get, key="strength_searches"
    )
    shown = [r for r in searches if r["key"] in chosen]
    if shown:
        st.dataframe(
            [
                {
                    "run": r["run"],
                    "defences": ", ".join(r.get("defenses") or []) or "none",
                    "trials": len(r["trials"]),
                    "worst harmful %": (r["worst_found"] or {}).get("harmful_pct"),
                    "found at trial": (r["worst_found"] or {}).get("number"),
                    "VISAGE of the worst": (r.get("worst") or {}).get("visage"),
                    "‖θ−θ₀‖/‖θ₀‖": (r.get("worst") or {}).get("relative_distance"),
                    "below floor: worst %": (r.get("kept_out") or {}).get("harmful_pct"),
                    "below floor: task %": (r.get("kept_out") or {}).get("task_pct"),
                }
                for r in shown
            ],
            hide_index=True,
            key="strength_search_table",
        )
        event = st.plotly_chart(
            build_search_figure(shown),
            width="stretch",
            key="strength_trace",
            on_select="rerun",
            selection_mode="points",
        )
        points = event.selection.points if event is not None else []
        picked = [p for p in points if p.get("customdata")]
        if picked:
            k, number = int(picked[0]["customdata"][0]), int(picked[0]["customdata"][1])
            open_model(next(t for t in shown[k]["trials"] if t["number"] == number), "Trial")
        else:
            st.caption("Click a trial to open its model. Hollow markers are below the task floor.")
