"""Overview: every scan in the store, filterable; selecting a row opens it."""

import streamlit as st

from dashboard import data
from dashboard.common import scans_or_stop
from landscape.core.format import format_number
from landscape.core.uncertainty import interval_phrase
from landscape.figures.plots import Curve, build_contour_figure, build_curve_figure


def front_picture(df):
    """The newest complete basin, small: a 2D contour if there is one, else a 1D curve."""
    done = df[(df["status"] == "complete") & df["kind"].isin(["1d", "2d", "interpolation"])]
    if done.empty:
        return None
    two = done[done["grid"].str.contains("×")]
    row = (two if not two.empty else done).iloc[0]
    alphas, betas, values = data.grid(row["key"])
    visage = format_number(row["VISAGE"], 2)
    what = f"Newest basin: scan {row['key'][:12]} ({row['model']}, {row['kind']} {row['grid']}), VISAGE {visage}."
    if betas is not None:
        fig = build_contour_figure(alphas, betas, values["asr_pct"], title="")
    else:
        fig = build_curve_figure([Curve(name=row["model"], alphas=alphas, asr=values["asr_pct"])], title="")
    fig.update_layout(height=260, margin={"l": 40, "r": 10, "t": 10, "b": 40}, showlegend=False)
    return fig, what


st.title("Safety Landscape")
st.caption("Safety basins around aligned language models (Peng et al., NeurIPS 2024).")
df = scans_or_stop()
newest = front_picture(df)
if newest is not None:
    fig, what = newest
    pic, words = st.columns([2, 3])
    pic.plotly_chart(fig, width="stretch", key="overview_picture", config={"displayModeBar": False})
    words.markdown(
        "Each scan perturbs a model's weights along random (or fine-tuning) directions and measures "
        "the attack success rate (ASR) on harmful prompts at every point. Inside the **safety basin** "
        "the model still refuses; **VISAGE** scores how deep and wide that basin is."
    )
    words.caption(what)

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
# what a researcher came for first (VISAGE, the ASR at θ₀, the basin's width), then what it is
columns = [
    "key",
    "VISAGE",
    "ASR θ₀ %",
    "half-width 100%",
    "VISAGE ref",
    "status",
    "kind",
    "model",
    "grid",
    "range",
    "directions",
    "prompts",
    "system prompt",
    "judge",
    "done %",
    "created",
]
# shown as the CLI shows them (VISAGE 2 decimals, ASR 1), "—" where there is none (Streamlit
# draws a missing number as "None")
shown = view[columns].assign(
    key=view["key"].str[:12],
    VISAGE=view["VISAGE"].map(lambda v: format_number(v, 2)),
    **{"ASR θ₀ %": view["ASR θ₀ %"].map(lambda v: format_number(v, 1))},
)
shown = shown.fillna({c: "—" for c in ("half-width 100%", "VISAGE ref", "system prompt")})
event = st.dataframe(
    shown,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="overview_table",
    column_config={
        "done %": st.column_config.ProgressColumn("done", min_value=0, max_value=100, format="%.0f%%"),
        "VISAGE ref": st.column_config.TextColumn(
            help="The released code's 1D safety_avg; — (why) where undefined"
        ),
        "half-width 100%": st.column_config.TextColumn(
            help="Along α from θ₀, both sides (−/+), where the ASR first reaches 100% (as `landscape show` prints it)"
        ),
    },
)
rows = event.selection.rows if event is not None else []
if rows:
    picked = view.iloc[rows[0]]
    st.session_state["selected_scan"] = picked["key"]
    if picked["kind"] in ("eval", "point"):
        page, where = "inspector", "point inspector"  # one point: its responses, no landscape
    elif picked["kind"] == "2d" or (picked["kind"] == "interpolation" and "×" in picked["grid"]):
        page, where = "basin", "2D basin"
    else:
        page, where = "curve", "1D landscape"
    ci = data.visage_ci([picked["key"]]) if picked["status"] == "complete" else None
    st.success(
        f"Selected {picked['key'][:12]} ({picked['kind']})."
        + (f" VISAGE {ci.visage:.2f}, {interval_phrase(ci)}." if ci is not None else "")
    )
    st.page_link(f"views/{page}.py", label=f"Open in the {where} page →")
