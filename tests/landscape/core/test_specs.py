"""Specs validate on construction and hash only their identity fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from landscape.core.specs import AxisSpec, DirectionSpec, JudgeSpec, ModelSpec, ScanSpec, spec_hash


def test_inverted_range_and_bad_counts_are_refused():
    with pytest.raises(ValidationError, match="inverted range"):
        AxisSpec(start=0.5, stop=-0.5, num=5)
    with pytest.raises(ValidationError):
        AxisSpec(num=0)


def test_unknown_preset_and_judge():
    with pytest.raises(ValidationError, match="unknown system-prompt preset"):
        ScanSpec(system_prompt="llama3")
    assert ScanSpec(system_prompt="You are a careful assistant.").system_prompt
    with pytest.raises(ValidationError, match="unknown judge"):
        JudgeSpec(name="gpt4")


def test_direction_and_grid_consistency():
    with pytest.raises(ValidationError, match="needs a beta axis"):
        ScanSpec(directions=(DirectionSpec(), DirectionSpec(seed=1)))
    with pytest.raises(ValidationError, match="needs a target"):
        DirectionSpec(kind="interpolation")
    with pytest.raises(ValidationError, match="extra"):
        ScanSpec(colour="red")
    assert ScanSpec(directions=(), alphas=AxisSpec(start=0, stop=0, num=1)).kind == "eval"


def test_hash_is_stable_and_identity_only():
    spec = ScanSpec(model=ModelSpec(source="/a/path"))
    other_path = ScanSpec(model=ModelSpec(source="/b/path"))
    ident = spec.identity("fp", "pp", (None,))
    assert ident == other_path.identity("fp", "pp", (None,))  # the path is not identity
    assert spec_hash("scan", ident) == spec_hash("scan", dict(ident))
    assert spec_hash("scan", ident) != spec_hash("scan", spec.identity("fp2", "pp", (None,)))
    assert len(spec_hash("scan", ident)) == 64


def test_specs_are_frozen():
    spec = ScanSpec()
    with pytest.raises(ValidationError):
        spec.system_prompt = "none"


def test_judgement_note_says_when_the_budget_is_under_the_papers():
    from landscape.core.specs import GenerationSpec, judgement_note

    short = judgement_note(GenerationSpec())
    assert short.startswith("judged on ≤32 new tokens, early stop") and "paper judges 512" in short
    full = judgement_note(GenerationSpec(max_new_tokens=512, early_stop=False))
    assert full == "judged on ≤512 new tokens"


def test_second_seed_and_point_spec_are_the_one_rule():
    from landscape.core.specs import (
        CapabilitySpec,
        FormatSpec,
        ModelSpec,
        PromptSpec,
        point_spec,
        second_seed,
    )
    from landscape.study.specs import EvalSpec

    assert second_seed(0) == 1000 and second_seed(7) == 1007
    ev = EvalSpec(max_new_tokens=9, judge="prefix", benign_limit=3)
    fmt = FormatSpec(system_prompt="none")
    model = ModelSpec(source="x")
    assert ev.point_spec(model, 5, capability=True, fmt=fmt) == point_spec(
        model, PromptSpec(limit=5), 9, "prefix", fmt, CapabilitySpec(benign_limit=3, nll=False)
    )
    one = point_spec(model, PromptSpec(source="builtin:benign", limit=2), 48)
    assert one.kind == "eval" and one.alphas.values() == [0.0] and one.capability is None
