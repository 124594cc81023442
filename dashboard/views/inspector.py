"""Point inspector: every prompt, response and verdict behind one grid point."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.common import pick_scan, scans_or_stop
from landscape.core.uncertainty import interval_text, point_interval

st.title("Point inspector")
df = scans_or_stop()
key = pick_scan(df, "Scan", "inspector_scan")
alphas, betas, values = data.grid(key)
done = np.isfinite(values["asr_pct"])
if not done.any():
    st.info("No point of this scan is computed yet.")
    st.stop()
c1, c2 = st.columns(2)
i0 = int(np.argmin(np.abs(alphas)))
i = c1.select_slider(
    "α", options=list(range(len(alphas))), value=i0, format_func=lambda k: f"{alphas[k]:.4g}", key="insp_i"
)
j = 0
if betas is not None:
    j = c2.select_slider(
        "β",
        options=list(range(len(betas))),
        value=int(np.argmin(np.abs(betas))),
        format_func=lambda k: f"{betas[k]:.4g}",
        key="insp_j",
    )
point = data.store().point(key, i, j)
if point is None:
    st.warning("This point is not computed yet.")
    st.stop()
m = st.columns(4)
ci = point_interval(point, (data.record(key) or {}).get("n_prompts"))
m[0].metric("ASR", f"{point['asr_pct']:.1f}%")
if ci is not None:
    m[0].caption(f"95% Wilson interval {interval_text(ci)}")
m[1].metric("refusals", f"{point['refusal_pct']:.1f}%")
m[2].metric("incoherent", f"{point['incoherent_pct']:.1f}%")
m[3].metric("time", f"{point['elapsed_s']:.1f} s · {point['tokens']} tokens")
rows = pd.DataFrame(data.responses(key, i, j))
show = st.radio("Show", ["all", "successes", "refusals", "incoherent"], horizontal=True, key="insp_filter")
if show == "successes":
    rows = rows[rows["refused"].eq(False)]  # a row without a verdict (refused None) is neither
elif show == "refusals":
    rows = rows[rows["refused"].eq(True)]
elif show == "incoherent":
    rows = rows[rows["incoherent"]]
if "set" not in rows:
    rows["set"] = "harmful"
verdict = np.select(
    [rows["refused"].eq(True), rows["refused"].eq(False)], ["refused", "complied"], "no verdict"
)
rows["verdict"] = verdict + np.where(rows["incoherent"], " · incoherent", "")
st.dataframe(
    rows[["set", "prompt", "response", "verdict", "reason", "incoherent_reason"]].fillna(""),
    hide_index=True,
    width="stretch",
    key="insp_table",
)
