"""Widgets shared by the pages: scan pickers and the empty state."""

from __future__ import annotations

import streamlit as st

from dashboard import commands, data
from landscape.core.format import format_number
from landscape.core.specs import GenerationSpec, judgement_note
from landscape.core.visage import POINT_KINDS, reference_text

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


def _seen(param: str, key: str) -> str:
    """Session key of the value widget ``key`` (one page's) last wrote to the URL for ``param``."""
    return f"_url:{key}:{param}"


def url_changed(param: str, key: str) -> str | None:
    """The URL's ``param`` when it changed since widget ``key`` last wrote it (a reload,
    back/forward, a link), else None."""
    raw = st.query_params.get(param)
    return raw if raw is not None and raw != st.session_state.get(_seen(param, key)) else None


def url_adopt(param: str, key: str, valid, default, parse) -> None:
    """Before widget ``key`` is drawn: take the URL's ``param`` when the URL changed since this page
    last wrote it (a reload, back/forward, a link from a colleague), else keep the widget's own
    value while ``valid(value)``, else ``default``. ``parse`` maps the URL text to a value (None:
    not one)."""
    raw = url_changed(param, key)
    if raw is not None:
        value = parse(raw)
        if value is not None and valid(value):
            st.session_state[key] = value
            return
    if key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = default


def url_keep(param: str, key: str, value, default=None) -> None:
    """After widget ``key``: the URL says ``param`` = ``value`` (so reload and links reopen it).

    Streamlit pushes a browser-history entry for every URL change made from Python (it replaces the
    entry during back/forward), so a page shown with its default and no ``param`` in the URL writes
    nothing: a plain visit adds no history entry and Back leaves the page in one press."""
    text = str(value)
    raw = st.query_params.get(param)
    if raw is None and default is not None and text == str(default):
        st.session_state[_seen(param, key)] = None
        return
    if raw != text:
        st.query_params[param] = text
    st.session_state[_seen(param, key)] = text


def url_widget(widget, param: str, label: str, options, default, key: str, **kw):
    """``widget`` (st.selectbox, st.radio, …) over ``options`` whose value lives in the URL as
    ``param``: adopted from it, written back to it."""
    texts = {str(o): o for o in options}
    url_adopt(param, key, lambda v: v in options, default, texts.get)
    value = widget(label, options, key=key, **kw)
    url_keep(param, key, value, default)
    return value


def default_scan(df) -> str:
    """The newest scan that is not a single point (a point is never a page's default)."""
    basins = df[~df["kind"].isin(POINT_KINDS)]
    return (basins if not basins.empty else df)["key"].iloc[0]


def pick_scan(df, label: str, key: str) -> str:
    """A selectbox over scans, its choice in the URL (``?scan=<first 12 hex>``) and shared with the
    other pages (``selected_scan``). Opened from the URL, then the page's own choice, then the
    other pages' choice, then the newest scan that is not a single point."""
    keys = df["key"].tolist()

    def parse(text: str) -> str | None:
        found = expand_keys([text], keys)
        return found[0] if found else None

    shared = st.session_state.get("selected_scan")
    fallback = shared if shared in keys else default_scan(df)
    url_adopt("scan", key, lambda k: k in keys, fallback, parse)
    labels = {r["key"]: data.label(r) for _, r in df.iterrows()}
    choice = st.selectbox(label, keys, format_func=labels.get, key=key)
    st.session_state["selected_scan"] = choice
    url_keep("scan", key, choice[:12], fallback[:12])
    return choice


def expand_keys(prefixes: list[str], keys: list[str]) -> list[str] | None:
    """Full scan keys for prefixes (as the URL carries them); None unless each names one scan."""
    out = []
    for p in prefixes:
        hits = [k for k in keys if k.startswith(p.strip().lower())]
        if len(hits) != 1:
            return None
        out.append(hits[0])
    return out or None


def pick_scans(df, label: str, key: str, default: list[str]) -> list[str]:
    """A multiselect over scans, its choice in the URL (``?scans=<12 hex>,<12 hex>``)."""
    labels = {r["key"]: data.label(r) for _, r in df.iterrows()}
    keys = list(labels)
    url_adopt(
        "scans",
        key,
        lambda v: isinstance(v, list) and all(k in labels for k in v),
        default,
        lambda t: expand_keys(t.split(","), keys),
    )
    chosen = st.multiselect(label, keys, format_func=labels.get, key=key)
    url_keep("scans", key, ",".join(k[:12] for k in chosen), ",".join(k[:12] for k in default))
    return chosen


def scoped(name: str, *selection) -> str:
    """A widget key bound to what the widget describes (scan, figure, …): a label typed for one
    scan never shows under another, and each scan keeps its own edits for the session."""
    return ":".join([name, *(str(s) for s in selection)])


def kept(name: str, selection: tuple):
    """What ``keep(name, selection, value)`` stored, only while the selection is the same."""
    held = st.session_state.get(name)
    return held[1] if held is not None and held[0] == selection else None


def keep(name: str, selection: tuple, value) -> None:
    """Store a rendered file (or any result) together with the selection it was made from."""
    st.session_state[name] = (selection, value)


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


def open_inspector(key: str, i: int, j: int, family: list[str] | None = None) -> None:
    """Switch to the point inspector on grid point ``(i, j)`` of scan ``key``; with ``family`` (the
    K scans a mean curve averages), on that point of every one of them side by side."""
    fam = list(family) if family and len(family) > 1 else None
    st.session_state[INSPECT] = {"key": key, "i": int(i), "j": int(j), "family": fam}
    st.switch_page("views/inspector.py")


def url_expect(param: str, key: str) -> None:
    """Treat the URL's current ``param`` as already seen by widget ``key``: a page opened by a click
    elsewhere takes what it was handed, not what the URL still says from before."""
    st.session_state[_seen(param, key)] = st.query_params.get(param)


def url_drop(param: str) -> None:
    """Remove ``param`` from the URL (it no longer describes the view)."""
    if param in st.query_params:
        del st.query_params[param]


def metric_row(key: str, rec: dict, over: str | None = None) -> None:
    """VISAGE both ways, ASR at θ₀ and status of one scan (metrics recomputed from its grid).
    ``over``: what the numbers are over when the page also shows an average they could be taken
    for (``scan 94098b57 alone, seed 0``); it goes into every label."""
    summ = data.summary(key)
    done = bool(summ.get("complete"))
    tag = f" · {over}" if over else ""
    cols = st.columns(4)
    cols[0].metric(f"VISAGE (paper){tag}", format_number(summ.get("visage"), 2))
    ref = reference_text(summ) if done else "—"
    cols[1].metric(f"VISAGE (reference 1D){tag}", ref.split(" (")[0])
    if ref.startswith("— ("):
        cols[1].caption(f"undefined: {summ['visage_reference_note']}")
    if summ.get("origin_sampled") is False:
        cols[2].metric(f"ASR at θ₀{tag}", "not sampled")
        cols[2].caption("θ₀ is not a point of this grid")
    else:
        cols[2].metric(
            f"ASR at θ₀{tag}", format_number(summ.get("asr_origin_pct"), 1) + ("%" if done else "")
        )
    cols[3].metric("status", rec.get("status", "?"))
    gen = (rec.get("spec") or {}).get("generation")
    if gen:
        note = judgement_note(GenerationSpec(**gen))
        st.caption(note[0].upper() + note[1:] + ".")


def my_jobs(store, kind: str) -> None:
    """This user's jobs of ``kind`` (everyone's when login is off): state (running, finished,
    cancelled, failed), when, log tail and Cancel; re-read every 2 s only while one is running."""
    from dashboard import jobs

    live_fragment(
        _job_list, lambda: any(j.running and j.kind == kind for j in jobs.all_jobs(store)), store, kind
    )


def live_fragment(body, running_now, *args) -> None:
    """Draw ``body(*args)`` as a fragment that re-runs every 2 s only while ``running_now()``: a tab
    left open on an idle page costs the server nothing, and when the job ends the page is redrawn
    once (states, buttons) and the timer stops."""
    running = running_now()

    def frag(*a):
        body(*a)
        if running and not running_now():
            st.rerun()  # the whole page, now without the timer

    st.fragment(frag, run_every=2 if running else None)(*args)


def _job_list(store, kind: str) -> None:
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
        with st.expander(f"{job.label or job.kind} · {job.key[:12]} · {job.describe}", expanded=job.running):
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
