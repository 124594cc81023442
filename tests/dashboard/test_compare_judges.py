"""The Compare page's judge agreement table for a scan and its rejudge."""

from __future__ import annotations

from cache import Store
from landscape.core.specs import JudgeSpec
from landscape.engine.rejudge import rejudge_scan

from .conftest import copy_store
from .test_pages import open_page


def test_compare_shows_judge_agreement_of_a_rejudge(filled_store, tmp_path, monkeypatch):
    src, keys = filled_store
    root = copy_store(src, tmp_path / "store")
    with Store(root) as store:
        derived = rejudge_scan(keys["1d"], JudgeSpec(name="prefix"), store, log=lambda m: None).key
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(root))
    at = open_page("compare")
    at.multiselect(key="compare_scans").set_value([keys["1d"], derived]).run()
    assert not at.exception
    assert len(at.dataframe) == 2  # the metrics table, then the agreement table
    table = at.dataframe[1].value
    assert len(table) == 5 + 1  # five points and the pooled row
    assert set(table.columns) >= {"alpha", "n", "apart", "disagree %", "κ"}
    assert table["n"].iloc[-1] == 5 * 2  # two harmful prompts a point (benign rows left out)
    # issue 23: a rejudged scan was named exactly like its original in the picker and legends
    names = at.multiselect(key="compare_scans").format_func
    original, rejudged = names(keys["1d"]), names(derived)
    assert "(rejudge)" in rejudged and "prefix" in rejudged and "(rejudge)" not in original
    assert rejudged.split(" · ", 1)[1] != original.split(" · ", 1)[1]
    at.multiselect(key="compare_scans").set_value([keys["1d"], keys["1d_b"]]).run()
    assert any("No two of these scans judge the same responses" in i.value for i in at.info)


def test_inspector_shows_rows_without_a_verdict(filled_store, tmp_path, monkeypatch):
    src, keys = filled_store
    root = copy_store(src, tmp_path / "store")
    with Store(root) as store:
        for i in range(5):  # every point's first row loses its verdict
            rows = store.point_responses(keys["1d"], i, 0)
            rows[0].update(refused=None, apart="unparsed", reason="unparsed guard output 'maybe'")
            store.put_point(keys["1d"], i, 0, store.point(keys["1d"], i, 0), rows)
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(root))
    at = open_page("inspector")
    at.selectbox(key="inspector_scan").set_value(keys["1d"]).run()
    assert not at.exception
    assert at.dataframe[0].value["verdict"].str.startswith("no verdict").sum() == 1
    for choice in ("successes", "refusals"):
        at.radio(key="insp_filter").set_value(choice).run()
        assert not at.exception and not at.dataframe[0].value["verdict"].str.startswith("no verdict").any()
