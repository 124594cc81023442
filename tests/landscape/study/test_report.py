"""CLI reports that compute: ``evaluate_models`` scans each model at the budget it is given."""

from __future__ import annotations

from landscape.core.specs import Runtime
from landscape.study.report import evaluate_models


def test_evaluate_models_decodes_with_the_budget_it_is_given(store, tiny_model, prompts_file):
    table = evaluate_models(
        store,
        Runtime(progress=False),
        lambda m: None,
        [str(tiny_model)],
        str(prompts_file),
        limit=2,
        benign_limit=2,
        max_new_tokens=5,
    )
    assert str(tiny_model)[-20:] in table
    scans = store.list_scans()
    assert len(scans) == 2  # harmful and benign
    for s in scans:
        assert s["spec"]["generation"]["max_new_tokens"] == 5
        for row in store.point_responses(s["key"], 0, 0):
            assert row["tokens"] <= 5
