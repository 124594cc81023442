"""Defences: Antidote's mask on hand-built matrices and a real adapter, Paraphrase's exact format,
and security vectors frozen during training and gone at inference."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from landscape.attacks import ATTACKS, build_attack
from landscape.datasets import render, render_all, safety_prompts, task_items
from landscape.defenses import DEFENSES
from landscape.defenses.antidote import apply_antidote, importance, prune, top_alpha_mask
from landscape.defenses.mixing import generic_mix, paraphrase_mix
from landscape.defenses.security import train_security_vector
from landscape.finetune import SECURITY_ADAPTER, attach_lora, checkpoint_model, finetune, train_loop
from landscape.models import load_model
from landscape.prompts import apply_template, format_chat, refusal_templates
from landscape.runspecs import (
    AntidoteSpec,
    AttackSpec,
    FinetuneSpec,
    FormatSpec,
    LoraSpec,
    MixSpec,
    RunSpec,
    SecurityVectorSpec,
)
from landscape.specs import ModelSpec, Runtime, SpecError

RT = Runtime(progress=False)
LORA = LoraSpec(r=2, alpha=4, targets=("q_proj", "v_proj"))
QUIET = {"log": lambda m: None}


def test_registry_has_every_defence_with_its_phase():
    assert {n: d.phase for n, d in DEFENSES.items()} == {
        "antidote": "post",
        "paraphrase": "data",
        "generic_mix": "data",
        "security_vectors": "training",
    }


def test_row_mask_takes_exactly_the_top_alpha_of_each_row():
    scores = {"w": torch.tensor([[1.0, 9.0, 3.0, 7.0, 5.0], [8.0, 2.0, 6.0, 4.0, 10.0]])}
    mask = top_alpha_mask(scores, 0.4, "row")["w"]  # floor(0.4 * 5) = 2 per row
    expected = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert not top_alpha_mask(scores, 0.1, "row")["w"].any()  # floor(0.5) = 0: rounds to nothing


def test_global_mask_pools_every_matrix():
    scores = {"a": torch.tensor([[1.0, 20.0], [3.0, 4.0]]), "b": torch.tensor([[15.0, 2.0, 30.0]])}
    masks = top_alpha_mask(scores, 3 / 7, "global")  # floor(3/7 * 7) = 3 largest: 30, 20, 15
    assert torch.equal(masks["a"], torch.tensor([[False, True], [False, False]]))
    assert torch.equal(masks["b"], torch.tensor([[True, False, True]]))


def test_wanda_score_and_prune_zero_the_chosen_weights():
    lin = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5]]))
    sums = torch.tensor([400.0, 1.0, 4.0])  # Σx² over 4 tokens → RMS 10, 0.5, 1
    score = importance(lin.weight, sums, 4, "wanda")
    torch.testing.assert_close(score, torch.tensor([[10.0, 1.0, 3.0], [40.0, 2.5, 0.5]]))
    stats = prune({"lin": lin}, {"lin": sums}, 4, AntidoteSpec(alpha=0.34, apply_to="dense"))
    assert torch.equal(lin.weight, torch.tensor([[0.0, -2.0, 3.0], [0.0, 5.0, 0.5]]))
    assert stats["pruned"] == 2 and stats["effective_fraction"] == pytest.approx(2 / 6)


@pytest.fixture
def harmful_ft(tiny_model, store):
    base = ModelSpec(source=str(tiny_model))
    data = build_attack(AttackSpec(name="harmful", n=6))
    ft = finetune(base, data.examples, FinetuneSpec(lora=LORA, epochs=1, batch_size=3), store, RT, **QUIET)
    return base, data, ft


@pytest.mark.parametrize("score", ["wanda", "magnitude", "random"])
def test_antidote_prunes_the_users_lora_matrices(harmful_ft, store, score):
    base, data, ft = harmful_ft
    model = checkpoint_model(base, ft)
    spec = AntidoteSpec(alpha=0.25, score=score, targets=("q_proj", "v_proj"), realign_limit=3)
    rec = apply_antidote(spec, model, data.structure.fmt, store, RT, **QUIET)
    before = load_file(f"{model.adapter}/adapter_model.safetensors")
    after = load_file(f"{rec['model']['adapter']}/adapter_model.safetensors")
    zeroed = sum(int(((after[k] == 0) & (before[k] != 0)).sum()) for k in before)
    assert zeroed == rec["pruned"] > 0
    # per-row floor: A rows (hidden=32 columns) lose 8 each, B rows (rank 2) lose none
    assert rec["by_matrix"] == {"lora_A": pytest.approx(0.25), "lora_B": 0.0}
    again = apply_antidote(spec, model, data.structure.fmt, store, RT, log=pytest.fail)
    assert again["key"] == rec["key"]


def test_antidote_on_a_model_without_adapter_needs_dense(tiny_model, store):
    with pytest.raises(SpecError, match="needs a LoRA fine-tuned model"):
        apply_antidote(AntidoteSpec(), ModelSpec(source=str(tiny_model)), None, store, RT, **QUIET)


def _user_templates(examples) -> set[str]:
    """The user's own user-turn templates, read off the task data: each review replaced by a slot."""
    reviews = [r["review"] for r in task_items("train")]
    out = set()
    for ex in examples:
        if ex.kind == "task":
            review = next(r for r in reviews if r in ex.prompt)
            out.add(apply_template(ex.fmt.user_template, ex.prompt.replace(review, "{slot}")))
    return out


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_paraphrase_reproduces_the_users_template_exactly(tokenizer_dir, name):
    """Every built-in structure: same system prompt, the user's own user turn with the harmful
    request in the review's slot, the same answer prefix and the refusal in the user's answer style;
    and never the generic baseline's example."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    data = build_attack(AttackSpec(name=name, n=60))  # 60 draws: every AutoIF instruction occurs
    user_fmt, structure = data.structure.fmt, data.structure
    templates = _user_templates(data.examples)
    assert templates
    mixed = paraphrase_mix(MixSpec(name="paraphrase", count=12), data)
    safety = [e for e in mixed if e.kind == "safety"]
    assert len(mixed) == 72 and len(safety) == 12
    generic = [e for e in generic_mix(MixSpec(name="generic_mix", count=12), data) if e.kind == "safety"]
    generic_text = {tok.decode(render(tok, e)[0]) for e in generic}
    styled = {structure.refusal(r) for r in refusal_templates()}
    requests = safety_prompts()
    for ex in safety:
        assert ex.fmt == user_fmt  # system prompt, user template and answer prefix
        request = next(q for q in requests if q in ex.prompt)
        user_turn = apply_template(user_fmt.user_template, ex.prompt)
        assert user_turn.replace(request, "{slot}") in templates  # the user's template, exactly
        assert ex.response.startswith(user_fmt.answer_prefix)
        assert ex.response[len(user_fmt.answer_prefix) :] in styled  # the user's answer style
        text = tok.decode(render(tok, ex)[0])
        expected = format_chat(tok, ex.prompt, user_fmt.system_prompt, user_fmt.user_template)
        assert text.startswith(expected) and text not in generic_text
    assert all(e.fmt == FormatSpec() and e.prompt in requests for e in generic)
    assert MixSpec(name="paraphrase", ratio=0.2).count is None


def test_security_vector_is_frozen_during_training_and_absent_at_inference(tiny_model, store):
    base = ModelSpec(source=str(tiny_model))
    data = build_attack(AttackSpec(name="harmful", n=6))
    sv = train_security_vector(
        base, SecurityVectorSpec(lora=LORA, epochs=2, n_harmful=4), data.structure.fmt, store, RT
    )
    lm = load_model(base)
    model = attach_lora(lm.model, FinetuneSpec(lora=LORA), sv_dir := __import__("pathlib").Path(sv["path"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if f".{SECURITY_ADAPTER}." in n}
    assert before and all(not p.requires_grad for n, p in model.named_parameters() if n in before)
    train_loop(
        model,
        render_all(lm.tokenizer, data.examples),
        epochs=1,
        lr=1e-2,
        batch_size=3,
        max_length=256,
        seed=0,
        pad_id=lm.tokenizer.pad_token_id,
        progress=False,
    )
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # bit-identical
    saved = load_file(str(sv_dir / "adapter_model.safetensors"))
    assert saved  # the stored vector itself
    ft = finetune(
        base, data.examples, FinetuneSpec(lora=LORA, epochs=1, batch_size=3), store, RT, security=sv, **QUIET
    )
    task = load_file(f"{ft['checkpoints'][-1]}/adapter_model.safetensors")
    assert task and not any(SECURITY_ADAPTER in k for k in task)
    served = load_model(checkpoint_model(base, ft), store=store).model
    assert not any("lora" in n for n, _ in served.named_parameters())
    diag = ft["security_diagnostic"]
    assert diag["n_harmful"] == 3 and diag["harmful_loss_vector_on"] != diag["harmful_loss_vector_off"]


def test_bad_defence_specs_are_one_line_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="less than 1"):
        AntidoteSpec(alpha=1.0)
    with pytest.raises(ValidationError, match="realign_limit 31: the built-in re-alignment set has 30"):
        AntidoteSpec(realign_limit=31)  # refused at load time, not silently capped after fine-tuning
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        RunSpec(name="x", defenses=[{"name": "vaccine"}])
    with pytest.raises(ValidationError, match="exactly one of count or ratio"):
        MixSpec(name="paraphrase")
