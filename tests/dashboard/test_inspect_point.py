"""Clicking a chart point opens the inspector on it; "Generate full responses here" runs a real
one-point scan (no early stop, the paper's 512 tokens) and hands its point back to the inspector."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
import streamlit as st

from cache import Store
from dashboard import jobs
from dashboard.common import selected_point
from landscape.figures.plots import Curve, build_contour_figure, build_curve_figure

from .conftest import copy_store
from .test_pages import open_page

ALPHAS, BETAS = np.array([-1.0, 0.0, 1.0]), np.array([-0.5, 0.0, 0.5, 1.0])
ASR = np.arange(12, dtype=float).reshape(3, 4) * 8
ASR[2, 3] = np.nan


def test_contour_overlays_one_clickable_marker_per_grid_point():
    fig = build_contour_figure(ALPHAS, BETAS, ASR, selectable=True)
    layer = next(t for t in fig.data if t.name == "grid points")
    assert len(layer.x) == len(ALPHAS) * len(BETAS) and layer.marker.opacity < 0.1
    for x, y, (i, j), text in zip(layer.x, layer.y, layer.customdata, layer.text, strict=True):
        assert (x, y) == (ALPHAS[i], BETAS[j])
        assert text == ("not computed" if (i, j) == (2, 3) else f"{ASR[i, j]:.0f}%")
    assert {tuple(c) for c in layer.customdata} == {(i, j) for i in range(3) for j in range(4)}
    plain = build_contour_figure(ALPHAS, BETAS, ASR)  # exports: no layer, the contour's own hover
    assert "grid points" not in [t.name for t in plain.data] and plain.data[0].hoverinfo is None


def test_curve_markers_carry_grid_index_and_curve_number():
    curves = [Curve(name=n, alphas=ALPHAS, asr=ASR[:, k]) for k, n in enumerate("ab")]
    fig = build_curve_figure(curves, selectable=True)
    asr = [t for t in fig.data if t.name.endswith("ASR")]
    assert [list(map(list, t.customdata)) for t in asr] == [[[i, k] for i in range(3)] for k in range(2)]
    assert all(t.customdata is None for t in build_curve_figure(curves).data)


def test_selected_point_reads_streamlits_selection_payload():
    star = {"curve_number": 2, "point_number": 0, "point_index": 0, "x": 0, "y": 0}
    grid = {"curve_number": 3, "point_number": 7, "point_index": 7, "x": 0.5, "y": 1.0, "customdata": [1, 3]}
    event = {"selection": {"points": [star, grid], "point_indices": [0, 7], "box": [], "lasso": []}}
    assert selected_point(event) == (1, 3)
    assert selected_point({"selection": {"points": [star]}}) is None
    assert selected_point({"selection": {"points": []}}) is None and selected_point(None) is None


def _click(monkeypatch, chart_key: str, pick):
    """Make ``st.plotly_chart(key=chart_key)`` return Streamlit's selection event for the point of
    its figure that ``pick(trace, n)`` chooses, as the browser would send it after a click."""
    real = st.plotly_chart

    def fake(fig, *args, **kw):
        if kw.get("key") != chart_key:
            return real(fig, *args, **kw)
        assert kw.get("on_select") == "rerun" and kw.get("selection_mode") == "points"
        for c, trace in enumerate(fig.data):
            for n in range(len(trace.x if trace.x is not None else ())):
                if pick(trace, n):
                    point = {"curve_number": c, "point_number": n, "point_index": n, "x": float(trace.x[n])}
                    point["customdata"] = list(trace.customdata[n])
                    return {"selection": {"points": [point], "point_indices": [n], "box": [], "lasso": []}}
        raise AssertionError("no such point")

    monkeypatch.setattr(st, "plotly_chart", fake)


def _shown_point(at) -> tuple[str, int, int]:
    """(scan, i, j) as the picker and the sliders show them; the sliders' keys carry their scan."""
    scan = at.selectbox(key="inspector_scan").value
    sliders = {s.key: s.value for s in at.select_slider}
    assert all(k.endswith(f":{scan}") for k in sliders), sliders  # no other scan's slider on screen
    return scan, sliders[f"insp_i:{scan}"], sliders.get(f"insp_j:{scan}", 0)


def test_clicking_a_contour_point_opens_the_inspector_on_it(app_env, monkeypatch):
    _, keys = app_env
    at = open_page("basin")
    at.selectbox(key="basin_scan").set_value(keys["2d"]).run()
    _click(monkeypatch, "contour", lambda t, n: t.name == "grid points" and list(t.customdata[n]) == [2, 1])
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Point inspector" and _shown_point(at) == (keys["2d"], 2, 1)
    with Store(app_env[0]) as store:
        asr = store.point(keys["2d"], 2, 1)["asr_pct"]
    assert at.metric[0].value == f"{asr:.1f}%"


def test_clicking_a_curve_point_opens_that_scan_at_that_alpha(app_env, monkeypatch):
    _, keys = app_env
    at = open_page("curve")
    at.multiselect(key="curve_scans").set_value([keys["1d"], keys["1d_b"]]).run()
    at.toggle[0].set_value(False).run()  # two curves: the second one's point 3
    _click(
        monkeypatch, "curve_chart", lambda t, n: t.customdata is not None and list(t.customdata[n]) == [3, 1]
    )
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert _shown_point(at) == (keys["1d_b"], 3, 0)


@pytest.fixture
def own_store(filled_store, tmp_path, tiny_model, monkeypatch):
    """A copy of the filled store (a job adds scans), the tiny model's folder as model root."""
    store, keys = filled_store
    copy_store(store, tmp_path / "store")
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("SAFETY_LANDSCAPE_MODEL_ROOTS", str(tiny_model.parent))
    monkeypatch.delenv("SAFETY_LANDSCAPE_READ_ONLY", raising=False)
    return tmp_path / "store", keys


def _inspector_at(key: str, i: int, j: int):
    at = open_page()
    at.session_state["inspect_point"] = {"key": key, "i": i, "j": j}
    at.switch_page("views/inspector.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert _shown_point(at) == (key, i, j)
    return at


def test_full_responses_runs_a_one_point_scan_there_and_opens_it(own_store):
    store_dir, keys = own_store
    at = _inspector_at(keys["2d"], 2, 1)
    assert at.number_input(key="insp_full_tokens").value == 512
    at.button(key="insp_full_start").click().run()
    assert not at.error, [e.value for e in at.error]
    key = at.session_state["insp_full_job"]
    try:
        _check_point_job(at, store_dir, keys["2d"], key)
    finally:
        with Store(store_dir) as store:
            jobs.cancel(store, key)


def _check_point_job(at, store_dir, source_key: str, key: str) -> None:
    with Store(store_dir) as store:
        job = jobs.job_for(store, key)
        argv = psutil.Process(job.pid).cmdline() if job else []
        source = store.scan_record(source_key)["spec"]
    argv = argv[argv.index("-q") + 1 :]
    spec_file = str(store_dir / "jobs" / f"{source_key}.point.yaml")
    beta = repr(float(np.linspace(-0.5, 1.5, 4)[1]))  # the filled store's β grid, index 1
    assert argv == ["scan", "2d", "--spec", spec_file, "--range", "1.0", "1.0", "--points", "1"] + [
        "--beta-range", beta, beta, "--beta-points", "1",
        "--full-responses", "--max-new-tokens", "512",
    ]  # fmt: skip
    assert at.code[0].value == "landscape " + " ".join(argv)
    deadline = time.time() + 240
    with Store(store_dir) as store:
        while (store.scan_record(key) or {}).get("status") != "complete" and time.time() < deadline:
            time.sleep(1)
        rec = store.scan_record(key)
    assert rec and rec["status"] == "complete", jobs.log_tail(Store(store_dir), key)
    spec = rec["spec"]
    assert spec["generation"] == {**source["generation"], "max_new_tokens": 512, "early_stop": False}
    assert spec["alphas"] == {"start": 1.0, "stop": 1.0, "num": 1}
    assert (
        spec["betas"] == {"start": float(beta), "stop": float(beta), "num": 1}
        and spec["directions"] == source["directions"]
    )
    at.run()
    at.button(key="insp_full_open").click().run()
    assert _shown_point(at) == (key, 0, 0) and len(at.dataframe[0].value) == 2


def test_read_only_hides_the_full_responses_button(own_store, monkeypatch):
    _, keys = own_store
    assert "insp_full_start" in [b.key for b in _inspector_at(keys["1d"], 1, 0).button]
    monkeypatch.setenv("SAFETY_LANDSCAPE_READ_ONLY", "1")
    at = _inspector_at(keys["1d"], 1, 0)
    assert not at.button and not at.get("number_input")
