"""Widgets shared by the pages: scan pickers and the empty state."""

from __future__ import annotations

import streamlit as st

from dashboard import commands, data
from landscape.core.format import format_number
from landscape.core.specs import GenerationSpec, judgement_note
from landscape.core.visage import reference_text

EMPTY_HINT = (
    "No scans in the store yet. Fill it from a terminal with `make demo` (align the embedded model, "
    "then 1D and 2D scans) or `landscape scan 1d --auto-range`, or use **Run a scan**."
)


def scans_or_stop(kinds: tuple[str, ...] | None = None):
    """The scan table filtered to ``kinds``; shows the empty state and stops when there are none."""
    df = data.scans()
    if df.empty:
        st.info(EMPTY_HINT)
        st.caption(f"Store: `{data.settings().store}`")
        st.stop()
    if kinds is not None:
        df = df[df["kind"].isin(kinds)]
        if df.empty:
            st.info(f"No {' / '.join(kinds)} scans yet. " + EMPTY_HINT)
            st.stop()
    return df


def pick_scan(df, label: str, key: str, default_key: str | None = None) -> str:
    """A selectbox over scans; remembers the choice in the URL-independent session state."""
    keys = df["key"].tolist()
    preferred = default_key or st.session_state.get("selected_scan")
    index = keys.index(preferred) if preferred in keys else 0
    labels = {r["key"]: data.label(r) for _, r in df.iterrows()}
    choice = st.selectbox(label, keys, index=index, format_func=labels.get, key=key)
    st.session_state["selected_scan"] = choice
    return choice


INSPECT = "inspect_point"  # hand-over to the inspector: {"key", "i", "j"} of the point to open


def selected_point(event) -> tuple[int, int] | None:
    """The ``customdata`` pair of the first selected point that carries one, from the event
    ``st.plotly_chart(..., on_select="rerun")`` returns (``{"selection": {"points": [{...,
    "customdata": [i, j]}]}}``); None when nothing, or only a point without one (θ₀), is selected."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for p in points:
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, list | tuple) and len(data) >= 2:
            try:
                return int(data[0]), int(data[1])
            except (TypeError, ValueError):
                continue
    return None


def open_inspector(key: str, i: int, j: int) -> None:
    """Switch to the point inspector on grid point ``(i, j)`` of scan ``key``."""
    st.session_state[INSPECT] = {"key": key, "i": int(i), "j": int(j)}
    st.switch_page("views/inspector.py")


def metric_row(key: str, rec: dict) -> None:
    """VISAGE both ways, ASR at θ₀ and status of one scan (metrics recomputed from its grid)."""
    summ = data.summary(key)
    done = bool(summ.get("complete"))
    cols = st.columns(4)
    cols[0].metric("VISAGE (paper)", format_number(summ.get("visage"), 2))
    ref = reference_text(summ) if done else "—"
    cols[1].metric("VISAGE (reference 1D)", ref.split(" (")[0])
    if ref.startswith("— ("):
        cols[1].caption(f"undefined: {summ['visage_reference_note']}")
    if summ.get("origin_sampled") is False:
        cols[2].metric("ASR at θ₀", "not sampled")
        cols[2].caption("θ₀ is not a point of this grid")
    else:
        cols[2].metric("ASR at θ₀", format_number(summ.get("asr_origin_pct"), 1) + ("%" if done else ""))
    cols[3].metric("status", rec.get("status", "?"))
    gen = (rec.get("spec") or {}).get("generation")
    if gen:
        note = judgement_note(GenerationSpec(**gen))
        st.caption(note[0].upper() + note[1:] + ".")


def my_jobs(store, kind: str) -> None:
    """This user's jobs of ``kind`` (everyone's when login is off): status, log tail, Cancel."""
    from dashboard import jobs
    from dashboard.auth import current_user, users_identified

    user = current_user()
    mine = [
        j
        for j in jobs.all_jobs(store)
        if j.kind == kind and (not users_identified() or (user is not None and j.user == user))
    ]
    st.subheader("My jobs")
    if not mine:
        st.caption("No jobs of yours yet.")
        return
    for job in mine[:10]:
        state = "running" if job.running else "ended"
        with st.expander(f"{job.label or job.kind} · {job.key[:12]} · {state}", expanded=job.running):
            st.code(jobs.log_tail(store, job.key, lines=12) or "(no output yet)")
            if job.running and st.button("Cancel", key=f"cancel_{job.key}"):
                jobs.cancel(store, job.key)
                st.rerun()


def start_job(what: str, state_key: str, submit) -> None:
    """Run ``submit()`` (a jobs.submit_*), remember the job under ``state_key`` and say whether it
    started or attached to the same job already running; a failure is one line."""
    try:
        job = submit()
        st.session_state[state_key] = job.key
        st.success(
            ("Attached to the running job" if job.attached else "Started job")
            + f" for {what} {job.key[:12]}."
        )
    except Exception as exc:
        st.error(f"Could not start the {what}: {commands.one_line(exc)}")
