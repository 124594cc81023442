"""The Attack strength page (AppTest, and a click in Chromium) on a store holding a real tiny sweep
and search."""

from __future__ import annotations

import pytest

from cache import Store
from landscape.core.specs import Runtime
from landscape.figures.export import CHROMIUM_ARGS, chromium_path
from landscape.study.pipeline import parse_study, run_study

from ..landscape.study.test_sweep import SWEEP
from .test_browser import streamlit_server
from .test_pages import chart_spec, open_page

STUDY = (
    SWEEP.replace("  - {{name: aoa, attack: {{name: aoa, n: 4}}}}\n", "")
    .replace("epochs: [1, 2]}}", "epochs: [1, 2]}}\n  visage: true")
    .replace(
        "visage_directions: 0", "visage_directions: 1, visage_points: 3, visage_prompts: 2, visage_range: 0.1"
    )
    + """search:
  space: {{learning_rate: {{low: 1.0e-4, high: 1.0e-1, log: true}}}}
  trials: 3
  runs: [harmful]
"""
)


@pytest.fixture(scope="module")
def strength_store(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("strength")
    spec = parse_study(STUDY.format(model=tiny_model))
    with Store(root / "store") as s:
        record = run_study(spec, s, Runtime(progress=False), log=lambda _: None)
    return root / "store", record


def test_the_page_says_how_to_make_a_sweep_or_a_search(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(tmp_path / "empty"))
    info = [i.value for i in open_page("strength").info]
    assert any("--preset tiny-sweep" in v and "attack-search --preset tiny-search" in v for v in info)


def test_the_page_draws_the_sweep_per_defence_and_the_search_trace(strength_store, monkeypatch):
    root, record = strength_store
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(root))
    at = open_page("strength")
    sweep = chart_spec(at, 0)
    lines = [t for t in sweep["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == ["harmful (no defence)", "harmful+antidote (antidote)"]
    assert sum(t.get("fill") == "toself" for t in sweep["data"]) == 2  # a Wilson band a line
    assert sweep["layout"]["yaxis"]["title"]["text"] == "harmful score %"
    cells = [c for c in record["sweep"]["cells"] if c["values"]["epochs"] == 1]  # "epochs at" 1
    assert list(lines[0]["y"]) == [c["harmful_pct"] for c in cells if c["run"] == "harmful"]
    at.selectbox(key="strength_fix_epochs").set_value(2).run()
    lines = [t for t in chart_spec(at, 0)["data"] if t.get("mode") == "lines+markers"]
    two = [c for c in record["sweep"]["cells"] if c["values"]["epochs"] == 2 and c["run"] == "harmful"]
    assert [k for _, k, _ in lines[0]["customdata"]] == [c["harmful_k"] for c in two]
    at.radio(key="strength_metric").set_value("task").run()
    assert chart_spec(at, 0)["layout"]["yaxis"]["title"]["text"] == "task accuracy %"
    table = at.dataframe[0].value
    assert list(table["run"]) == ["harmful"] and list(table["trials"]) == [3]
    assert "below floor: worst %" in table.columns  # empty without a floor
    trace = chart_spec(at, 1)
    assert [t["name"] for t in trace["data"]] == ["harmful: worst so far", "harmful: trials"]
    search = record["searches"][0]
    assert list(trace["data"][0]["y"]) == search["best_so_far"]


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="needs Debian chromium")
def test_clicking_a_sweep_cell_opens_its_model(strength_store, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    root, record = strength_store
    env = {"SAFETY_LANDSCAPE_STORE": str(root), "SAFETY_LANDSCAPE_READ_ONLY": "1"}
    with streamlit_server(env, tmp_path_factory.mktemp("elsewhere")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{url}/strength", wait_until="domcontentloaded")
        chart = page.locator(".js-plotly-plot").first
        points = chart.locator(".scatterlayer .trace").last.locator("path.point")
        points.first.wait_for(state="attached", timeout=60_000)
        page.wait_for_timeout(1500)
        box = points.nth(1).bounding_box()  # the antidote run at the larger learning rate
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.get_by_text("Cell: harmful+antidote at learning_rate=0.01").wait_for(timeout=30_000)
        page.get_by_text("Its 1D landscape").click()
        page.wait_for_url("**/curve*", timeout=30_000)
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        browser.close()
    cell = next(
        c
        for c in record["sweep"]["cells"]
        if c["run"] == "harmful+antidote" and c["values"] == {"learning_rate": 0.01, "epochs": 1}
    )
    shown = [line for line in body.splitlines() if " · " in line]  # the curve page's scan picker
    assert "Traceback" not in body and shown[0].startswith(cell["visage_keys"][0][:8]), shown


def test_a_search_record_from_before_its_trace_was_stored_still_draws(strength_store, tmp_path, monkeypatch):
    """Records written before 'best_so_far' and 'study' were stored (a KeyError on the page): the
    trace and the worst trial are derived from the trials."""
    root, record = strength_store
    with Store(root) as s:
        key = next(iter(s.keys("search:")))
        old = {k: v for k, v in s.get_json(key).items() if k not in ("best_so_far", "study", "updated")}
    with Store(tmp_path / "store") as s:
        s.put_json(key, old)
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(tmp_path / "store"))
    at = open_page("strength")
    table = at.dataframe[0].value
    worst = max(t["harmful_pct"] for t in old["trials"])
    assert list(table["worst harmful %"]) == [worst]
    assert list(chart_spec(at, 0)["data"][0]["y"]) == record["searches"][0]["best_so_far"]


def test_two_searches_that_both_hold_at_zero_stay_apart():
    """Two defences whose worst-so-far lines coincide at 0%: each its own dash and marker symbol,
    and trials below the task floor hollow."""
    from landscape.figures.strength import build_search_figure

    def search(run, task):
        trials = [
            {
                "number": i,
                "harmful_pct": 0.0,
                "harmful_lo": 0.0,
                "harmful_hi": 10.7,
                "task_pct": t,
                "values": {},
            }
            for i, t in enumerate(task)
        ]
        return {"run": run, "trials": trials, "search": {"task_floor": 60}, "best_so_far": [0.0, 0.0]}

    fig = build_search_figure([search("a", [70, 50]), search("b", [70, 70])])
    lines = [t for t in fig.data if t.mode == "lines"]
    marks = [t for t in fig.data if t.mode == "markers"]
    assert lines[0].line.dash != lines[1].line.dash
    assert marks[0].marker.symbol != marks[1].marker.symbol
    assert list(marks[0].marker.color)[1] == "white"  # below the floor
