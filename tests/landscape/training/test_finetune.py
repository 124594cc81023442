"""Fine-tuning: response-only loss, per-epoch checkpoints, caching, LoRA and full, on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from landscape.core.models import ModelError, load_model
from landscape.core.specs import FormatSpec, ModelSpec, Runtime
from landscape.training.attacks import AttackSpec, build_attack
from landscape.training.data import Example, render, render_all
from landscape.training.finetune import batch_tensors, checkpoint_model, finetune, response_loss
from landscape.training.specs import FinetuneSpec, LoraSpec

RT = Runtime(progress=False)
SMALL_LORA = LoraSpec(r=2, alpha=4, targets=("q_proj", "v_proj"))


def test_labels_cover_only_the_answer(tiny_model):
    lm = load_model(ModelSpec(source=str(tiny_model)))
    ex = Example("Is this review positive?", "positive", FormatSpec())
    ids, labels = render(lm.tokenizer, ex)
    answer_start = next(k for k, v in enumerate(labels) if v != -100)
    assert all(v == -100 for v in labels[:answer_start])
    assert labels[answer_start:] == ids[answer_start:]
    answer = lm.tokenizer.decode(ids[answer_start:])
    assert answer.startswith("positive") and answer.rstrip().endswith("<|im_end|>")
    assert "Is this review positive?" in lm.tokenizer.decode(ids[:answer_start])


def test_sliced_head_loss_equals_the_full_loss(tiny_model):
    lm = load_model(ModelSpec(source=str(tiny_model)))
    data = build_attack(AttackSpec(name="harmful", n=4))
    ids, mask, labels = batch_tensors(render_all(lm.tokenizer, data.examples), lm.tokenizer.pad_token_id, 512)
    ours = response_loss(lm.model, ids, mask, labels)
    reference = lm.model(input_ids=ids, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_per_example_loss_weighs_every_example_equally(tiny_model):
    """'example' averaging = the mean of each example's own loss (one-word and long answers alike)."""
    lm = load_model(ModelSpec(source=str(tiny_model)))
    data = build_attack(AttackSpec(name="harmful", n=4, harmful_fraction=0.5)).examples
    rendered = render_all(lm.tokenizer, data)
    assert len({sum(v != -100 for v in labels) for _, labels in rendered}) > 1  # unequal answer lengths
    pad = lm.tokenizer.pad_token_id
    alone = [response_loss(lm.model, *batch_tensors([r], pad, 512)) for r in rendered]
    batched = response_loss(lm.model, *batch_tensors(rendered, pad, 512), reduction="example")
    torch.testing.assert_close(batched, torch.stack(alone).mean(), rtol=1e-4, atol=1e-5)
    token_mean = response_loss(lm.model, *batch_tensors(rendered, pad, 512))
    assert not torch.allclose(batched, token_mean)


def test_loss_average_enters_the_key_only_when_changed():
    from landscape.training.finetune import finetune_key

    args = ("fp", "float32", "data")
    token = FinetuneSpec()
    assert "loss_average" not in token.key_dump()  # fine-tunes cached before the field stay valid
    assert finetune_key(*args, token, None) != finetune_key(*args, FinetuneSpec(loss_average="example"), None)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_checkpoint_per_epoch_and_rerun_from_the_store(tiny_model, store, method):
    base = ModelSpec(source=str(tiny_model))
    examples = build_attack(AttackSpec(name="benign", n=6)).examples
    spec = FinetuneSpec(method=method, lora=SMALL_LORA, epochs=2, batch_size=3, learning_rate=1e-2)
    rec = finetune(base, examples, spec, store, RT, log=lambda m: None)
    assert len(rec.checkpoints) == 2 and len(rec.epoch_losses) == 2
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    for path in rec.checkpoints:
        assert (Path(path) / weights).is_file()
    assert rec.epoch_losses[1] < rec.epoch_losses[0]
    final = load_model(checkpoint_model(base, rec), store=store).model
    first = load_model(checkpoint_model(base, rec, 1), store=store).model
    theta0 = load_model(base).model
    name = "model.layers.0.self_attn.q_proj.weight"
    p_final, p_first, p_0 = (dict(m.named_parameters())[name] for m in (final, first, theta0))
    assert not torch.equal(p_final, p_0) and not torch.equal(p_final, p_first)
    again = finetune(base, examples, spec, store, RT, log=lambda m: pytest.fail(m))
    assert again.key == rec.key and again.elapsed_s == rec.elapsed_s


def test_unknown_lora_target_is_a_one_line_error(tiny_model, store):
    spec = FinetuneSpec(lora=LoraSpec(targets=("nope_proj",)), epochs=1)
    examples = build_attack(AttackSpec(name="benign", n=2)).examples
    with pytest.raises(ModelError, match="'nope_proj' does not exist"):
        finetune(ModelSpec(source=str(tiny_model)), examples, spec, store, RT, log=lambda m: None)


RACE = """
import sys
from cache import Store
from landscape.core.specs import ModelSpec, Runtime
from landscape.training.attacks import AttackSpec, build_attack
from landscape.training.finetune import finetune
from landscape.training.specs import FinetuneSpec, LoraSpec

store, model, go = sys.argv[1], sys.argv[2], sys.argv[3]
import os, time
while not os.path.exists(go):  # both processes start training at the same moment
    time.sleep(0.01)
spec = FinetuneSpec(lora=LoraSpec(r=2, alpha=4, targets=("q_proj", "v_proj")), epochs=3, batch_size=2)
with Store(store) as s:
    data = build_attack(AttackSpec(name="harmful", n=8), s)
    res = finetune(ModelSpec(source=model), list(data.examples), spec, s, Runtime(progress=False), log=print)
print("KEY", res.key)
"""


def test_two_processes_never_train_the_same_fine_tune_twice(tiny_model, tmp_path):
    """The store's lease: the second process waits for the first's fine-tune and reads it (without
    the lease both trained it and the second commit was thrown away)."""
    import subprocess
    import sys

    from ...conftest import ROOT

    script, go = tmp_path / "race.py", tmp_path / "go"
    script.write_text(RACE)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "store"), str(tiny_model), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    import time

    time.sleep(3)  # both imported torch and wait at the gate
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    trained = [o[0].count("fine-tuning (lora") for o in outs]
    assert sorted(trained) == [0, 1], outs
    waited = outs[trained.index(0)][0]
    assert "is being computed by" in waited and "lease free" in waited, waited
    keys = {line for o in outs for line in o[0].splitlines() if line.startswith("KEY")}
    assert len(keys) == 1
