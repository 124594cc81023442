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


def test_every_rate_says_over_how_many_prompts_and_tokens(store, tiny_model, prompts_file):
    """Issue 25: `demo` printed 10.0% over 50 benign prompts at 32 tokens and `align` 10.6% over 104
    at 48, neither with its n, and `align --eval-limit 2` ran all 104 benign prompts."""
    table = evaluate_models(
        store,
        Runtime(progress=False),
        lambda m: None,
        [str(tiny_model)],
        str(prompts_file),
        limit=2,
        max_new_tokens=3,
    )
    benign = next(s for s in store.list_scans() if s["spec"]["prompts"]["source"] == "builtin:benign")
    assert benign["spec"]["prompts"]["limit"] == 2  # the limit reaches the benign run too
    row = table.splitlines()[1]
    assert row.count("/2) [") == 3  # ASR, benign refusal, incoherent: k/n and a Wilson interval each
    assert "≤ 3 new tokens" in table
