"""2D basin: the paper's Figure 1 look — 3D surface and contour with the basin edge."""

import streamlit as st

from dashboard import data
from dashboard.common import (
    metric_row,
    open_inspector,
    pick_scan,
    scans_or_stop,
    selected_point,
    url_adopt,
    url_keep,
)
from landscape.figures.plots import build_contour_figure, build_surface_figure

st.title("2D safety basin")
df = scans_or_stop(("2d", "interpolation"))
df = df[df["grid"].str.contains("×")]
if df.empty:
    st.info("No 2D scans yet: `landscape scan 2d` or the demo fills this page.")
    st.stop()
key = pick_scan(df, "Scan", "basin_scan")
rec = data.record(key)
alphas, betas, values = data.grid(key)
visage = data.summary(key).get("visage")
edges = range(5, 101, 5)
url_adopt("edge", "basin_threshold", lambda v: v in edges, 50, lambda t: int(t) if t.isdigit() else None)
threshold = st.slider("Basin edge at ASR (%)", 5, 100, step=5, key="basin_threshold")
url_keep("edge", "basin_threshold", threshold, 50)
left, right = st.columns(2)
with left:
    st.plotly_chart(
        build_surface_figure(alphas, betas, values["asr_pct"], visage=visage), width="stretch", key="surface"
    )
with right:
    contour = build_contour_figure(
        alphas, betas, values["asr_pct"], threshold=threshold, visage=visage, selectable=True
    )
    event = st.plotly_chart(
        contour, width="stretch", key="contour", on_select="rerun", selection_mode="points"
    )
    st.caption("Click a grid point of the contour to inspect its prompts and responses.")
picked = selected_point(event)
if picked is not None:
    open_inspector(key, *picked)
metric_row(key, rec)
if rec.get("status") != "complete":
    st.caption(
        f"{int((values['asr_pct'] == values['asr_pct']).sum())} of {rec['total_points']} points computed; the figures fill in as the scan runs."
    )
