"""Export: paper-ready PNG/SVG/PDF at column widths, the data as CSV/JSON, interactive HTML."""

import streamlit as st

from dashboard import data
from dashboard.common import pick_scan, scans_or_stop
from dashboard.export import ExportError, figure_bytes, figure_for, table_for
from dashboard.figures import PAPER_PRESETS

st.title("Export figures")
df = scans_or_stop()
key = pick_scan(df, "Scan", "export_scan")
is_2d = data.record(key).get("betas") is not None
c1, c2, c3 = st.columns(3)
kind = c1.selectbox("Figure", ["surface", "contour"] if is_2d else ["curve"], key="export_kind")
preset = c2.selectbox(
    "Size",
    list(PAPER_PRESETS),
    index=1,
    key="export_preset",
    format_func=lambda p: f"{p} ({PAPER_PRESETS[p]['width_in']} in, {PAPER_PRESETS[p]['font_pt']} pt)",
)
fmt = c3.selectbox("Format", ["pdf", "svg", "png", "html"], key="export_format")
store = data.store()
fig = figure_for(store, key, kind)
st.plotly_chart(fig, width="stretch", key="export_preview")
if st.button("Render file", key="export_render"):
    try:
        with st.spinner("Rendering with headless Chromium…"):
            st.session_state["export_blob"] = (
                figure_bytes(fig, fmt, preset),
                f"{key[:12]}-{kind}-{preset}.{fmt}",
                fmt,
            )
    except ExportError as exc:
        st.error(str(exc))
if blob := st.session_state.get("export_blob"):
    mime = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png", "html": "text/html"}[
        blob[2]
    ]
    st.download_button(f"Download {blob[1]}", blob[0], file_name=blob[1], mime=mime, key="export_download")
st.subheader("Data")
table = table_for(store, key)
d1, d2 = st.columns(2)
d1.download_button(
    "CSV", table.to_csv(index=False), file_name=f"{key[:12]}.csv", mime="text/csv", key="export_csv"
)
d2.download_button(
    "JSON",
    table.to_json(orient="records", indent=2),
    file_name=f"{key[:12]}.json",
    mime="application/json",
    key="export_json",
)
st.caption("From a terminal: `landscape export KEY --kind contour --format pdf --preset single-column`.")
