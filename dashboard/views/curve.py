"""1D landscape: ASR vs alpha, several scans overlaid, mean ± band over K directions."""

import streamlit as st

from dashboard import data
from dashboard.common import metric_row, scans_or_stop
from dashboard.figures import build_curve_figure

st.title("1D safety landscape")
df = scans_or_stop(("1d", "interpolation", "eval"))
df = df[~df["grid"].str.contains("×")]
labels = {r["key"]: data.label(r) for _, r in df.iterrows()}
default = st.session_state.get("selected_scan")
default = [default] if default in labels else df["key"].tolist()[:1]
chosen = st.multiselect(
    "Scans to overlay", list(labels), default=default, format_func=labels.get, key="curve_scans"
)
group = st.toggle("Average scans that differ only in their random seed (mean ± std)", value=True)
if not chosen:
    st.info("Pick at least one scan.")
    st.stop()
curves = []
if group:
    fam = df.set_index("key").loc[chosen, "family"]
    for family, keys in fam.groupby(fam).groups.items():
        keys = list(keys)
        siblings = df[df["family"] == family]["key"].tolist() if len(keys) == 1 else keys
        row = df[df["key"] == keys[0]].iloc[0]
        name = f"{row['model']} · {row['system prompt']}"
        curves.append(
            data.family_curve(siblings, name) if len(siblings) > 1 else data.curve_for(keys[0], name)
        )
else:
    for k in chosen:
        row = df[df["key"] == k].iloc[0]
        curves.append(data.curve_for(k, f"{k[:8]} · {row['model']} · {row['system prompt']}"))
fig = build_curve_figure(curves)
st.plotly_chart(fig, width="stretch", key="curve_chart")
rec = data.record(chosen[0])
if rec:
    metric_row(chosen[0], rec)
    st.caption(
        "Dotted lines: share of incoherent responses (a broken model's output counts as attack success "
        "for the paper's judge). Dashed: benign over-refusal; dash-dot: reference NLL (right axis)."
    )
