"""Run a scan: build a spec, start it as a separate process, watch it fill in, cancel it."""

import time

import numpy as np
import streamlit as st

from dashboard import data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.figures import Curve, build_contour_figure, build_curve_figure
from landscape.core.specs import (
    SYSTEM_PRESETS,
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    ScanSpec,
    second_seed,
)

st.title("Run a scan")
settings = data.settings()
allowed, why = may_launch(settings)
if not allowed:
    st.info(why)
    st.stop()
store = data.store()

with st.form("scan_form"):
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", settings.models_available(), key="run_model")
    custom = c1.text_input("…or a model path under the allowed roots", key="run_model_path")
    kind = c2.selectbox("Kind", ["1d", "2d"], key="run_kind")
    norm = c2.selectbox("Normalisation", ["layer", "filter", "none"], key="run_norm")
    seed = c3.number_input("Seed", 0, 10_000, 0, key="run_seed")
    r1, r2, r3 = st.columns(3)
    half = r1.number_input("Range ± (α and β)", 0.001, 10.0, 0.2, format="%.3f", key="run_half")
    points = r2.number_input("Points per axis", 1, 41, 7, step=2, key="run_points")
    limit = r3.number_input("Prompts (first N)", 1, 500, 16, key="run_limit")
    p1, p2, p3 = st.columns(3)
    prompts = p1.selectbox("Prompt set", ["builtin:harmful", "builtin:benign"], key="run_prompts")
    system = p2.selectbox("System prompt", list(SYSTEM_PRESETS), key="run_system")
    judge = p3.selectbox("Judge", ["keywords", "prefix"], key="run_judge")
    max_tokens = st.slider("Max new tokens", 4, 128, 24, key="run_tokens")
    submitted = st.form_submit_button("Start scan")

if submitted:
    source = custom.strip() or model
    problem = settings.model_allowed(source)
    if problem:
        st.error(problem)
    else:
        axis = AxisSpec(start=-half, stop=half, num=int(points))
        dirs = (DirectionSpec(seed=int(seed), norm=norm),)
        if kind == "2d":
            dirs += (DirectionSpec(seed=second_seed(int(seed)), norm=norm),)
        try:
            spec = ScanSpec(
                model=ModelSpec(source=source),
                directions=dirs,
                alphas=axis,
                betas=axis if kind == "2d" else None,
                prompts=PromptSpec(source=prompts, limit=int(limit)),
                system_prompt=system,
                judge=JudgeSpec(name=judge),
                generation=GenerationSpec(max_new_tokens=int(max_tokens)),
            )
            job = jobs.submit(spec, store, settings.max_jobs, current_user())
            st.session_state["run_job"] = job.key
            st.success(
                ("Attached to the running job" if job.attached else "Started job")
                + f" for scan {job.key[:12]}."
            )
        except Exception as exc:  # one line for the user, whatever the spec or launcher said
            st.error(f"Could not start the scan: {str(exc).splitlines()[0]}")


@st.fragment(run_every=2)
def progress():
    key = st.session_state.get("run_job")
    running = jobs.running_jobs(store)
    if not key and not running:
        st.caption("No scan running.")
        return
    key = key or running[0].key
    rec = store.scan_record(key)
    job = jobs.job_for(store, key)
    if rec is None:
        st.write("Starting…")
        return
    alphas, betas, values = data.grid(key)
    done, total = int(np.isfinite(values["asr_pct"]).sum()), rec["total_points"]
    st.progress(
        done / total, text=f"scan {key[:12]}: {done}/{total} points" + (" · running" if job else " · stopped")
    )
    if job is not None:
        age = max(1e-6, time.time() - job.started)
        if done:
            st.caption(f"ETA ≈ {age / done * (total - done):.0f} s (from this job's pace)")
        if st.button("Cancel", key="run_cancel"):
            jobs.cancel(store, key)
            st.rerun()
        st.code(jobs.log_tail(store, key) or "(no output yet)")
    if betas is None:
        st.plotly_chart(
            build_curve_figure([Curve(name=key[:8], alphas=alphas, asr=values["asr_pct"])]),
            width="stretch",
            key="run_curve",
        )
    else:
        st.plotly_chart(
            build_contour_figure(alphas, betas, values["asr_pct"]), width="stretch", key="run_contour"
        )


progress()
