"""Prompt sets and loaders; the built-in data is big enough, disjoint and free of answers."""

from __future__ import annotations

import csv

import pytest

from landscape.core.prompts import (
    AOA_SYSTEM,
    LLAMA2_SYSTEM,
    builtin_benign,
    builtin_harmful,
    chat_messages,
    load_prompts,
    refusal_templates,
    system_text,
)
from landscape.core.specs import PromptSpec, SpecError

from ...conftest import ADVBENCH


def test_builtin_sets_are_large_and_categorised():
    harmful = builtin_harmful("eval")
    assert len(harmful) >= 100 and len({r["category"] for r in harmful}) >= 8
    assert len(builtin_benign("eval")) >= 100
    assert len(load_prompts(PromptSpec(source="builtin:harmful", limit=80))) == 80


def _norm(s):
    return " ".join(s.lower().split())


def test_alignment_data_is_disjoint_from_evaluation_sets():
    train = {_norm(r["prompt"]) for r in builtin_harmful("train")}
    assert not train & {_norm(r["prompt"]) for r in builtin_harmful("eval")}
    assert not {_norm(p) for p in builtin_benign("train")} & {_norm(p) for p in builtin_benign("eval")}
    with ADVBENCH.open() as fh:
        adv = {_norm(r["goal"]) for r in list(csv.DictReader(fh))[:80]}
    assert not train & adv


def test_refusals_carry_paper_keywords():
    from landscape.core.judges import judge_keywords

    assert all(judge_keywords(r).refused for r in refusal_templates())


def test_advbench_csv_loader():
    prompts = load_prompts(PromptSpec(source=str(ADVBENCH), limit=80))
    assert len(prompts) == 80 and prompts[0].startswith("Write a script that can exploit")


@pytest.mark.parametrize("name", ["builtin:advbench", "advbench"])
def test_advbench_ships_as_a_builtin_set(name, tmp_path, monkeypatch):
    """Issue 23: the README's `--prompts harmful_behaviors.csv` named a file we did not ship."""
    monkeypatch.chdir(tmp_path)  # no file called "advbench" here
    spec = PromptSpec(source=name)
    assert spec.source == "builtin:advbench"
    prompts = load_prompts(spec)
    assert len(prompts) == 520 and prompts == load_prompts(PromptSpec(source=str(ADVBENCH)))
    assert (ADVBENCH.parent / "LICENSE").read_text().startswith("MIT License")
    (tmp_path / "advbench").write_text("my own prompt\n")  # a file of that name is the user's file
    assert load_prompts(PromptSpec(source="advbench")) == ["my own prompt"]


def test_csv_jsonl_txt_loaders(tmp_path):
    (tmp_path / "p.csv").write_text("id,text\n1,hello there\n2,second\n")
    assert load_prompts(PromptSpec(source=str(tmp_path / "p.csv"), column="text")) == [
        "hello there",
        "second",
    ]
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n\n{"prompt": "b"}\n')
    assert load_prompts(PromptSpec(source=str(tmp_path / "p.jsonl"))) == ["a", "b"]
    (tmp_path / "p.txt").write_text("one\n\n two \n")
    assert load_prompts(PromptSpec(source=str(tmp_path / "p.txt"), limit=1)) == ["one"]


@pytest.mark.parametrize(
    "content, name, column, message",
    [
        ("id,text\n1,a\n", "p.csv", "goal", "no column 'goal'"),
        ("", "p.txt", None, "is empty"),
        ('{"x": 1}\n', "p.jsonl", None, "no field 'goal' or 'prompt'.*--column"),
        ("id,text\n1,a\n", "p.csv", None, "no column 'goal' or 'prompt'.*--column"),
        ("prompt\n", "p.csv", None, "is empty"),  # header only
        ("", "p.csv", None, "is empty"),
        ("{bad\n", "p.jsonl", None, "not valid JSON"),
        ("a", "p.parquet", None, "unsupported prompt file type"),
    ],
)
def test_loader_errors_name_the_problem(tmp_path, content, name, column, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(SpecError, match=message):
        load_prompts(PromptSpec(source=str(tmp_path / name), column=column))


def test_a_csv_with_a_prompt_column_reads_like_jsonl(tmp_path):
    """Issue 25: a CSV with a `prompt` column failed with "has no column 'goal'"."""
    (tmp_path / "p.csv").write_text("id,prompt\n1,hello\n")
    assert load_prompts(PromptSpec(source=str(tmp_path / "p.csv"))) == ["hello"]
    (tmp_path / "adv.csv").write_text("goal,target,prompt\nA,B,C\n")  # AdvBench's goal first
    assert load_prompts(PromptSpec(source=str(tmp_path / "adv.csv"))) == ["A"]
    with pytest.raises(SpecError, match="is a directory"):
        load_prompts(PromptSpec(source=str(tmp_path)))


def test_missing_file_and_unknown_builtin():
    with pytest.raises(SpecError, match="not found"):
        load_prompts(PromptSpec(source="/nope/prompts.csv"))
    with pytest.raises(SpecError, match="unknown built-in"):
        load_prompts(PromptSpec(source="builtin:nope"))


def test_system_presets(tokenizer_dir):
    from transformers import AutoTokenizer

    from landscape.core.prompts import format_chat

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert system_text("default") is None and system_text("none") == ""
    assert system_text("llama2") == LLAMA2_SYSTEM and system_text("aoa") == AOA_SYSTEM
    assert "SmolLM" in format_chat(tok, "hi", "default")
    assert "SmolLM" not in format_chat(tok, "hi", "none")
    assert "Absolutely Obedient Agent" in format_chat(tok, "hi", "aoa")
    assert chat_messages("q", "Be brief.", "a")[0] == {"role": "system", "content": "Be brief."}


def test_the_column_read_is_named(tmp_path):
    from landscape.core.prompts import prompt_field

    (tmp_path / "p.csv").write_text("id,prompt\n1,hello\n")
    (tmp_path / "q.jsonl").write_text('{"goal": "a", "prompt": "b"}\n')
    assert prompt_field(PromptSpec(source=str(tmp_path / "p.csv"))) == "prompt"
    assert prompt_field(PromptSpec(source=str(tmp_path / "q.jsonl"))) == "goal"
    assert prompt_field(PromptSpec(source="builtin:harmful")) is None
