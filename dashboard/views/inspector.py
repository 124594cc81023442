"""Point inspector: every prompt, response and verdict behind one grid point."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import commands, data, jobs
from dashboard.auth import current_user, may_launch
from dashboard.common import (
    INSPECT,
    expand_keys,
    live_fragment,
    pick_scan,
    scans_or_stop,
    scoped,
    url_adopt,
    url_changed,
    url_drop,
    url_expect,
    url_keep,
    url_widget,
)
from landscape.core.prompts import prompt_set
from landscape.core.specs import ScanSpec
from landscape.core.uncertainty import interval_text, point_interval


def _direction(rec: dict) -> str:
    """One direction's name: ``seed 3`` (random), or its kind."""
    dirs = (rec.get("spec") or {}).get("directions") or []
    return (
        ", ".join(f"seed {d['seed']}" if d.get("kind", "random") == "random" else d["kind"] for d in dirs)
        or "—"
    )


st.title("Point inspector")
df = scans_or_stop()
target = st.session_state.pop(INSPECT, None)  # a point clicked on a chart (or a full-responses scan)
if target is not None and target["key"] in df["key"].tolist():
    # the page shows what it was handed: scan, point and (for a mean curve) its directions
    st.session_state["selected_scan"] = st.session_state["inspector_scan"] = target["key"]
    st.session_state[scoped("insp_i", target["key"])] = target["i"]
    st.session_state[scoped("insp_j", target["key"])] = target["j"]
    st.session_state["insp_family"] = target.get("family")
    for param, widget in (("scan", "inspector_scan"), ("i", "insp_i"), ("j", "insp_j"), ("mean", "insp")):
        url_expect(param, scoped(widget, target["key"]) if param in ("i", "j") else widget)
key = pick_scan(df, "Scan", "inspector_scan")
keys = df["key"].tolist()
record = data.record(key) or {}
alphas, betas, values = data.grid(key)
done = np.isfinite(values["asr_pct"])
if not done.any():
    st.info("No point of this scan is computed yet.")
    st.stop()

# A mean curve's point: every complete direction of the family at this grid point, side by side.
if (raw_mean := url_changed("mean", "insp")) is not None:
    st.session_state["insp_family"] = expand_keys(raw_mean.split(","), keys)
family = st.session_state.get("insp_family")
if not family or key not in family:  # the picker moved to another scan: one scan again
    family = st.session_state["insp_family"] = None
    url_drop("mean")
else:
    url_keep("mean", "insp", ",".join(k[:12] for k in family))
c1, c2 = st.columns(2)


def index_slider(where, label: str, axis, name: str, param: str) -> int:
    """A slider over this scan's grid indices (its key carries the scan's key, so another scan's
    index never shows here), in the URL as ``param``; starts at the value nearest 0."""
    key_ = scoped(name, key)
    options = list(range(len(axis)))
    url_adopt(param, key_, lambda v: v in options, int(np.argmin(np.abs(axis))), _int)
    value = where.select_slider(label, options=options, format_func=lambda k: f"{axis[k]:.4g}", key=key_)
    url_keep(param, key_, value, int(np.argmin(np.abs(axis))))
    return value


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


i = index_slider(c1, "α", alphas, "insp_i", "i")
j = 0 if betas is None else index_slider(c2, "β", betas, "insp_j", "j")
main_set = prompt_set(record)
members = family or [key]
points = {k: data.store().point(k, i, j) for k in members}
if any(p is None for p in points.values()):
    st.warning("This point is not computed yet" + (" in every direction." if family else "."))
    st.stop()
rate, rate_name = ("asr_pct", "ASR") if main_set == "harmful" else ("refusal_pct", "over-refusal")
if family:
    mean = float(np.mean([p[rate] for p in points.values()]))
    st.info(
        f"The mean of {len(members)} directions at α = {alphas[i]:.4g}"
        + ("" if betas is None else f", β = {betas[j]:.4g}")
        + f": {rate_name} {mean:.1f}%. Each direction's point below; responses of all of them in one table."
    )
    if st.button("Show one direction only", key="insp_one"):
        st.session_state["insp_family"] = None
        st.rerun()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "scan": k[:12],
                    "direction": _direction(data.record(k) or {}),
                    rate_name + " %": round(p[rate], 1),
                    "95% Wilson interval": interval_text(
                        point_interval({"asr_pct": p[rate], "n_prompts": p.get("n_prompts")})
                    ),
                    "incoherent %": round(p["incoherent_pct"], 1),
                }
                for k, p in points.items()
            ]
        ),
        hide_index=True,
        key="insp_family_table",
    )
else:
    point = points[key]
    m = st.columns(4)
    ci = point_interval(
        {"asr_pct": point[rate], "n_prompts": point.get("n_prompts")}, record.get("n_prompts")
    )
    m[0].metric(rate_name, f"{point[rate]:.1f}%")
    if ci is not None:
        m[0].caption(f"95% Wilson interval {interval_text(ci)}")
    other = ("refusals", "refusal_pct") if main_set == "harmful" else ("answered", "asr_pct")
    m[1].metric(other[0], f"{point[other[1]]:.1f}%")
    m[2].metric("incoherent", f"{point['incoherent_pct']:.1f}%")
    m[3].metric("time", f"{point['elapsed_s']:.1f} s")
    m[3].caption(f"{point['tokens']} new tokens")
    if main_set == "benign":
        st.caption("A benign prompt set: a refusal here is over-refusal, an answer is what should happen.")
frames = []
for k in members:
    part = pd.DataFrame(data.responses(k, i, j))
    if family:
        part.insert(0, "direction", _direction(data.record(k) or {}))
    frames.append(part)
rows = pd.concat(frames, ignore_index=True)
if "set" not in rows:
    rows["set"] = main_set
rows["set"] = rows["set"].fillna(main_set)
answered = "successes" if main_set == "harmful" else "answered"
show = url_widget(
    st.radio,
    "show",
    "Show",
    ["all", answered, "refusals", "incoherent"],
    "all",
    key="insp_filter",
    horizontal=True,
)
if show == answered:
    rows = rows[rows["refused"].eq(False)]  # a row without a verdict (refused None) is neither
elif show == "refusals":
    rows = rows[rows["refused"].eq(True)]
elif show == "incoherent":
    rows = rows[rows["incoherent"]]
verdict = np.select(
    [rows["refused"].eq(True), rows["refused"].eq(False)], ["refused", "complied"], "no verdict"
)
rows["verdict"] = verdict + np.where(rows["incoherent"], " · incoherent", "")
shown = (["direction"] if family else []) + [
    "set",
    "verdict",
    "prompt",
    "response",
    "reason",
    "incoherent_reason",
]
st.dataframe(
    rows[shown].fillna(""),
    hide_index=True,
    width="stretch",
    key="insp_table",
    column_config={
        "direction": st.column_config.TextColumn(width="small"),
        "set": st.column_config.TextColumn(width="small"),
        "verdict": st.column_config.TextColumn(width="small"),
        "prompt": st.column_config.TextColumn(width="medium"),
        "response": st.column_config.TextColumn(width="large"),
    },
)
if not rows.empty:  # one response in full, readable at any window width (no double-click needed)
    records = rows.reset_index(drop=True)
    pick = st.selectbox(
        "Read one in full",
        list(range(len(records))),
        format_func=lambda r: f"{r + 1}. {records.loc[r, 'verdict']} · {str(records.loc[r, 'prompt'])[:80]}",
        key=scoped("insp_read", key, i, j, show),
    )
    row = records.loc[pick]
    st.markdown(f"**Prompt** ({row['set']})")
    st.text(str(row["prompt"]))
    st.markdown(
        f"**Response** · {row['verdict']}" + (f" · judge: {row['reason']}" if row.get("reason") else "")
    )
    st.text(str(row["response"]))


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
    job_key = st.session_state.get("insp_full_job")
    live_fragment(
        full_responses_status, lambda: bool(job_key) and jobs.job_for(data.store(), job_key) is not None
    )
