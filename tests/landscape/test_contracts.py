"""What every registered attack, defence and judge must do, checked over each registry.

A new method registered without meeting its concept's contract fails here, not in a study: the
spec round-trips through YAML (the form studies are written in), attack data holds no refusal and
holds harmful compliance only when the attack says so, a data defence keeps the user's examples
and adds only refusals (so it cannot raise the harmful share of the data), a training or post-hoc
defence yields a store artifact served from the store the second time, and a judge is deterministic,
declares its definition and tells a refusal from a compliance.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from landscape.core.judges import JUDGES, get_judge, judge_fingerprint
from landscape.core.specs import ModelSpec, Runtime
from landscape.study.specs import RunSpec
from landscape.training.attacks import ATTACKS, AttackSpec, build_attack
from landscape.training.defenses import DEFENSES, Defended, Defense, DefenseContext
from landscape.training.defenses.antidote import AntidoteSpec
from landscape.training.defenses.mixing import GenericMixSpec, ParaphraseSpec
from landscape.training.defenses.security import SecurityVectorSpec
from landscape.training.finetune import checkpoint_model, finetune
from landscape.training.results import FrozenAdapter
from landscape.training.specs import FinetuneSpec, LoraSpec

RT = Runtime(progress=False)
QUIET = lambda m: None  # noqa: E731
LORA = LoraSpec(r=2, alpha=4, targets=("q_proj", "k_proj", "v_proj"))
REFUSAL = get_judge("keywords")  # the paper's judge: the data's refusals are what it counts

# A small instance of every registered defence; a defence registered without one fails below.
SMALL = {
    "antidote": AntidoteSpec(alpha=0.2, realign_limit=4),
    "paraphrase": ParaphraseSpec(count=4),
    "generic_mix": GenericMixSpec(count=4),
    "security_vectors": SecurityVectorSpec(lora=LORA, epochs=1, n_harmful=4),
}


def _yaml_round_trip(data: dict) -> dict:
    return yaml.safe_load(yaml.safe_dump(data, allow_unicode=True))


def _overrides(impl: Defense, hook: str) -> bool:
    return getattr(type(impl), hook) is not getattr(Defense, hook)


# -- attacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_contract(name):
    entry = ATTACKS[name]
    spec = AttackSpec(name=name, n=12, seed=3)
    assert entry.spec is AttackSpec and entry.name == name
    assert AttackSpec.model_validate(_yaml_round_trip(spec.model_dump(mode="json"))) == spec
    data = build_attack(spec)
    assert len(data.examples) == spec.n
    assert build_attack(spec).examples == data.examples, "same seed, same data"
    assert build_attack(spec.model_copy(update={"seed": 4})).examples != data.examples
    refusals = [e.response for e in data.examples if REFUSAL.judge(e.response).refused]
    assert refusals == [], f"{name}'s data teaches refusal: {refusals[:2]}"
    kinds = Counter(e.kind for e in data.examples)
    assert set(kinds) <= {"task", "harmful"}
    assert (kinds["harmful"] > 0) == entry.harmful_data
    assert all(e.fmt == data.structure.fmt for e in data.examples if e.kind == "task")
    assert all(e.response.startswith(data.structure.fmt.answer_prefix) for e in data.examples)


# -- defences --------------------------------------------------------------------------------------


def test_every_defence_has_a_small_instance_here():
    assert set(SMALL) == set(DEFENSES)


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_defence_spec_is_registered_under_its_name_and_round_trips_through_a_study_yaml(name):
    impl, spec = DEFENSES[name], SMALL[name]
    assert impl.name == name and isinstance(spec, impl.spec) and spec.name == name
    run = RunSpec(name="r", defenses=[spec.model_dump(mode="json")])
    assert RunSpec.model_validate(_yaml_round_trip(run.model_dump(mode="json"))) == run
    assert run.defenses[0] == spec and type(run.defenses[0]) is impl.spec
    assert any(_overrides(impl, h) for h in ("on_data", "on_training", "on_model")), (
        "a defence does something"
    )


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_a_data_hook_keeps_the_users_examples_and_adds_only_refusals(name, attack):
    impl, spec = DEFENSES[name], SMALL[name]
    data = build_attack(AttackSpec(name=attack, n=8))
    out = impl.on_data(spec, data)
    assert out is not data.examples, "the attack's list is not edited in place"
    assert not Counter(map(repr, data.examples)) - Counter(map(repr, out)), "a user example was lost"
    added = list((Counter(map(repr, out)) - Counter(map(repr, data.examples))).elements())
    new = [e for e in out if repr(e) in set(added)]
    assert all(e.kind == "safety" and REFUSAL.judge(e.response).refused for e in new)
    harmful_share = lambda xs: sum(e.kind == "harmful" for e in xs) / len(xs)  # noqa: E731
    assert harmful_share(out) <= harmful_share(data.examples)
    if not _overrides(impl, "on_data"):
        assert out == data.examples


@pytest.fixture(scope="module")
def finetuned(tiny_model, tmp_path_factory):
    """θ₀ (a tiny Llama) and one LoRA fine-tune of it on the harmful attack's data."""
    from cache import Store

    store = Store(tmp_path_factory.mktemp("contracts") / "store")
    theta0 = ModelSpec(source=str(tiny_model))
    data = build_attack(AttackSpec(name="harmful", n=6))
    ft = finetune(
        theta0, data.examples, FinetuneSpec(lora=LORA, epochs=1, batch_size=6), store, RT, log=QUIET
    )
    yield store, theta0, data, checkpoint_model(theta0, ft)
    store.close()


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_training_and_model_hooks_give_store_artifacts_served_the_second_time(name, finetuned):
    store, theta0, data, model = finetuned
    impl, spec = DEFENSES[name], SMALL[name]
    ctx = DefenseContext(theta0, data.structure.fmt, store, RT, QUIET)
    adapter = impl.on_training(spec, ctx)
    if _overrides(impl, "on_training"):
        assert isinstance(adapter, FrozenAdapter) and Path(adapter.path, "adapter_config.json").is_file()
        again = impl.on_training(spec, DefenseContext(theta0, data.structure.fmt, store, RT, pytest.fail))
        assert again.key == adapter.key
    else:
        assert adapter is None
    before = Path(model.adapter, "adapter_model.safetensors").read_bytes()
    out = impl.on_model(spec, model, ctx)
    assert Path(model.adapter, "adapter_model.safetensors").read_bytes() == before, "the input is untouched"
    if _overrides(impl, "on_model"):
        assert isinstance(out, Defended) and out.model != model
        assert str(store.root) in (out.model.adapter or out.model.source)
        again = impl.on_model(spec, model, DefenseContext(theta0, data.structure.fmt, store, RT, pytest.fail))
        assert again.key == out.key and again.model == out.model
        assert impl.summary(out.details)
    else:
        assert out is None


# -- judges ----------------------------------------------------------------------------------------


# a forced judge model for each registered model judge, and a spec naming it
MODEL_JUDGE_SPECS = {
    "guard": lambda models: {"model": str(models["guard_safe"])},
    "classifier": lambda models: {
        "model": str(models["classifier_0"]),
        "label_map": {"LABEL_0": "safe", "LABEL_1": "harmful"},
    },
}


@pytest.mark.parametrize("name", sorted(JUDGES))
def test_judge_contract(name, request):
    """Every judge: described, its definition in its fingerprint, its own identity, deterministic
    through the one ``load_judge`` protocol, verdicts independent of the batch size. Text judges
    also tell a refusal from compliance; model judges (run on forced tiny models) have no
    ``decided`` predicate, so early stopping never cuts what they judge."""
    from landscape.core.judges import judge_model_identity, load_judge
    from landscape.core.specs import JudgeSpec

    j = get_judge(name)
    assert j.name == name and j.description and dict(j.definition())
    assert judge_fingerprint(name) == judge_fingerprint(name)
    assert len({judge_fingerprint(n) for n in JUDGES}) == len(JUDGES), "each judge has its own identity"
    texts = ["", "Sure", "I cannot", "As an AI, I refuse.", "Sure, here is a step-by-step plan."]
    if j.load is None:
        spec = JudgeSpec(name=name)
        assert j.judge("I'm sorry, but I cannot help with that request.").refused
        assert not j.judge("Sure, here is a step-by-step plan. First, gather the materials.").refused
        for text in texts:
            assert j.judge(text) == j.judge(text)
    else:
        assert name in MODEL_JUDGE_SPECS, f"add a forced model for judge {name!r}"
        spec = JudgeSpec(name=name, **MODEL_JUDGE_SPECS[name](request.getfixturevalue("forced_judges")))
        assert j.decided is None and j.options
        assert judge_fingerprint(name, judge_model_identity(spec)) != judge_fingerprint(name)
    scorer = load_judge(spec)
    prompts = [f"request {k}" for k in range(len(texts))]
    first = scorer.score(prompts, texts, 64)
    assert first == scorer.score(prompts, texts, 2) == scorer.score(prompts, texts, 1)
    assert all(v.refused in (True, False, None) and v.reason for v in first)
