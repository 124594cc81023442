"""Alignment pipeline on a tiny model: response-only labels, training, saving, caching."""

from __future__ import annotations

import torch

from landscape.core.models import align_key, load_model
from landscape.core.specs import AlignSpec, ModelSpec, Runtime
from landscape.training.align import align_model, alignment_difference, build_examples
from landscape.training.finetune import length_buckets


def test_labels_cover_only_the_response(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = build_examples(tok, {"Write a poem.": "Roses are red."}, seed=0)
    assert len(examples) == 91
    for ids, labels in examples:
        assert len(ids) == len(labels)
        start = next(k for k, y in enumerate(labels) if y != -100)
        assert all(y == -100 for y in labels[:start]) and labels[start:] == ids[start:]
        answer = tok.decode(ids[start:])
        assert "<|im_start|>" not in answer and answer.endswith("<|im_end|>")


def test_length_buckets_cover_every_example_once():
    import random

    batches = length_buckets([5, 1, 9, 3, 7, 2, 8], 2, random.Random(0))
    assert sorted(k for b in batches for k in b) == list(range(7))
    assert all(len(b) <= 2 for b in batches)


def test_align_trains_saves_and_caches(store, tiny_model):
    spec = AlignSpec(
        base=ModelSpec(source=str(tiny_model)),
        epochs=2,
        learning_rate=1e-3,
        batch_size=16,
        distill_max_new_tokens=8,
    )
    first = align_model(spec, store, Runtime(progress=False), log=lambda m: None)
    assert not first.cached and first.epoch_losses[1] < first.epoch_losses[0]
    logged = []
    again = align_model(spec, store, Runtime(progress=False), log=logged.append)
    assert again.cached and again.path == first.path
    assert not any("differs" in m for m in logged)  # the same settings reuse it, silently
    # issue 23: another setting says in one line what differs from the stored one (before training)
    other = spec.model_copy(update={"epochs": 3})
    assert alignment_difference(other, store, align_key(other, store)) == (
        f"the store's aligned model {first.key[:6]} differs (epochs 2 → 3): aligning a new one"
    )
    base = load_model(ModelSpec(source=str(tiny_model)))
    aligned = load_model(ModelSpec(source=first.path))
    assert aligned.fingerprint != base.fingerprint
    w0 = base.model.model.layers[0].mlp.up_proj.weight
    assert not torch.equal(w0, aligned.model.model.layers[0].mlp.up_proj.weight)
