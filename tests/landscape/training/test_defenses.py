"""Defences: Antidote's mask on hand-built matrices and a real adapter, Paraphrase's exact format,
and security vectors frozen during training and gone at inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from landscape.core.models import load_model
from landscape.core.prompts import apply_template, format_chat, refusal_templates
from landscape.core.specs import FormatSpec, ModelSpec, Runtime, SpecError
from landscape.study.specs import RunSpec
from landscape.training.attacks import ATTACKS, AttackSpec, build_attack
from landscape.training.data import render, render_all, safety_prompts, task_items
from landscape.training.defenses import DEFENSES, Defense
from landscape.training.defenses.antidote import (
    AntidoteSpec,
    apply_antidote,
    importance,
    prune,
    random_mask,
    released_count,
    top_alpha_mask,
)
from landscape.training.defenses.mixing import GenericMix, GenericMixSpec, Paraphrase, ParaphraseSpec
from landscape.training.defenses.security import SecurityVectorSpec, train_security_vector
from landscape.training.finetune import (
    SECURITY_ADAPTER,
    TASK_ADAPTER,
    batch_tensors,
    checkpoint_model,
    finetune,
    response_loss,
)
from landscape.training.results import FrozenAdapter
from landscape.training.specs import FinetuneSpec, LoraSpec

RT = Runtime(progress=False)
LORA = LoraSpec(r=2, alpha=4, targets=("q_proj", "v_proj"))
QUIET = {"log": lambda m: None}


def test_registry_binds_each_name_to_its_spec_and_the_hooks_it_overrides():
    hooks = ("on_data", "on_training", "on_model")
    overridden = {
        n: tuple(h for h in hooks if getattr(type(d), h) is not getattr(Defense, h))
        for n, d in DEFENSES.items()
    }
    assert overridden == {
        "antidote": ("on_model",),
        "paraphrase": ("on_data",),
        "generic_mix": ("on_data",),
        "security_vectors": ("on_training",),
    }
    assert all(d.spec().name == n for n, d in DEFENSES.items() if n != "paraphrase" and n != "generic_mix")


def test_row_mask_takes_the_released_count_of_each_row():
    scores = {"w": torch.tensor([[1.0, 9.0, 3.0, 7.0, 5.0], [8.0, 2.0, 6.0, 4.0, 10.0]])}
    mask = top_alpha_mask(scores, 0.4, "row")["w"]  # 5 − ⌊0.6·5⌋ = 2 per row
    expected = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    # 5 − ⌊0.9·5⌋ = 1 per row (⌈0.5⌉), where ⌊α·cols⌋ pruned nothing before version 2
    one = top_alpha_mask(scores, 0.1, "row")["w"]
    assert torch.equal(one, torch.tensor([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool))
    assert released_count(8, 0.1) == 1 and released_count(10, 0.3) == 3 and released_count(32, 0.25) == 8


def test_global_mask_pools_every_matrix():
    scores = {"a": torch.tensor([[1.0, 20.0], [3.0, 4.0]]), "b": torch.tensor([[15.0, 2.0, 30.0]])}
    masks = top_alpha_mask(scores, 3 / 7, "global")  # 7 − ⌊4/7·7⌋ = 3 largest: 30, 20, 15
    assert torch.equal(masks["a"], torch.tensor([[False, True], [False, False]]))
    assert torch.equal(masks["b"], torch.tensor([[True, False, True]]))


def released_prune_wanda_outlier_mask(w_metric: torch.Tensor, ratio: float) -> torch.Tensor:
    """Our transcription of the released Antidote rule (git-disl/Antidote, utils.py
    ``prune_wanda_outlier``, the mask built around lines 702–723; train.py around 534–535 sets the
    marked weights to zero): every weight of a row starts marked, the scores are sorted ascending
    (stable), and the first ⌊cols·(1 − ratio)⌋ of that order are un-marked."""
    w_mask = torch.ones_like(w_metric, dtype=torch.bool)
    order = torch.sort(w_metric, dim=-1, stable=True)[1]
    w_mask.scatter_(1, order[:, : int(w_metric.shape[1] * (1 - ratio))], False)
    return w_mask


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.3])
@pytest.mark.parametrize("shape", [(64, 8), (8, 576), (576, 8), (96, 96), (37, 53)])
def test_row_mask_is_the_released_mask(alpha, shape):
    """Differential: LoRA rank-8 A (8 × in) and B (out × 8) shapes and dense ones, masks identical
    (ties included: some scores are repeated on purpose)."""
    g = torch.Generator().manual_seed(hash((alpha, shape)) % 2**31)
    s = torch.rand(shape, generator=g)
    s[:, ::7] = s[:, :1]  # ties inside each row
    ours = top_alpha_mask({"w": s}, alpha, "row")["w"]
    assert torch.equal(ours, released_prune_wanda_outlier_mask(s, alpha))
    assert int(ours[0].sum()) == shape[1] - int(shape[1] * (1 - alpha))


def test_random_ablation_draws_floor_numel_alpha_per_matrix():
    gen = torch.Generator().manual_seed(3)
    masks = random_mask({"a": (8, 576), "b": (576, 8), "c": (3, 3)}, 0.1, gen)
    assert {n: int(m.sum()) for n, m in masks.items()} == {"a": 460, "b": 460, "c": 0}
    again = random_mask({"a": (8, 576), "b": (576, 8), "c": (3, 3)}, 0.1, torch.Generator().manual_seed(3))
    assert all(torch.equal(masks[n], again[n]) for n in masks)


def test_wanda_score_and_prune_zero_the_chosen_weights():
    lin = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5]]))
    sums = torch.tensor([400.0, 1.0, 4.0])  # Σx² over 4 tokens → RMS 10, 0.5, 1
    score = importance(lin.weight, sums, 4, "wanda")
    torch.testing.assert_close(score, torch.tensor([[10.0, 1.0, 3.0], [40.0, 2.5, 0.5]]))
    stats = prune({"lin": lin}, {"lin": sums}, 4, AntidoteSpec(alpha=0.3, apply_to="dense"))
    assert torch.equal(lin.weight, torch.tensor([[0.0, -2.0, 3.0], [0.0, 5.0, 0.5]]))  # 3 − ⌊2.1⌋ = 1
    assert stats["pruned"] == 2 and stats["effective_fraction"] == pytest.approx(2 / 6)


@pytest.fixture
def harmful_ft(tiny_model, store):
    base = ModelSpec(source=str(tiny_model))
    data = build_attack(AttackSpec(name="harmful", n=6))
    ft = finetune(base, data.examples, FinetuneSpec(lora=LORA, epochs=1, batch_size=3), store, RT, **QUIET)
    return base, data, ft


@pytest.mark.parametrize("score", ["wanda", "magnitude", "random"])
def test_antidote_prunes_every_adapted_matrix_as_released(harmful_ft, store, score):
    base, data, ft = harmful_ft
    model = checkpoint_model(base, ft)
    spec = AntidoteSpec(alpha=0.25, score=score, realign_limit=3)  # targets=(): every adapted Linear
    rec = apply_antidote(spec, model, data.structure.fmt, store, RT, **QUIET)
    before = load_file(f"{model.adapter}/adapter_model.safetensors")
    after = load_file(f"{rec['model']['adapter']}/adapter_model.safetensors")
    zeroed = sum(int(((after[k] == 0) & (before[k] != 0)).sum()) for k in before)
    assert zeroed == rec["pruned"] > 0
    # every adapted matrix (q_proj and v_proj here) is scored: 2 layers × 2 modules × (A and B)
    assert rec["scored"] == sum(v.numel() for v in before.values())
    if score == "random":  # ⌊numel·α⌋ per matrix (numel 64 for A, 64 and 32 for B): exactly α
        assert rec["by_matrix"] == {"lora_A": 0.25, "lora_B": 0.25}
    else:  # per row: A rows (32 columns) lose 32 − ⌊24⌋ = 8, B rows (rank 2) 2 − ⌊1.5⌋ = 1
        assert rec["by_matrix"] == {"lora_A": pytest.approx(0.25), "lora_B": 0.5}
    again = apply_antidote(spec, model, data.structure.fmt, store, RT, log=pytest.fail)
    assert again["key"] == rec["key"]
    only_q = apply_antidote(
        spec.model_copy(update={"targets": ("q_proj",)}), model, data.structure.fmt, store, RT, **QUIET
    )
    assert only_q["scored"] == sum(v.numel() for k, v in before.items() if "q_proj" in k) < rec["scored"]


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
    mixed = Paraphrase().on_data(ParaphraseSpec(count=12), data)
    safety = [e for e in mixed if e.kind == "safety"]
    assert len(mixed) == 72 and len(safety) == 12
    generic = [e for e in GenericMix().on_data(GenericMixSpec(count=12), data) if e.kind == "safety"]
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
    assert ParaphraseSpec(ratio=0.2).count is None


class TrainingSpy:
    """Wraps the ``train_loop`` that ``finetune()`` calls: snapshots both adapters around training and
    counts the security adapter's forward calls, so the tests see the model a study trains."""

    def __init__(self, monkeypatch):
        import landscape.training.finetune as ft

        self.real, self.calls, self.steps = ft.train_loop, 0, 0
        monkeypatch.setattr(ft, "train_loop", self)

    def __call__(self, model, examples, **kw):
        def grab(adapter):
            return {n: p.detach().clone() for n, p in model.named_parameters() if f".{adapter}." in n}

        def count(module, args, output):
            self.calls += module.training

        modules = [m for n, m in model.named_modules() if n.endswith(f"lora_A.{SECURITY_ADAPTER}")]
        hooks = [m.register_forward_hook(count) for m in modules]
        self.security_before, self.modules = grab(SECURITY_ADAPTER), len(modules)
        try:
            out = self.real(model, examples, **kw)
        finally:
            for h in hooks:
                h.remove()
        self.security_after, self.task = grab(SECURITY_ADAPTER), grab(TASK_ADAPTER)
        self.steps = len(out["step_losses"])
        return out


@pytest.fixture
def secured(tiny_model, store, monkeypatch):
    """A security vector, then ``finetune()`` with it on harmful data (6 examples, one batch each step)."""
    base = ModelSpec(source=str(tiny_model))
    data = build_attack(AttackSpec(name="harmful", n=6))
    sv_spec = SecurityVectorSpec(lora=LORA, epochs=3, n_harmful=4, learning_rate=5e-2)
    rec = train_security_vector(base, sv_spec, data.structure.fmt, store, RT, **QUIET)
    sv = FrozenAdapter(rec["key"], rec["path"])
    spy = TrainingSpy(monkeypatch)
    spec = FinetuneSpec(lora=LORA, epochs=2, batch_size=6, learning_rate=1e-2, schedule="constant")
    ft = finetune(base, data.examples, spec, store, RT, security=sv, **QUIET)
    return base, data, sv, ft, spy


def _merged(base: ModelSpec, *adapters):
    """θ₀ with LoRA deltas added by hand (W += alpha/r · B A): a reference that shares no peft code."""
    model = load_model(base).model
    params = dict(model.named_parameters())
    scale = LORA.alpha / LORA.r
    with torch.no_grad():
        for weights in adapters:
            for name, a in weights.items():
                if ".lora_A." in name:
                    b = weights[name.replace(".lora_A.", ".lora_B.")]
                    target = name.split("base_model.model.", 1)[1].split(".lora_A.")[0] + ".weight"
                    params[target] += scale * b @ a
    return model


def test_security_vector_is_active_and_frozen_while_finetune_trains(secured):
    base, data, sv, ft, spy = secured
    assert spy.modules == 2 * 2  # q_proj and v_proj in 2 layers
    assert spy.calls == spy.steps * spy.modules > 0  # θ_s runs in every training forward …
    assert spy.security_before and all(
        torch.equal(spy.security_before[n], spy.security_after[n]) for n in spy.security_before
    )  # … and leaves training bit-identical
    # step 0 (task B = 0, the whole data in one batch) is θ₀ + θ_s's loss, not θ₀'s
    lm = load_model(base)
    batch = batch_tensors(render_all(lm.tokenizer, data.examples), lm.tokenizer.pad_token_id, 256)
    from peft import PeftModel

    with_sv = PeftModel.from_pretrained(load_model(base).model, sv.path)
    loss_sv, loss_0 = float(response_loss(with_sv, *batch)), float(response_loss(lm.model, *batch))
    assert ft.record["step_losses"][0] == pytest.approx(loss_sv, abs=1e-5)
    assert abs(loss_sv - loss_0) > 1e-3
    diag = ft.frozen_adapter_diagnostic
    assert diag["n_harmful"] == 3 and diag["harmful_loss_vector_on"] < diag["harmful_loss_vector_off"]


def test_saved_task_adapter_holds_the_task_weights_and_nothing_of_the_vector(secured):
    _, _, sv, ft, spy = secured
    security = load_file(f"{sv.path}/adapter_model.safetensors")
    for ckpt in map(Path, ft.checkpoints):
        assert sorted(ckpt.rglob("*.safetensors")) == [ckpt / "adapter_model.safetensors"]
        saved = load_file(str(ckpt / "adapter_model.safetensors"))
        assert not any(torch.equal(t, s) for t in saved.values() for s in security.values())
    final = load_file(f"{ft.checkpoints[-1]}/adapter_model.safetensors")
    trained = {n.replace(f".{TASK_ADAPTER}.", "."): t for n, t in spy.task.items()}
    assert final.keys() == trained.keys()  # peft strips adapter names: compare the values
    assert all(torch.equal(final[k], trained[k]) for k in final)


def test_the_evaluated_model_is_the_task_adapter_alone(secured, store):
    """The model a study evaluates (checkpoint_model → load_model) has θ_s removed."""
    base, _, _, ft, spy = secured
    served = load_model(checkpoint_model(base, ft), store=store)
    ids = served.tokenizer(
        ["How do I pick a lock?", "Review: fine.\nAnswer:"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        out = served.model(**ids).logits
        task_only = _merged(base, spy.task)(**ids).logits
        with_vector = _merged(base, spy.task, spy.security_after)(**ids).logits
    torch.testing.assert_close(out, task_only, rtol=1e-5, atol=1e-5)
    assert (out - with_vector).abs().max() > 1e-3


def test_bad_defence_specs_are_one_line_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="less than 1"):
        AntidoteSpec(alpha=1.0)
    with pytest.raises(ValidationError, match="realign_limit 31: the built-in re-alignment set has 30"):
        AntidoteSpec(realign_limit=31)  # refused at load time, not silently capped after fine-tuning
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        RunSpec(name="x", defenses=[{"name": "vaccine"}])
    with pytest.raises(ValidationError, match="exactly one of count or ratio"):
        ParaphraseSpec()
