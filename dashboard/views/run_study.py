"""Run a study: a built-in preset or an uploaded YAML, validated before anything starts, as a job.

The upload is read with ``yaml.safe_load`` and validated as a ``StudySpec`` (size-limited); a bad
file is one error line and nothing is launched. The job is ``landscape study jobs/<key>.yaml``;
its stages come from the study record (``study:<key>``) as the pipeline writes them.
"""

import streamlit as st

from dashboard import commands, data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.common import live_fragment, my_jobs, start_job
from landscape.study.pipeline import PRESET_MINUTES, PRESETS, load_study, parse_study, preset_duration

MAX_UPLOAD_BYTES = 64 * 1024

st.title("Run a study")
settings = data.settings()
allowed, why = may_launch(settings)
if not allowed:
    st.info(why)
    st.stop()
store = data.store()

source = st.radio("Study", ["preset", "upload"], horizontal=True, key="study_source")
long = False
dtype = st.selectbox("dtype (when the study does not set one)", ["float32", "bfloat16"], key="study_dtype")
spec, problem = None, None
try:
    if source == "preset":
        preset = st.selectbox("Preset", PRESETS, key="study_preset")
        st.caption(f"Duration: {preset_duration(preset)}.")
        long = (PRESET_MINUTES.get(preset) or (61, 61))[1] > 60
        spec = load_study(preset=preset, default_dtype=dtype)
    else:
        upload = st.file_uploader("Study YAML (≤ 64 KB)", type=["yaml", "yml"], key="study_upload")
        if upload is not None:
            raw = upload.getvalue()
            if len(raw) > MAX_UPLOAD_BYTES:
                problem = f"the study file is {len(raw):,} bytes; the limit is {MAX_UPLOAD_BYTES:,}"
            else:
                spec = parse_study(raw.decode("utf-8", errors="replace"), default_dtype=dtype)
except Exception as exc:  # SpecError or pydantic's ValidationError: one line, nothing launched
    problem = commands.one_line(exc)
if spec is not None:  # every path the study names (adapters, attack data, ...), not just its base
    problem = next(filter(None, map(settings.model_allowed, commands.spec_paths(spec))), None)
    st.caption(
        f"{spec.name}: {len(spec.runs)} runs ({', '.join(r.name for r in spec.runs)}), "
        f"base {spec.base.source}, {'aligned first' if spec.align else 'no alignment'}"
    )

confirmed = True
if source == "preset" and spec is not None and problem is None and long:
    confirmed = st.checkbox("This study runs for over an hour: start it anyway", key="study_confirm")
if st.button(
    "Start study",
    key="study_start",
    type="primary",
    disabled=(spec is None and problem is None) or not confirmed,
):
    if problem or spec is None:
        st.error(problem or "choose a study first")
    else:
        start_job(
            "study",
            "study_job",
            lambda: jobs.submit_study(spec, store, settings.max_jobs, current_user(), settings.job_history),
        )
elif problem:
    st.error(problem)


def progress():
    key = st.session_state.get("study_job")
    if not key:
        st.caption("No study started from this session.")
        return
    rec = store.get_json(f"study:{key}") or {}
    stages = rec.get("stages") or {}
    done = sum(s.get("status") == "done" for s in stages.values())
    st.progress(
        min(done / max(len(stages), 1), 1.0),
        text=f"study {key[:12]}: {done} stages done · {rec.get('status', 'starting…')}",
    )
    if stages:
        st.dataframe(
            [{"stage": n, "status": s.get("status")} for n, s in stages.items()],
            hide_index=True,
            key="study_run_stages",
        )


live_fragment(progress, lambda: jobs.job_for(store, st.session_state.get("study_job") or "") is not None)
my_jobs(store, "study")
