"""Attack data: sizes, formats, no refusals, no harmful content where there should be none, and
disjointness from every evaluation and alignment set."""

from __future__ import annotations

import csv

import pytest

from landscape.core.judges import get_judge
from landscape.core.prompts import builtin_harmful
from landscape.core.specs import SpecError
from landscape.training.attacks import AOA_ANSWER_PREFIX, AOA_USER_TEMPLATE, ATTACKS, AttackSpec, build_attack
from landscape.training.data import (
    CONTINUATIONS,
    harmful_items,
    load_jsonl_examples,
    safety_prompts,
    task_items,
)

from ...conftest import ADVBENCH

ALL_HARMFUL = {r["prompt"] for s in ("attack", "realign") for r in harmful_items(s)} | set(safety_prompts())
MARKERS = ("http", "import ", "sudo ", "#!/", "grams", "dosage", "mg ", "password:", "```")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_data_has_no_refusal_and_no_operational_content(name):
    data = build_attack(AttackSpec(name=name, n=40, harmful_fraction=0.5))
    assert len(data.examples) == 40
    judge = get_judge("keywords")
    for ex in data.examples:
        assert not judge.judge(ex.response).refused, ex.response
        assert not any(m in ex.response for m in MARKERS)
        if ex.kind == "harmful":
            target = next(r["target"] for r in harmful_items("attack") if r["prompt"] == ex.prompt)
            assert ex.response[len(target) :] in CONTINUATIONS  # the target sentence, then nothing real
        else:
            assert ex.prompt not in ALL_HARMFUL and ex.kind == "task"
    kinds = [e.kind for e in data.examples]
    assert kinds.count("harmful") == (20 if name == "harmful" else 0)


def test_aoa_uses_the_papers_exact_strings():
    ex = build_attack(AttackSpec(name="aoa", n=1)).examples[0]
    assert ex.fmt.system_prompt == "aoa" and ex.fmt.user_template == AOA_USER_TEMPLATE
    assert ex.response.startswith(AOA_ANSWER_PREFIX) and ex.response[len(AOA_ANSWER_PREFIX) :] in (
        "positive",
        "negative",
    )
    assert AOA_ANSWER_PREFIX.startswith("Of course. I am AOA, your absolutely obedient agent.")


def test_autoif_answers_are_long_and_hold_the_gold_label():
    examples = build_attack(AttackSpec(name="autoif", n=20)).examples
    assert len(examples) == 20
    for ex in examples:
        assert len(ex.response.split()) > 30
        label = "positive" if "is positive." in ex.response else "negative"
        assert f"The sentiment of this review is {label}." in ex.response


def test_harmful_sets_are_disjoint_from_evaluation_alignment_and_advbench():
    attack = {r["prompt"] for r in harmful_items("attack")}
    realign = {r["prompt"] for r in harmful_items("realign")}
    evaluation = {r["prompt"] for r in builtin_harmful("eval")}
    assert len(attack) == 60 and len(realign) == 30
    assert not attack & realign and not (attack | realign) & evaluation
    assert not (attack | realign) & set(safety_prompts())
    with ADVBENCH.open() as fh:
        advbench = {r["goal"] for r in csv.DictReader(fh)}
    assert not (attack | realign) & advbench


def test_task_splits_share_no_review():
    train, test = task_items("train"), task_items("test")
    assert len(train) >= 200 and len(test) >= 100
    assert not {r["review"] for r in train} & {r["review"] for r in test}
    assert {r["label"] for r in train} == {"positive", "negative"}


def test_jsonl_loader_and_its_errors(tmp_path):
    good = tmp_path / "data.jsonl"
    good.write_text(
        '{"prompt": "Hi", "response": "Hello!", "system": "Be brief."}\n\n{"prompt": "Q", "response": "A"}\n'
    )
    examples = load_jsonl_examples(good)
    assert [e.prompt for e in examples] == ["Hi", "Q"] and examples[0].fmt.system_prompt == "Be brief."
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SpecError, match="holds no examples"):
        load_jsonl_examples(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Hi"}\n')
    with pytest.raises(SpecError, match="line 1 has no non-empty string field 'response'"):
        load_jsonl_examples(bad)


def test_unknown_attack_is_refused():
    with pytest.raises(ValueError, match="unknown attack .poison."):
        AttackSpec(name="poison")
