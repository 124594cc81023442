"""Model loading, fingerprints, saving, adapters and the user errors around them."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch

from landscape.core.models import ModelError, load_model, model_fingerprint, save_model
from landscape.core.specs import ModelSpec

from ...conftest import make_tiny_model


def test_fingerprint_follows_weights_not_path(tiny_model, tmp_path, tokenizer_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert model_fingerprint(ModelSpec(source=str(copy))) == model_fingerprint(
        ModelSpec(source=str(tiny_model))
    )
    other = make_tiny_model(tmp_path / "other", tokenizer_dir, seed=7)
    assert model_fingerprint(ModelSpec(source=str(other))) != model_fingerprint(
        ModelSpec(source=str(tiny_model))
    )


def test_save_and_reload_round_trip(tiny_model, tmp_path):
    lm = load_model(ModelSpec(source=str(tiny_model)))
    save_model(lm.model, lm.tokenizer, tmp_path / "saved")
    again = load_model(ModelSpec(source=str(tmp_path / "saved")))
    for (n, a), (_, b) in zip(lm.model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    assert again.model.config.tie_word_embeddings
    assert again.tokenizer.padding_side == "left"


def test_lora_adapter_is_merged_and_fingerprinted(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    lm = load_model(ModelSpec(source=str(tiny_model)))
    peft_model = get_peft_model(
        lm.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    base = load_model(ModelSpec(source=str(tiny_model)))
    merged = load_model(ModelSpec(source=str(tiny_model), adapter=str(tmp_path / "adapter")))
    q0 = base.model.model.layers[0].self_attn.q_proj.weight
    q1 = merged.model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q0, q1)
    assert merged.fingerprint != base.fingerprint


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "model path not found"),
        (lambda p: p.mkdir(), "no config.json"),
        (
            lambda p: (
                p.mkdir(),
                (p / "config.json").write_text(json.dumps({"architectures": ["BertModel"]})),
            ),
            "not a causal language model",
        ),
        (
            lambda p: (
                p.mkdir(),
                (p / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]})),
            ),
            "no .safetensors",
        ),
        (lambda p: p.write_text("x"), "neither a model directory nor a .gguf"),
    ],
)
def test_bad_model_sources_are_named(tmp_path, setup, message):
    path = tmp_path / "m"
    setup(path)
    with pytest.raises(ModelError, match=message):
        model_fingerprint(ModelSpec(source=str(path)))


def test_aligned_alias_without_alignment_is_a_clear_error(store):
    with pytest.raises(ModelError, match="landscape align"):
        model_fingerprint(ModelSpec(source="aligned"), store)


ADAPTER_SCRIPT = """
import hashlib, sys
from pathlib import Path
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from landscape.core.models import save_adapter
cfg = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=2)
model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=2, target_modules=["q_proj", "v_proj", "k_proj", "o_proj"]))
save_adapter(model, Path(sys.argv[1]))
print(hashlib.sha256((Path(sys.argv[1]) / "adapter_config.json").read_bytes()).hexdigest())
"""


def test_a_saved_adapter_is_the_same_file_in_every_process(tmp_path):
    """peft writes target_modules from a set (order by string-hash seed; seeds 1 and 2 differ for
    these four): the adapter's fingerprint, and so every key downstream, must not depend on it."""
    import subprocess
    import sys

    from ...conftest import ROOT

    digests = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        out = subprocess.run(
            [sys.executable, "-c", ADAPTER_SCRIPT, str(tmp_path / seed)],
            capture_output=True, text=True, env=env, timeout=300, check=True,
        )  # fmt: skip
        digests.add(out.stdout.split()[-1])
    assert len(digests) == 1


def test_a_model_is_addressed_by_the_readable_name_it_is_listed_under(tmp_path, tiny_model):
    """Issue 23: `list` and captions name models `aligned b46521` / `fine-tuned 8791ca epoch 3`;
    the same names work as --model/--adapter, with the same key as the path."""
    import shutil

    from cache import Store
    from landscape.core.format import model_name
    from landscape.core.models import ModelError, model_fingerprint, readable_path, resolve_source

    with Store(tmp_path / "s") as store:
        key = "b46521" + "0" * 58
        aligned = store.root / "artifacts" / "models" / key
        shutil.copytree(tiny_model, aligned)
        (store.root / "artifacts" / "finetunes" / ("8791ca" + "1" * 58) / "epoch_3").mkdir(parents=True)
        name = model_name({"source": str(aligned)})
        assert name == "aligned b46521" and resolve_source(name, store) == aligned
        assert readable_path("fine-tuned 8791ca epoch 3", store).name == "epoch_3"
        assert model_fingerprint(ModelSpec(source=name), store) == model_fingerprint(
            ModelSpec(source=str(aligned)), store
        )
        for bad, says in (
            ("fine-tuned 8791ca epoch 9", "no checkpoint epoch_9 (the run has epoch 3)"),
            ("aligned ffff", "no aligned model ffff"),
        ):
            with pytest.raises(ModelError, match=re.escape(says)):
                readable_path(bad, store)
        assert readable_path("smollm2-135m-instruct", store) is None
