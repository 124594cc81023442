"""Point inspector: every prompt, response and verdict behind one grid point."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import commands, data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.common import INSPECT, pick_scan, scans_or_stop
from landscape.core.specs import ScanSpec
from landscape.core.uncertainty import interval_text, point_interval

st.title("Point inspector")
df = scans_or_stop()
target = st.session_state.pop(INSPECT, None)  # a point clicked on a chart (or a full-responses scan)
if target is not None and target["key"] in df["key"].tolist():
    st.session_state["selected_scan"] = target["key"]
    st.session_state.pop("inspector_scan", None)  # the picker starts from selected_scan
    st.session_state["insp_i"], st.session_state["insp_j"] = target["i"], target["j"]
key = pick_scan(df, "Scan", "inspector_scan")
alphas, betas, values = data.grid(key)
done = np.isfinite(values["asr_pct"])
if not done.any():
    st.info("No point of this scan is computed yet.")
    st.stop()
c1, c2 = st.columns(2)


def index_slider(where, label: str, axis, key: str) -> int:
    """A slider over the axis' grid indices; starts at the value nearest 0 unless a point was opened."""
    options = list(range(len(axis)))
    if st.session_state.get(key) not in options:  # none yet, or another scan's index
        st.session_state[key] = int(np.argmin(np.abs(axis)))
    return where.select_slider(label, options=options, format_func=lambda k: f"{axis[k]:.4g}", key=key)


i = index_slider(c1, "α", alphas, "insp_i")
j = 0 if betas is None else index_slider(c2, "β", betas, "insp_j")
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


def launch_full_responses(
    source: str, spec: ScanSpec, point: tuple[float, float | None], tokens: int
) -> None:
    """Start the one-point full-responses scan (or attach to it); remember it for the status below."""
    settings = data.settings()
    models = [spec.model.source, spec.judge.model, *(d.target.source for d in spec.directions if d.target)]
    problem = next((p for p in (settings.model_allowed(m) for m in models if m) if p), None)
    if problem:
        st.error(problem)
        return
    try:
        job, args = jobs.submit_point(
            data.store(), source, spec, point, tokens, settings.max_jobs, current_user(), settings.job_history
        )
    except Exception as exc:  # one line for the user, whatever the flags or the store said
        st.error(f"Could not start the scan: {commands.one_line(exc)}")
        return
    st.session_state["insp_full_job"] = job.key
    st.session_state["insp_full_args"] = args


@st.fragment(run_every=2)
def full_responses_status() -> None:
    """The point job's command, state and log; once its scan is complete, a button to inspect it."""
    key = st.session_state.get("insp_full_job")
    if not key:
        return
    store = data.store()
    st.code("landscape " + " ".join(st.session_state.get("insp_full_args", [])), language="bash")
    rec = data.record(key) or {}
    running = jobs.job_for(store, key) is not None
    if rec.get("status") == "complete":
        st.success(f"Full responses ready: scan {key[:12]}.")
        if st.button("Inspect the full responses", key="insp_full_open", type="primary"):
            st.session_state[INSPECT] = {"key": key, "i": 0, "j": 0}
            st.rerun(scope="app")
    else:
        st.caption(
            f"scan {key[:12]}: " + ("running…" if running else "stopped before it finished; see its log")
        )
        st.code(jobs.log_tail(store, key, lines=6) or "(no output yet)")


if may_launch(data.settings())[0]:  # read-only, or an account that may not launch: no button
    st.subheader("Full responses here")
    spec = ScanSpec.model_validate((data.record(key) or {})["spec"])
    f1, f2 = st.columns([1, 3])
    tokens = f1.number_input("Max new tokens", 1, 4096, commands.FULL_TOKENS, key="insp_full_tokens")
    f2.caption(
        "A one-point scan of this scan's spec at exactly this (α, β): every response runs to the token "
        "budget (no early stop), to read what the model actually says here."
    )
    if st.button("Generate full responses here", key="insp_full_start"):
        launch_full_responses(
            key, spec, (float(alphas[i]), None if betas is None else float(betas[j])), int(tokens)
        )
    full_responses_status()
