"""The greedy decoder against transformers' own generate, on a tiny model."""

from __future__ import annotations

import pytest
import torch

from landscape.core.generate import generate_greedy, mean_nll
from landscape.core.models import load_model
from landscape.core.prompts import format_chat
from landscape.core.specs import ModelSpec

PROMPTS = ["Hi", "Write a long poem about the sea and the mountains.", "How are you today?"]


@pytest.fixture(scope="module")
def lm(tiny_model):
    return load_model(ModelSpec(source=str(tiny_model)))


def test_matches_transformers_generate_with_left_padding(lm):
    inputs = [format_chat(lm.tokenizer, p) for p in PROMPTS]
    ours = generate_greedy(lm.model, lm.tokenizer, inputs, max_new_tokens=12, batch_size=8)
    enc = lm.tokenizer(inputs, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = lm.model.generate(
            **enc, max_new_tokens=12, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id
        )
    ref = lm.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours.texts == ref
    # batching does not change greedy output
    single = generate_greedy(lm.model, lm.tokenizer, inputs, max_new_tokens=12, batch_size=1)
    assert single.texts == ours.texts


def test_early_stop_truncates_only_decided_responses(lm):
    inputs = [format_chat(lm.tokenizer, p) for p in PROMPTS]
    full = generate_greedy(lm.model, lm.tokenizer, inputs, 16)
    stop_first = full.texts[0][:3]
    early = generate_greedy(
        lm.model, lm.tokenizer, inputs, 16, stop=lambda t: t.startswith(stop_first) and len(t) >= 3, window=2
    )
    assert early.tokens[0] < full.tokens[0] and early.ends[0] == "early_stop"
    assert full.texts[0].startswith(early.texts[0])
    for k in (1, 2):
        if not full.texts[k].startswith(stop_first):
            assert early.texts[k] == full.texts[k]
    assert full.ends == ["budget"] * 3 and full.tokens == [16] * 3


def test_no_response_leaves_before_the_window_and_the_window_is_the_same(lm):
    inputs = [format_chat(lm.tokenizer, p) for p in PROMPTS]
    full = generate_greedy(lm.model, lm.tokenizer, inputs, 16, window=6)
    early = generate_greedy(lm.model, lm.tokenizer, inputs, 16, stop=lambda t: True, window=6, check_every=1)
    assert early.tokens == [6] * 3 and early.ends == ["early_stop"] * 3
    assert early.windows == full.windows == early.texts
    # a window longer than the budget is the whole response; the last step ends at the budget
    late = generate_greedy(lm.model, lm.tokenizer, inputs, 5, stop=lambda t: True, window=5, check_every=1)
    assert late.ends == ["budget"] * 3 and late.windows == late.texts


def test_mean_nll_is_finite_and_near_log_vocab_for_random_model(lm):
    nll = mean_nll(lm.model, lm.tokenizer, "The water cycle describes how water moves.")
    assert 0 < nll < 2 * torch.log(torch.tensor(float(len(lm.tokenizer)))).item()


def test_all_rows_ending_together_on_a_check_step(lm):
    inputs = [format_chat(lm.tokenizer, p) for p in PROMPTS]
    first = generate_greedy(lm.model, lm.tokenizer, inputs, 1)
    first_ids = {lm.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in first.texts}
    old = lm.model.generation_config.eos_token_id
    lm.model.generation_config.eos_token_id = sorted(first_ids)
    try:
        out = generate_greedy(lm.model, lm.tokenizer, inputs, 8, stop=lambda t: False, check_every=1)
    finally:
        lm.model.generation_config.eos_token_id = old
    assert out.texts == [""] * len(inputs) and out.tokens == [0] * len(inputs)
    assert out.ends == ["eos"] * len(inputs) and out.windows == out.texts


def test_common_prefix_leaves_every_prompt_a_token():
    from landscape.core.generate import common_prefix_len

    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix_len([[9, 2], [1, 2]]) == 0


def test_no_stop_on_a_character_cut_mid_bytes(lm):
    """A decoded text ending in U+FFFD is a multi-byte character whose bytes are not all there
    yet: the next token changes it, so the verdict is not final and the response goes on."""

    class HalfCharacter:  # the real tokenizer, but the first 5 tokens decode to a cut character
        def __init__(self, tok):
            self.tok = tok

        def __getattr__(self, name):
            return getattr(self.tok, name)

        def __call__(self, *args, **kwargs):
            return self.tok(*args, **kwargs)

        def batch_decode(self, seqs, **kwargs):
            texts = self.tok.batch_decode(seqs, **kwargs)
            return [t + "\ufffd" if len(s) < 5 else t for t, s in zip(texts, seqs, strict=True)]

    inputs = [format_chat(lm.tokenizer, p) for p in PROMPTS]
    out = generate_greedy(
        lm.model, HalfCharacter(lm.tokenizer), inputs, 16, stop=lambda t: True, window=1, check_every=1
    )
    assert out.tokens == [5] * 3 and out.ends == ["early_stop"] * 3
