"""1D landscape: ASR vs alpha, several scans overlaid, mean ± band over K directions."""

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.common import (
    default_scan,
    metric_row,
    open_inspector,
    pick_scans,
    scans_or_stop,
    selected_point,
)
from landscape.core.format import format_number
from landscape.core.stats import BOOTSTRAP_B, BOOTSTRAP_SEED
from landscape.core.uncertainty import visage_interval_text
from landscape.core.visage import mean_std
from landscape.figures.plots import build_curve_figure

st.title("1D safety landscape")
df = scans_or_stop(("1d", "interpolation"))
df = df[~df["grid"].str.contains("×")]
shared = st.session_state.get("selected_scan")
default = [shared] if shared in df["key"].tolist() else [default_scan(df)]
chosen = pick_scans(df, "Scans to overlay", "curve_scans", default)
group = st.toggle("Average scans that differ only in their random seed (mean ± std)", value=True)
if not chosen:
    st.info("Pick at least one scan.")
    st.stop()
complete = set(df.loc[df["status"] == "complete", "key"])
curves, members = [], []  # members: the scan keys behind each curve
if group:
    fam = df.set_index("key").loc[chosen, "family"]
    fam = fam.fillna(pd.Series(fam.index, index=fam.index))  # no family recorded: a family of one
    for family, keys_ in fam.groupby(fam).groups.items():
        keys_ = list(keys_)
        pool = df[df["family"] == family]["key"].tolist() if len(keys_) == 1 else keys_
        pool = pool or keys_
        # only complete members are averaged: a cancelled scan's missing points are no measurement
        done = [k for k in pool if k in complete]
        left_out = len(pool) - len(done)
        row = df[df["key"] == keys_[0]].iloc[0]
        name = f"{row['model']} · {row['system prompt']}"
        if len(done) > 1:
            if left_out:
                name += f" ({left_out} incomplete left out)"
            curves.append(data.family_curve(done, name))
        else:
            curves.append(data.curve_for(keys_[0], name))
        members.append(curves[-1].extra.get("keys", [keys_[0]]))
else:
    for k in chosen:
        row = df[df["key"] == k].iloc[0]
        curves.append(data.curve_for(k, f"{k[:8]} · {row['model']} · {row['system prompt']}"))
        members.append([k])
fig = build_curve_figure(curves, selectable=True)
event = st.plotly_chart(fig, width="stretch", key="curve_chart", on_select="rerun", selection_mode="points")
picked = selected_point(event)
if picked is not None and picked[1] < len(members):
    # a point of a mean opens the mean: every direction's point side by side
    open_inspector(members[picked[1]][0], picked[0], 0, family=members[picked[1]])
st.caption("Click a point of an ASR curve to inspect its prompts and responses.")
vis_rows = []
for c, keys in zip(curves, members, strict=True):
    vis = mean_std(data.summary(k).get("visage") for k in keys)
    ci = data.visage_ci(keys)
    vis_rows.append(
        {
            "curve": c.name,
            "directions": len(keys),
            "VISAGE (paper)": format_number(vis.mean, 2) + (f" ± {vis.std:.2f}" if vis.n > 1 else ""),
            "95% CI": visage_interval_text(ci),
        }
    )
st.dataframe(pd.DataFrame(vis_rows), hide_index=True, key="curve_visage")
st.caption(
    "Light band: 95% Wilson interval of each point's ASR (a family's: pooled over its directions). "
    "VISAGE: mean ± std over the directions; its 95% interval is the bounds bootstrap over prompts "
    f"(B = {BOOTSTRAP_B}, seed {BOOTSTRAP_SEED}; the same prompts resampled at every point and across "
    "a family's directions), from the lowest VISAGE the verdicts allow (every point seen at 100% counted "
    "inside the basin) to the paper estimator's upper quantile."
)
rec = data.record(chosen[0])
over = None
if rec and len(members[0]) > 1:  # the table's VISAGE is the family's mean: these are one member's
    seed = ((rec.get("spec") or {}).get("directions") or [{}])[0].get("seed")
    over = f"scan {chosen[0][:8]} alone" + (f" (seed {seed})" if seed is not None else "")
    st.caption(
        f"Metrics below: scan {chosen[0][:12]} alone (one of the {len(members[0])} directions averaged above)."
    )
if rec:
    metric_row(chosen[0], rec, over)
    st.caption(
        "Dotted lines: share of incoherent responses (a broken model's output counts as attack success "
        "for the paper's judge). Dashed: benign over-refusal; dash-dot: reference NLL (right axis)."
    )
