"""Overview: every scan in the store, filterable; selecting a row opens it."""

import streamlit as st

from dashboard import data
from dashboard.common import scans_or_stop
from landscape.core.uncertainty import interval_phrase

st.title("Safety Landscape")
st.caption("Safety basins around aligned language models (Peng et al., NeurIPS 2024).")
df = scans_or_stop()

with st.expander("Filters", expanded=False):
    c1, c2, c3 = st.columns(3)
    kinds = c1.multiselect("kind", sorted(df["kind"].dropna().unique()))
    models = c2.multiselect("model", sorted(df["model"].dropna().unique()))
    status = c3.multiselect("status", sorted(df["status"].dropna().unique()))
view = df
if kinds:
    view = view[view["kind"].isin(kinds)]
if models:
    view = view[view["model"].isin(models)]
if status:
    view = view[view["status"].isin(status)]

st.write(f"{len(view)} of {len(df)} scans")
columns = [
    "key",
    "model",
    "kind",
    "directions",
    "grid",
    "range",
    "prompts",
    "system prompt",
    "judge",
    "status",
    "done %",
    "ASR θ₀ %",
    "VISAGE",
    "VISAGE ref",
    "half-width 100%",
    "created",
]
event = st.dataframe(
    view[columns].assign(key=view["key"].str[:12]),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="overview_table",
    column_config={
        "done %": st.column_config.ProgressColumn("done", min_value=0, max_value=100, format="%.0f%%"),
        "VISAGE": st.column_config.NumberColumn(format="%.2f"),
        "VISAGE ref": st.column_config.TextColumn(
            help="The released code's 1D safety_avg; — (why) where undefined"
        ),
        "ASR θ₀ %": st.column_config.NumberColumn(format="%.1f"),
    },
)
rows = event.selection.rows if event is not None else []
if rows:
    picked = view.iloc[rows[0]]
    st.session_state["selected_scan"] = picked["key"]
    target = {"2d": "basin", "interpolation": "curve" if picked["grid"].isdigit() else "basin"}.get(
        picked["kind"], "curve"
    )
    ci = data.visage_ci([picked["key"]]) if picked["status"] == "complete" else None
    st.success(
        f"Selected {picked['key'][:12]} ({picked['kind']})."
        + (f" VISAGE {ci.visage:.2f}, {interval_phrase(ci)}." if ci is not None else "")
    )
    st.page_link(
        f"views/{'basin' if target == 'basin' else 'curve'}.py",
        label=f"Open in the {'2D basin' if target == 'basin' else '1D landscape'} page →",
    )
