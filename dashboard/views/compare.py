"""Compare: two or more scans on one colour scale, their difference, and a metrics table."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.common import pick_scans, scans_or_stop
from landscape.core.format import format_number
from landscape.core.prompts import prompt_set
from landscape.core.visage import POINT_KINDS, reference_text
from landscape.figures.plots import Curve, build_contour_figure, build_curve_figure, build_difference_figure
from landscape.study.report import halfwidth_pair


def comparable_pair(df) -> list[str]:
    """The newest two scans that can be compared: same kind and grid shape, same prompt set, not
    single points; else the newest two scans of any kind (the page explains why they differ)."""
    basins = df[~df["kind"].isin(POINT_KINDS)]
    for _, row in basins.iterrows():
        same = basins[
            (basins["kind"] == row["kind"])
            & (basins["grid"] == row["grid"])
            & (basins["prompts"] == row["prompts"])
        ]
        if len(same) >= 2:
            return same["key"].tolist()[:2]
    return (basins if len(basins) >= 2 else df)["key"].tolist()[:2]


st.title("Compare scans")
st.caption(
    "Before/after a defence, aligned vs fine-tuned, or system-prompt presets: one shared colour scale."
)
df = scans_or_stop()
labels = {r["key"]: data.label(r) for _, r in df.iterrows()}
chosen = pick_scans(df, "Scans (first is the reference)", "compare_scans", comparable_pair(df))
if len(chosen) < 2:
    st.info("Pick two or more scans to compare.")
    st.stop()
grids = {k: data.grid(k) for k in chosen}
records = {k: data.record(k) or {} for k in chosen}


def compatible(a, b) -> str | None:
    (a_al, a_be, _), (b_al, b_be, _) = grids[a], grids[b]
    if prompt_set(records[a]) != prompt_set(records[b]):
        return "one asks the built-in benign set (its rate is the share answered), the other harmful prompts"
    if (a_be is None) != (b_be is None):
        return "one is 1D and the other 2D"
    if len(a_al) != len(b_al) or not np.allclose(a_al, b_al):
        return f"their alpha axes differ ([{a_al[0]:g}, {a_al[-1]:g}] × {len(a_al)} vs [{b_al[0]:g}, {b_al[-1]:g}] × {len(b_al)})"
    if a_be is not None and (len(a_be) != len(b_be) or not np.allclose(a_be, b_be)):
        return "their beta axes differ"
    return None


def _widths(s: dict, thr: int) -> str:
    """ "−0.050 / +0.133" along α from θ₀, as the CLI prints it; "—" where there is none."""
    return (halfwidth_pair(s, "alpha", thr) if s.get("complete") else None) or "—"


ref = chosen[0]
table = []
for k in chosen:
    s = data.summary(k)
    table.append(
        {
            "scan": labels[k],
            "ASR at θ₀ %": "not sampled"
            if s.get("origin_sampled") is False
            else format_number(s.get("asr_origin_pct"), 1),
            "VISAGE": format_number(s.get("visage"), 2),
            "VISAGE ref": reference_text(s) if s.get("complete") else "—",
            "half-width 50% (−/+)": _widths(s, 50),
            "half-width 100% (−/+)": _widths(s, 100),
        }
    )
st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="compare_table")

two_d = [k for k in chosen if grids[k][1] is not None]
if len(two_d) == len(chosen):
    cols = st.columns(len(chosen))
    for col, k in zip(cols, chosen, strict=True):
        al, be, vals = grids[k]
        col.plotly_chart(
            build_contour_figure(al, be, vals["asr_pct"], title=labels[k], zmin=0, zmax=100),
            width="stretch",
            key=f"cmp_{k}",
        )
elif not two_d:
    curves = [
        Curve(
            name=labels[k],
            alphas=grids[k][0],
            asr=grids[k][2]["asr_pct"],
            # on the benign set a "success" is an answer (over-refusal is its complement), not an ASR
            metric="answered (benign set)" if prompt_set(records[k]) == "benign" else "ASR",
        )
        for k in chosen
    ]
    st.plotly_chart(build_curve_figure(curves, "1D landscapes"), width="stretch", key="cmp_curves")
else:
    st.warning("Mixing 1D and 2D scans: pick scans of one kind to draw them together.")
for k in chosen[1:]:
    why = compatible(ref, k)
    if why:
        st.warning(
            f"No difference map for {k[:8]} vs {ref[:8]}: {why}. Rescan on the same grid to compare point by point."
        )
        continue
    al, be, va = grids[ref]
    st.plotly_chart(
        build_difference_figure(al, be, va["asr_pct"], grids[k][2]["asr_pct"], ref[:8], k[:8]),
        width="stretch",
        key=f"diff_{k}",
    )

st.subheader("Judge agreement")
st.caption(
    "Two judges of the same responses (a scan and its `landscape rejudge`): Cohen's κ and the share "
    "they call differently, per point and pooled (last row). κ = 1 where both give one same label to "
    "every response; responses without a verdict from both (unparsed, cut) are counted apart."
)
shown = False
for k in chosen[1:]:
    table = data.agreement(ref, k)
    if isinstance(table, str):
        continue
    shown = True
    st.markdown(f"**{labels[ref]}** vs **{labels[k]}**")
    st.dataframe(table, hide_index=True, width="stretch", key=f"agree_{k}")
if not shown:
    st.info("No two of these scans judge the same responses: rejudge a scan to compare judges.")
