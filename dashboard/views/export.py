"""Export: paper-ready PNG/SVG/PDF at column widths (labels editable, caption beside), the composed
Figure 1 of a scan or a study, the data as CSV/JSON, interactive HTML."""

import streamlit as st

from dashboard import data
from dashboard.common import keep, kept, pick_scan, scans_or_stop, scoped, url_widget
from landscape.figures import PAPER_PRESETS, ExportError
from landscape.figures.export import caption_for, figure_bytes, figure_for, table_for
from landscape.figures.paper import scan_label

MIME = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png", "html": "text/html"}

st.title("Export figures")
# a single point (an evaluation, the inspector's full responses) has no landscape to draw
df = scans_or_stop(("1d", "2d", "interpolation"))
key = pick_scan(df, "Scan", "export_scan")
record = data.record(key) or {}
is_2d = record.get("betas") is not None
c1, c2, c3 = st.columns(3)
figures = ["surface", "contour"] if is_2d else ["curve"]
kind = url_widget(c1.selectbox, "figure", "Figure", figures, figures[0], key=scoped("export_kind", is_2d))
preset = url_widget(
    c2.selectbox,
    "size",
    "Size",
    list(PAPER_PRESETS),
    list(PAPER_PRESETS)[1],
    key="export_preset",
    format_func=lambda p: f"{p} ({PAPER_PRESETS[p]['width_in']} in, {PAPER_PRESETS[p]['font_pt']} pt)",
)
fmt = url_widget(c3.selectbox, "format", "Format", ["pdf", "svg", "png", "html"], "pdf", key="export_format")
# Every text below belongs to this scan (its keys carry the scan's key): a label typed for one scan
# never reaches another's legend, and each scan keeps its own edits for the session.
defaults = {"curve": scan_label(record), "alpha": "α", "beta": "β", "asr": "ASR (%)"}
with st.expander("Labels and title"):
    l1, l2, l3, l4 = st.columns(4)
    labels = {
        "curve": l1.text_input(
            "Line label",
            defaults["curve"],
            key=scoped("export_label_curve", key),
            disabled=is_2d,
            persist_state="session",
        ),
        "alpha": l2.text_input("α axis", "α", key=scoped("export_label_alpha", key), persist_state="session"),
        "beta": l3.text_input(
            "β axis", "β", key=scoped("export_label_beta", key), disabled=not is_2d, persist_state="session"
        ),
        "asr": l4.text_input(
            "ASR axis / colour bar", "ASR (%)", key=scoped("export_label_asr", key), persist_state="session"
        ),
    }
    show_title = st.checkbox(
        "Title inside the figure (papers put it in the caption)", False, key="export_title"
    )
# Only what the user changed replaces the builder's texts (the curve's axis reads "α (perturbation …)").
labels = {k: v for k, v in labels.items() if v and v != defaults[k] and (k != "curve" or not is_2d)}
store = data.store()
fig = figure_for(store, key, kind, labels=labels)
st.plotly_chart(fig, width="stretch", key="export_preview")
# the interval from the page cache (re-drawn only when the scan moves), not 1,000 resamples a rerun
caption = caption_for(
    store, key, kind, ci=data.visage_ci([key]) if data.summary(key).get("complete") else None
)
st.text_area("Caption", caption, key=scoped("export_caption", key, kind), persist_state="session", height=90)
# the file on offer is the one made from exactly what is on screen, else none
selection = (key, kind, preset, fmt, tuple(sorted(labels.items())), show_title)
if st.button("Render file", key="export_render"):
    try:
        with st.spinner("Rendering with headless Chromium…"):
            name = f"{key[:12]}-{kind}-{preset}.{fmt}"
            keep("export_blob", selection, (figure_bytes(fig, fmt, preset, show_title or None), name, fmt))
    except ExportError as exc:
        st.error(str(exc))
if blob := kept("export_blob", selection):
    st.download_button(
        f"Download {blob[1]}", blob[0], file_name=blob[1], mime=MIME[blob[2]], key="export_download"
    )

st.subheader("Figure 1")
st.caption(
    "The paper's layout in one file: surface, contour with the basin edge and θ₀, the 1D curve with its "
    "Wilson band, VISAGE under each panel. A 2D scan gives all three (the curve is its β = 0 slice); a "
    "study gives one 1D panel per model."
)
studies = [r for r in data.studies() if any(m.get("visage_keys") for m in r.get("models", []))]
f1, f2, f3 = st.columns(3)
source = f1.selectbox("Of", ["this scan", *[f"study {r['name']}" for r in studies]], key="figure1_source")
f1_preset = f2.selectbox("Width", [p for p, v in PAPER_PRESETS.items() if v["print"]], key="figure1_preset")
f1_fmt = f3.selectbox("Format", ["pdf", "svg", "png"], key="figure1_format")
f1_selection = (key if source == "this scan" else source, f1_preset, f1_fmt, tuple(sorted(labels.items())))
if st.button("Render Figure 1", key="figure1_render"):
    from landscape.figures.figure1 import figure1_bytes

    study = source.removeprefix("study ") if source != "this scan" else None
    try:
        with st.spinner("Rendering with headless Chromium…"):
            blob, text, stem = figure1_bytes(
                store, None if study else key, study, f1_fmt, f1_preset, labels=labels if not study else None
            )
        keep("figure1_blob", f1_selection, (blob, f"{stem}-figure1-{f1_preset}.{f1_fmt}", f1_fmt, text))
    except ExportError as exc:
        st.error(str(exc))
if blob := kept("figure1_blob", f1_selection):
    st.text_area("Figure 1 caption", blob[3], key="figure1_caption", height=90)
    st.download_button(
        f"Download {blob[1]}", blob[0], file_name=blob[1], mime=MIME[blob[2]], key="figure1_download"
    )

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
st.caption(
    "From a terminal: `landscape export KEY --kind contour --format pdf --preset single-column "
    '--label alpha="α (random d₁)"`; `landscape export KEY --figure1`; `landscape export --study NAME --figure1`.'
)
