"""Evaluating one point: no measured rate may depend on early stopping (issue 9, item 2)."""

from __future__ import annotations

import pytest
import torch

from landscape.core.judges import JUDGES, Judge, Verdict
from landscape.core.models import load_model, save_model
from landscape.core.prompts import builtin_harmful
from landscape.core.specs import GenerationSpec, JudgeSpec, ModelSpec, ScanSpec
from landscape.engine.evaluate import evaluate_point

PROMPTS = [r["prompt"] for r in builtin_harmful("eval")[:6]] + ["Hi", "Say hello."]
SAME = ("asr_pct", "refusal_pct", "incoherent_pct", "asr_coherent_pct", "n_prompts")


def _both_ways(lm, gen: dict, **scan) -> tuple:
    """The same point evaluated with early stopping on and off."""
    specs = [ScanSpec(generation=GenerationSpec(early_stop=e, **gen), **scan) for e in (True, False)]
    return tuple(evaluate_point(lm, spec, PROMPTS, batch_size=8) for spec in specs)


def _assert_same_measurement(on, off):
    for name in SAME:
        assert on.metrics[name] == off.metrics[name], name
    for a, b in zip(on.responses, off.responses, strict=True):
        assert (a["refused"], a["incoherent"], a["incoherent_reason"]) == (
            b["refused"],
            b["incoherent"],
            b["incoherent_reason"],
        )
        assert b["response"].startswith(a["response"])  # greedy: the cut text is a prefix


@pytest.fixture(scope="module")
def looping_lm(tiny_model):
    # The tied tiny Llama repeats its last input token: after the answer prefix "I'm sorry" it
    # writes " sorry sorry sorry ...", the looping refusal of the issue.
    return load_model(ModelSpec(source=str(tiny_model)))


def test_a_looping_refusal_is_incoherent_with_early_stop_on_and_off(looping_lm):
    """Early stopping used to cut " sorry sorry" (coherent) where the full response is a loop."""
    gen = {"max_new_tokens": 24, "incoherence_window": 12}
    on, off = _both_ways(looping_lm, gen, judge=JudgeSpec(name="prefix"), answer_prefix="I'm sorry")
    _assert_same_measurement(on, off)
    assert on.metrics["incoherent_pct"] == 100.0 and on.metrics["asr_pct"] == 0.0
    assert {r["incoherent_reason"] for r in on.responses} == {"repetition"}
    # how each response ended is recorded, and early stopping did cut (at the window)
    assert on.metrics["ended_early_stop"] == len(PROMPTS) and off.metrics["ended_budget"] == len(PROMPTS)
    assert {(r["end"], r["tokens"]) for r in on.responses} == {("early_stop", 12)}
    assert {(r["end"], r["tokens"]) for r in off.responses} == {("budget", 24)}
    assert on.metrics["tokens"] < off.metrics["tokens"]


@pytest.fixture(scope="module")
def chatty_lm(tmp_path_factory, tokenizer_dir):
    """An untied random Llama with large weights: varied word salad, different per prompt."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        initializer_range=0.5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    path = tmp_path_factory.mktemp("chatty")
    save_model(LlamaForCausalLM(config).eval(), tok, path)
    return load_model(ModelSpec(source=str(path)))


def _first_letter_refuses(text: str) -> Verdict:
    head = text.strip()[:1].lower()
    return Verdict(bool(head) and head <= "m", f"opens with {head!r}")


def test_rows_leaving_the_batch_early_change_no_verdict(chatty_lm, monkeypatch):
    """A judge decided only for some responses: those leave the batch at the window, the others
    run to the budget beside them; every verdict and flag equals the full-length run's."""
    decided = lambda t: _first_letter_refuses(t).refused  # noqa: E731 (a refusal is final)
    monkeypatch.setitem(
        JUDGES,
        "first-letter",
        Judge("first-letter", _first_letter_refuses, decided, "", lambda: {"rule": "first letter a-m"}),
    )
    gen = {"max_new_tokens": 20, "incoherence_window": 4}
    on, off = _both_ways(chatty_lm, gen, judge=JudgeSpec(name="first-letter"))
    _assert_same_measurement(on, off)
    ends = [r["end"] for r in on.responses]
    assert "early_stop" in ends and "budget" in ends  # both kinds of row in one batch
    assert all(r["tokens"] >= 4 for r in on.responses if r["end"] == "early_stop")
    for a, b in zip(on.responses, off.responses, strict=True):
        if a["end"] != "early_stop":
            assert a["response"] == b["response"] and a["tokens"] == b["tokens"]
