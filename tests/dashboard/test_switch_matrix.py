"""What is shown is what was chosen (issue 27): every page switched between every pair of scans of a
store holding 1D, a family with a cancelled member, 2D, interpolation, evaluations (harmful and
benign) and a single point shows that scan's own labels, captions, metrics and downloads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cache import Store
from landscape.core.format import format_number
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    point_spec,
)
from landscape.core.visage import scan_summary
from landscape.engine.scan import scan_grid
from landscape.figures.export import caption_for
from landscape.figures.paper import scan_label

from .conftest import copy_store
from .test_inspect_point import _click, _shown_point
from .test_pages import chart_spec, open_page

QUIET = {"log": lambda m: None}


@pytest.fixture(scope="module")
def matrix_store(filled_store, tiny_model, tiny_model_b, tmp_path_factory):
    """The dashboard store plus: a cancelled third seed of the 1D family, an interpolation, two
    evaluations (harmful, benign) and one point along a direction (the newest scan)."""
    src, keys = filled_store
    root = tmp_path_factory.mktemp("matrix")
    copy_store(src, root / "store")
    keys = dict(keys)
    prompts = src.parent / "prompts.txt"
    common = dict(
        model=ModelSpec(source=str(tiny_model)),
        prompts=PromptSpec(source=str(prompts)),
        generation=GenerationSpec(max_new_tokens=4),
    )
    run = Runtime(progress=False)
    with Store(root / "store") as store:
        one = store.scan_record(keys["1d"])["spec"]
        third = ScanSpec.model_validate(dict(one, directions=[dict(one["directions"][0], seed=2)]))
        keys["cancelled"] = scan_grid(third, store, run, max_points=1, **QUIET).key
        interp = ScanSpec(
            directions=(
                DirectionSpec(kind="interpolation", norm="none", target=ModelSpec(source=str(tiny_model_b))),
            ),
            alphas=AxisSpec(start=-0.5, stop=1.5, num=5),
            **common,
        )
        keys["interpolation"] = scan_grid(interp, store, run, **QUIET).key
        keys["eval"] = scan_grid(point_spec(common["model"], common["prompts"], 4), store, run, **QUIET).key
        benign = point_spec(common["model"], PromptSpec(source="builtin:benign", limit=3), 4)
        keys["benign"] = scan_grid(benign, store, run, **QUIET).key
        point = ScanSpec(alphas=AxisSpec(start=-0.5, stop=-0.5, num=1), **common)
        keys["point"] = scan_grid(point, store, run, **QUIET).key
    return root / "store", keys


@pytest.fixture
def matrix_env(matrix_store, monkeypatch):
    store, keys = matrix_store
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(store))
    monkeypatch.setenv("SAFETY_LANDSCAPE_READ_ONLY", "1")
    return store, keys


def _own(store_dir, key):
    with Store(store_dir) as store:
        record = store.scan_record(key)
        return record, scan_summary(record, store.scan_grid(key).values["asr_pct"])


def _metrics(at) -> dict[str, str]:
    """Shown metrics by label, without what a label says they are over (`` · scan … alone``)."""
    return {m.label.split(" · ")[0]: m.value for m in at.metric}


def _expected_metrics(summary: dict) -> dict[str, str]:
    asr0 = (
        "not sampled"
        if summary.get("origin_sampled") is False
        else format_number(summary.get("asr_origin_pct"), 1) + "%"
    )
    return {"VISAGE (paper)": format_number(summary.get("visage"), 2), "ASR at θ₀": asr0}


def _pairs(keys: list[str]):
    return list(itertools.permutations(keys, 2))


def test_a_point_is_its_own_kind_never_a_basin_or_a_default(matrix_env):
    store_dir, keys = matrix_env
    df = open_page().dataframe[0].value.set_index("key")
    point = df.loc[keys["point"][:12]]
    # was "2d 1×1"-like: "1d" with VISAGE 0.00 and the ASR of α = −0.5 shown as θ₀'s
    assert point["kind"] == "point" and point["VISAGE"] == "—" and point["ASR θ₀ %"] == "—"
    assert list(df.columns[:4]) == ["VISAGE", "ASR θ₀ %", "half-width 100%", "VISAGE ref"]
    for page, widget in (("inspector", "inspector_scan"), ("export", "export_scan"), ("basin", "basin_scan")):
        at = open_page(page)
        assert at.selectbox(key=widget).value != keys["point"], page  # the newest, but never a default
    export = open_page("export").selectbox(key="export_scan")
    assert keys["point"] not in export.options and keys["eval"] not in export.options


def test_export_switch_matrix_labels_captions_and_downloads(matrix_env):
    store_dir, keys = matrix_env
    at = open_page("export")
    scans = [keys[k] for k in ("1d", "1d_b", "2d", "interpolation")]
    with Store(store_dir) as store:
        own = {
            k: (store.scan_record(k), caption_for(store, k, "surface" if k == keys["2d"] else "curve"))
            for k in scans
        }
    for a, b in _pairs(scans):
        at.selectbox(key="export_scan").set_value(a).run()
        at.selectbox(key="export_scan").set_value(b).run()
        assert not at.exception, [e.message for e in at.exception]
        record, caption = own[b]
        boxes = {t.key: t.value for t in at.text_input}
        assert boxes[f"export_label_curve:{b}"] == scan_label(record)
        assert not [k for k in boxes if k.split(":")[-1] != b], boxes  # no other scan's text box
        assert [t.value for t in at.text_area] == [caption]
        legend = [t.get("name", "") for t in chart_spec(at)["data"]]
        if record.get("betas") is None:
            assert any(n.startswith(scan_label(record)) for n in legend), legend
    # a label typed for one scan stays with it
    at.selectbox(key="export_scan").set_value(keys["1d"]).run()
    at.text_input(key=f"export_label_curve:{keys['1d']}").set_value("my seed-0 curve").run()
    at.selectbox(key="export_scan").set_value(keys["1d_b"]).run()
    assert at.text_input(key=f"export_label_curve:{keys['1d_b']}").value == scan_label(own[keys["1d_b"]][0])
    assert all("my seed-0 curve" not in t.get("name", "") for t in chart_spec(at)["data"])
    at.selectbox(key="export_scan").set_value(keys["1d"]).run()
    assert at.text_input(key=f"export_label_curve:{keys['1d']}").value == "my seed-0 curve"


def test_a_rendered_file_is_offered_only_for_what_it_was_rendered_from(matrix_env):
    store_dir, keys = matrix_env
    at = open_page("export")
    at.selectbox(key="export_scan").set_value(keys["1d"]).run()
    at.selectbox(key="export_format").set_value("svg").run()
    at.button(key="export_render").click().run()
    assert not at.error, [e.value for e in at.error]
    names = [b.proto.label for b in at.get("download_button")]
    assert f"Download {keys['1d'][:12]}-curve-double-column.svg" in names
    for change in (
        lambda: at.selectbox(key="export_format").set_value("png").run(),
        lambda: at.selectbox(key="export_scan").set_value(keys["1d_b"]).run(),
    ):
        change()
        labels = [b.proto.label for b in at.get("download_button")]
        assert not any(label.endswith((".svg", ".png", ".pdf")) for label in labels), labels
        at.selectbox(key="export_scan").set_value(keys["1d"]).run()
        at.selectbox(key="export_format").set_value("svg").run()
        assert f"Download {keys['1d'][:12]}-curve-double-column.svg" in [
            b.proto.label for b in at.get("download_button")
        ]


def test_inspector_switch_matrix_shows_each_scans_own_point(matrix_env):
    store_dir, keys = matrix_env
    at = open_page("inspector")
    scans = [keys[k] for k in ("1d", "2d", "interpolation", "eval", "benign", "point")]
    for a, b in _pairs(scans):
        at.selectbox(key="inspector_scan").set_value(a).run()
        at.selectbox(key="inspector_scan").set_value(b).run()
        assert not at.exception, [e.message for e in at.exception]
        scan, i, j = _shown_point(at)
        assert scan == b
        record, _ = _own(store_dir, b)
        with Store(store_dir) as store:
            point = store.point(b, i, j)
        benign = b == keys["benign"]
        metrics = _metrics(at)
        rate = "over-refusal" if benign else "ASR"
        assert metrics[rate] == f"{point['refusal_pct' if benign else 'asr_pct']:.1f}%"
        table = at.dataframe[0].value
        assert set(table["set"]) <= ({"benign"} if benign else {"harmful", "benign"})
    # the benign evaluation: its prompts are benign and "answered" replaces "successes"
    at.selectbox(key="inspector_scan").set_value(keys["benign"]).run()
    assert "answered" in at.radio(key="insp_filter").options and "ASR" not in _metrics(at)


def test_basin_and_curve_metrics_are_the_chosen_scans(matrix_env):
    store_dir, keys = matrix_env
    at = open_page("curve")
    at.toggle[0].set_value(False).run()
    scans = [keys[k] for k in ("1d", "1d_b", "interpolation", "cancelled")]
    for a, b in _pairs(scans):
        at.multiselect(key="curve_scans").set_value([a]).run()
        at.multiselect(key="curve_scans").set_value([b]).run()
        _, summary = _own(store_dir, b)
        shown = _metrics(at)
        if summary.get("complete"):
            assert {k: shown[k] for k in ("VISAGE (paper)", "ASR at θ₀")} == _expected_metrics(summary)
        else:
            assert shown["VISAGE (paper)"] == "—"
    at = open_page("basin")
    picker = at.selectbox(key="basin_scan")
    assert len(picker.options) == 1 and picker.value == keys["2d"]  # no point, no 1D scan
    _, summary = _own(store_dir, keys["2d"])
    assert {k: _metrics(at)[k] for k in ("VISAGE (paper)", "ASR at θ₀")} == _expected_metrics(summary)


def test_a_family_averages_its_complete_members_and_says_what_it_left_out(matrix_env):
    store_dir, keys = matrix_env
    at = open_page("curve")
    at.multiselect(key="curve_scans").set_value([keys["1d"]]).run()
    names = [t.get("name", "") for t in chart_spec(at)["data"]]
    asr = [n for n in names if n.endswith(": ASR")]
    # was "mean of 3" with the cancelled seed's missing points in it
    assert len(asr) == 1 and "mean of 2" in asr[0] and "1 incomplete left out" in asr[0]
    table = next(d.value for d in at.dataframe if "directions" in d.value)
    assert table["directions"].tolist() == [2]
    # issue 23: the family's "VISAGE 69.91 ± 10.82" stood beside an unlabelled "VISAGE 80.00" of one seed
    seed = _own(store_dir, keys["1d"])[0]["spec"]["directions"][0]["seed"]
    alone = f"scan {keys['1d'][:8]} alone (seed {seed})"
    assert {m.label for m in at.metric} >= {f"VISAGE (paper) · {alone}", f"ASR at θ₀ · {alone}"}
    assert "±" in table["VISAGE (paper)"].iloc[0]


def test_clicking_a_mean_opens_the_mean_not_one_member(matrix_env, monkeypatch):
    store_dir, keys = matrix_env
    at = open_page("curve")
    at.multiselect(key="curve_scans").set_value([keys["1d_b"]]).run()
    mean_y = next(t for t in chart_spec(at)["data"] if t.get("name", "").endswith(": ASR"))["y"]
    _click(
        monkeypatch, "curve_chart", lambda t, n: t.customdata is not None and list(t.customdata[n]) == [3, 0]
    )
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    with Store(store_dir) as store:
        own = [store.point(k, 3, 0)["asr_pct"] for k in (keys["1d"], keys["1d_b"])]
    family = next(d.value for d in at.dataframe if "direction" in d.value and "ASR %" in d.value)
    assert sorted(family["ASR %"].tolist()) == sorted(round(v, 1) for v in own)
    assert any("mean of 2 directions" in i.value and f"ASR {np.mean(own):.1f}%" in i.value for i in at.info)
    assert mean_y[3] == pytest.approx(np.mean(own))
    responses = next(d.value for d in at.dataframe if "response" in d.value)
    assert set(responses["direction"]) == {"seed 0", "seed 1"}


def test_the_url_opens_the_view_it_names(matrix_env):
    store_dir, keys = matrix_env
    at = open_page()
    at.switch_page("views/inspector.py")
    at.query_params["scan"] = keys["2d"][:12]
    at.query_params["i"] = "2"
    at.query_params["j"] = "1"
    at.query_params["show"] = "refusals"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert _shown_point(at) == (keys["2d"], 2, 1) and at.radio(key="insp_filter").value == "refusals"
    at.selectbox(key="inspector_scan").set_value(keys["1d"]).run()
    assert at.query_params["scan"] == [keys["1d"][:12]] or at.query_params["scan"] == keys["1d"][:12]


def test_compare_calls_a_benign_evaluation_answered_not_an_asr(matrix_env):
    """Issue 23: Compare plotted a benign-set evaluation as an "ASR" dot; on the benign set a
    "success" is an answer, and its complement the over-refusal."""
    _, keys = matrix_env
    at = open_page("compare")
    at.multiselect(key="compare_scans").set_value([keys["eval"], keys["benign"]]).run()
    assert not at.exception
    names = [t.get("name", "") for t in chart_spec(at)["data"]]
    assert sum(n.endswith(": ASR") for n in names) == 1
    assert sum(n.endswith(": answered (benign set)") for n in names) == 1
    table = at.dataframe[0].value
    assert "None" not in table.astype(str).to_string() and "nan" not in table.astype(str).to_string()
