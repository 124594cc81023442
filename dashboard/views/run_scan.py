"""Run a scan: every ``landscape scan`` option as a widget, the exact command, its cost, then a job.

The widgets become the CLI's own flags (``dashboard.commands.scan_args``), parsed by the CLI's code
into the ScanSpec whose key is shown; the job runs that command line as a separate process.
"""

import time

import numpy as np
import streamlit as st

from dashboard import commands, data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.common import my_jobs, start_job
from dashboard.figures import Curve, build_contour_figure, build_curve_figure
from landscape.core.format import format_duration
from landscape.core.specs import SYSTEM_PRESETS
from landscape.engine.scan import prepare_scan

st.title("Run a scan")
settings = data.settings()
allowed, why = may_launch(settings)
if not allowed:
    st.info(why)
    st.stop()
store = data.store()
models = settings.models_available()
local = [m for m in models if m not in ("aligned", "smollm2-135m-instruct")]

kind = st.radio("Kind", ["1d", "2d", "interpolate"], horizontal=True, key="run_kind")
c1, c2, c3 = st.columns(3)
model = c1.selectbox("Model (θ₀, or θ_a of an interpolation)", models, key="run_model")
custom = c1.text_input("…or a model path under the allowed roots", key="run_model_path")
dtype = c1.selectbox("dtype", ["float32", "bfloat16"], key="run_dtype")
target = None
if kind == "interpolate":
    default_b = models.index("aligned") if model != "aligned" else 0
    target = c2.selectbox("θ_b (the model at α = 1)", models, index=default_b, key="run_target")
    a0 = c2.number_input("α from", -5.0, 5.0, -0.25, format="%.3f", key="run_from")
    a1 = c2.number_input("α to", -5.0, 5.0, 1.25, format="%.3f", key="run_to")
    seed, norm = 0, "layer"
else:
    norm = c2.selectbox("Normalisation", ["layer", "filter", "none"], key="run_norm")
    seed = c2.number_input("Seed", 0, 10_000, 0, key="run_seed")
    half = c2.number_input("Range ± (α and β)", 0.001, 10.0, 0.2, format="%.3f", key="run_half")
    a0, a1 = -half, half
points = c3.number_input("Points per axis", 1, 41, 7, step=2, key="run_points")
k = c3.number_input("Directions K (seeds seed…seed+K−1)", 1, 50, 1, key="run_k")
auto = c3.checkbox("Auto range (bisect for the basin edges)", key="run_auto", disabled=kind == "interpolate")

p1, p2, p3 = st.columns(3)
prompts = p1.selectbox("Prompt set", ["builtin:harmful", "builtin:benign"], key="run_prompts")
limit = p1.number_input("Prompts (first N)", 1, 500, 16, key="run_limit")
system = p2.selectbox("System prompt", list(SYSTEM_PRESETS), key="run_system")
tokens = p2.number_input("Max new tokens", 1, 4096, 32, key="run_tokens")
judge = p3.selectbox("Judge", ["keywords", "prefix", "guard", "classifier"], key="run_judge")
judge_model = label_map = None
if judge in ("guard", "classifier"):
    judge_model = p3.selectbox("Judge model (under the model roots)", local or ["(none found)"], key="run_jm")
    if judge == "classifier":
        label_map = p3.text_input("Label map", "LABEL_1=harmful,LABEL_0=safe", key="run_label_map") or None
full = st.checkbox(
    "Full responses (no early stop: every answer runs to max new tokens, so it can be rejudged)",
    key="run_full",
)
capability = st.checkbox("Capability (benign over-refusal and reference NLL)", key="run_capability")

source = custom.strip() or model
choice = commands.ScanChoice(
    kind=kind,
    model=source,
    target=target,
    dtype=dtype,
    seed=int(seed),
    norm=norm,
    directions=int(k),
    auto_range=bool(auto) and kind != "interpolate",
    alpha_range=(float(a0), float(a1)),
    points=int(points),
    prompts=prompts,
    limit=int(limit),
    system_prompt=system,
    judge=judge,
    judge_model=judge_model,
    label_map=label_map,
    max_new_tokens=int(tokens),
    full_responses=full,
    capability=capability,
)
problems = [settings.model_allowed(m) for m in (source, target, judge_model) if m]
problem = next((p for p in problems if p), None)
if judge_model == "(none found)":
    problem = "no judge model directory under the model roots"
args = commands.scan_args(choice) + settings.ray_args()  # the server's Ray cluster, when configured
st.code("landscape " + " ".join(args), language="bash")
parsed = None
if problem is None:
    try:
        parsed = commands.scan_spec(args)
        prep = prepare_scan(parsed.spec, store)
        est = commands.estimate(store, parsed, len(prep.prompts))
        line = f"scan {prep.key[:12]}: {est.points} points × {est.prompts} prompts × ≤{int(tokens)} tokens"
        line += f" = ≤{est.max_tokens:,} new tokens"
        if est.s_per_point is None:
            line += " · no timing history yet"
        else:
            line += (
                f" · about {format_duration(est.s_per_point * est.points)} "
                f"({est.s_per_point:.1f} s/point, median of {est.timed_points} timed points "
                f"in {est.timed_scans} completed scans)"
            )
        st.caption(
            line + (" · plus auto-range probes; the grid moves to the basin" if choice.auto_range else "")
        )
    except Exception as exc:  # one line for the user, whatever the flags or the store said
        problem = commands.one_line(exc)

if problem:  # said before Start, which stays disabled until the form describes a scan that can run
    st.error(problem)
if st.button("Start scan", key="run_start", type="primary", disabled=problem is not None):
    if not problem:
        start_job(
            "scan",
            "run_job",
            lambda: jobs.submit_scan(args, store, settings.max_jobs, current_user(), settings.job_history),
        )


@st.fragment(run_every=2)
def progress():
    running = [j for j in jobs.running_jobs(store) if j.kind == "scan"]
    key = st.session_state.get("run_job") or (running[0].key if running else None)
    if not key:
        st.caption("No scan running.")
        return
    job = next((j for j in jobs.all_jobs(store) if j.key == key), None)
    for n, scan_key in enumerate(job.scans if job else (key,)):
        rec = store.scan_record(scan_key)
        if rec is None:
            st.write(f"scan {scan_key[:12]}: starting…")
            continue
        alphas, betas, values = data.grid(scan_key)
        done, total = int(np.isfinite(values["asr_pct"]).sum()), rec["total_points"]
        state = " · running" if job and job.running else " · stopped"
        st.progress(done / total, text=f"scan {scan_key[:12]}: {done}/{total} points" + state)
        if job is not None and job.running and done:
            age = max(1e-6, time.time() - job.started)
            st.caption(f"ETA ≈ {age / done * (total - done):.0f} s (from this job's pace)")
        if betas is None:
            fig = build_curve_figure([Curve(name=scan_key[:8], alphas=alphas, asr=values["asr_pct"])])
        else:
            fig = build_contour_figure(alphas, betas, values["asr_pct"])
        st.plotly_chart(fig, width="stretch", key=f"run_chart_{n}")


progress()
my_jobs(store, "scan")
