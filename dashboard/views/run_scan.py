"""Run a scan: every ``landscape scan`` option as a widget, the exact command, its cost, then a job.

The widgets become the CLI's own flags (``dashboard.commands.scan_args``), parsed by the CLI's code
into the ScanSpec whose key is shown; the job runs that command line as a separate process.
"""

import numpy as np
import streamlit as st

from dashboard import commands, data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.common import live_fragment, my_jobs, start_job, url_adopt, url_keep, url_widget
from landscape.core.format import format_duration
from landscape.core.specs import SYSTEM_PRESETS
from landscape.engine.scan import prepare_scan
from landscape.figures.plots import Curve, build_contour_figure, build_curve_figure

st.title("Run a scan")
settings = data.settings()
allowed, why = may_launch(settings)
if not allowed:
    st.info(why)
    st.stop()
store = data.store()
models = settings.models_available()
local = [m for m in models if m not in ("aligned", "smollm2-135m-instruct")]

kind = url_widget(
    st.radio, "kind", "Kind", ["1d", "2d", "interpolate"], "1d", key="run_kind", horizontal=True
)
invalid: list[str] = []  # every field the form cannot launch as shown: Start stays disabled


def field(where, label: str, default, lo, hi, key: str, **kw):
    """A number box that may be cleared or hold any number: the value on screen is the value
    checked and launched (a bounded Streamlit box keeps its last valid value while showing another
    in red, and a cleared one falls back to its default without saying so)."""
    param = key.removeprefix("run_")  # in the URL: a reload mid-job still shows what was launched
    number = int if isinstance(default, int) and not kw.get("format") else float

    def parse(text: str):
        try:
            return number(text)
        except ValueError:
            return None

    url_adopt(param, key, lambda v: v is None or isinstance(v, int | float), default, parse)
    value = where.number_input(label, value=None, key=key, **kw)
    if value is not None:
        url_keep(param, key, value, default)
    if value is None:
        invalid.append(f"{label}: empty")
    elif not lo <= value <= hi:
        invalid.append(f"{label}: {value:g} is outside [{lo:g}, {hi:g}]")
    return value


c1, c2, c3 = st.columns(3)
model = url_widget(
    c1.selectbox, "model", "Model (θ₀, or θ_a of an interpolation)", models, models[0], key="run_model"
)
custom = c1.text_input("…or a model path under the allowed roots", key="run_model_path")
dtype = c1.selectbox("dtype", ["float32", "bfloat16"], key="run_dtype")
source = custom.strip() or model
target = None
if kind == "interpolate":
    others = [m for m in models if m != source] or models  # θ_b = θ_a would interpolate nothing
    default_b = models.index("aligned") if "aligned" in others else models.index(others[0])
    target = c2.selectbox("θ_b (the model at α = 1)", models, index=default_b, key="run_target")
    a0 = field(c2, "α from", -0.25, -5.0, 5.0, "run_from", format="%.3f")
    a1 = field(c2, "α to", 1.25, -5.0, 5.0, "run_to", format="%.3f")
    seed, norm = 0, "layer"
else:
    norm = c2.selectbox("Normalisation", ["layer", "filter", "none"], key="run_norm")
    seed = field(c2, "Seed", 0, 0, 10_000, "run_seed", step=1)
    half = field(c2, "Range ± (α and β)", 0.2, 0.001, 10.0, "run_half", format="%.3f")
    a0, a1 = (None, None) if half is None else (-half, half)
points = field(c3, "Points per axis", 7, 1, 41, "run_points", step=2)
k = field(c3, "Directions K (seeds seed…seed+K−1)", 1, 1, 50, "run_k", step=1)
auto = c3.checkbox("Auto range (bisect for the basin edges)", key="run_auto", disabled=kind == "interpolate")

p1, p2, p3 = st.columns(3)
prompts = p1.selectbox("Prompt set", ["builtin:harmful", "builtin:benign"], key="run_prompts")
limit = field(p1, "Prompts (first N)", 16, 1, 500, "run_limit", step=1)
system = p2.selectbox("System prompt", list(SYSTEM_PRESETS), key="run_system")
tokens = field(p2, "Max new tokens", 32, 1, 4096, "run_tokens", step=1)
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

CONFIRM_ABOVE_S = 3600  # a job estimated above an hour (or with no history and a big budget) asks first
CONFIRM_ABOVE_TOKENS = 10_000_000


def launch() -> None:
    """The command built from the values on screen, its cost, and Start (disabled while the form
    cannot run, and behind a confirmation above an hour)."""
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
    big = False
    if problem is None:
        try:
            parsed = commands.scan_spec(args)
            prep = prepare_scan(parsed.spec, store)
            est = commands.estimate(store, parsed, len(prep.prompts), jobs.startup_history(store))
            st.caption(commands.estimate_text(est, prep.key, int(tokens), choice.auto_range))
            seconds = est.total_s
            big = (seconds is not None and seconds > CONFIRM_ABOVE_S) or (
                seconds is None and est.max_tokens > CONFIRM_ABOVE_TOKENS
            )
        except Exception as exc:  # one line for the user, whatever the flags or the store said
            problem = commands.one_line(exc)
    if problem:  # said before Start, which stays disabled until the form describes a scan that can run
        st.error(problem)
    confirmed = True
    if big and problem is None:
        confirmed = st.checkbox(
            "This is a long job (see the estimate above): start it anyway", key="run_confirm_big"
        )
    if st.button(
        "Start scan", key="run_start", type="primary", disabled=problem is not None or not confirmed
    ):
        start_job(
            "scan",
            "run_job",
            lambda: jobs.submit_scan(args, store, settings.max_jobs, current_user(), settings.job_history),
        )


if invalid:  # nothing is built from a value that is not on screen
    st.error("Fix the form before starting: " + "; ".join(invalid))
    st.button("Start scan", key="run_start", type="primary", disabled=True)
else:
    launch()


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
        state = f" · {job.describe}" if job is not None else ""
        st.progress(done / total, text=f"scan {scan_key[:12]}: {done}/{total} points" + state)
        if job is not None and job.running and done < total:
            # this job's own points (not its start-up, which is already behind it)
            mine = values["point_s"][np.isfinite(values["point_s"]) & (values["finished"] >= job.started)]
            if mine.size:
                left = float(np.median(mine)) * (total - done)
                st.caption(
                    f"about {format_duration(left)} left: {total - done} points × {np.median(mine):.1f} s "
                    f"(median of this job's {mine.size} points so far)"
                )
            else:
                st.caption("time left: known after this job's first point")
        if betas is None:
            fig = build_curve_figure([Curve(name=scan_key[:8], alphas=alphas, asr=values["asr_pct"])])
        else:
            fig = build_contour_figure(alphas, betas, values["asr_pct"])
        st.plotly_chart(fig, width="stretch", key=f"run_chart_{n}")


live_fragment(progress, lambda: any(j.kind == "scan" for j in jobs.running_jobs(store)))
my_jobs(store, "scan")
