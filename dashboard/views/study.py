"""Study: the before/after comparison of a `landscape study` — table, bars, landscapes, trajectories."""

import streamlit as st

from dashboard import data
from landscape.figures.plots import build_curve_figure, build_study_figure, build_trajectory_figure
from landscape.study.claims import claims_markdown

st.title("Study: attacks and defences")
st.caption(
    "Each row is one model of the protocol: aligned → fine-tuned (attack) → defended. Harmful score "
    "is measured in the user's own format; VISAGE and basin width come from 1D landscapes around each model."
)
records = data.studies()
if not records:
    st.info("No study in the store yet. Run one: `landscape study --preset demo` (or a YAML file).")
    st.stop()
names = {r["key"]: f"{r['name']} · {r['key'][:8]} · {r.get('status', '?')}" for r in records}
key = st.selectbox("Study", list(names), format_func=names.get, key="study_pick")
record = next(r for r in records if r["key"] == key)

stages = record.get("stages", {})
done = sum(s["status"] == "done" for s in stages.values())
if record.get("status") != "complete":
    running = [n for n, s in stages.items() if s["status"] == "running"]
    st.progress(
        min(done / max(len(stages) + 1, 1), 1.0),
        text=f"running: {', '.join(running) or '…'} ({done} stages done)",
    )
    st.dataframe(
        [{"stage": n, **{k: v for k, v in s.items() if k != "at"}} for n, s in stages.items()],
        hide_index=True,
        key="study_stages",
    )
    st.stop()

frame = data.study_frame(record)
st.dataframe(frame, hide_index=True, width="stretch", key="study_table")
claims = claims_markdown(record)
if claims:
    st.markdown("\n".join(claims))
c1, c2 = st.columns(2)
c1.download_button("Table as CSV", frame.to_csv(index=False), f"study-{record['name']}.csv", "text/csv")
c2.caption(f"{len(frame)} models · {record.get('elapsed_s', 0) / 60:.1f} min · key {record['key'][:12]}")
for b in record.get("format_baselines", []):
    st.caption(
        f"Before, in the {b['structure']} format: {b['model']} scores {b['harmful_score_pct']:.1f}% harmful "
        "(runs in that format are measured in it)."
    )
st.plotly_chart(build_study_figure(record["models"]), width="stretch", key="study_bars")

st.subheader("Landscapes side by side")
models = {m["name"]: m for m in record["models"]}
picked = st.multiselect("Models", list(models), default=list(models)[:3], key="study_models")
curves = []
for name in picked:
    keys = models[name].get("visage_keys") or []
    if keys:
        curves.append(data.family_curve(keys, name) if len(keys) > 1 else data.curve_for(keys[0], name))
if curves:
    st.plotly_chart(
        build_curve_figure(curves, "1D safety landscapes around each model"),
        width="stretch",
        key="study_curves",
    )
else:
    st.info("Pick models to draw their 1D landscapes.")

for k, traj in enumerate(record.get("trajectories", [])):
    st.subheader(f"Trajectories on the {traj['plane']} plane")
    alphas, betas, values = data.grid(traj["scan_key"])
    fig = build_trajectory_figure(
        alphas, betas, values["asr_pct"], traj["paths"], traj["plane"], title=", ".join(traj["runs"])
    )
    st.plotly_chart(fig, width="stretch", key=f"study_traj_{k}")
    if traj.get("explained_variance"):
        ev = traj["explained_variance"]
        st.caption(
            f"PC 1 and PC 2 explain {100 * ev[0]:.0f}% and {100 * ev[1]:.0f}% of the checkpoints' spread."
        )
