"""Model judges in real scans: forced tiny guard/classifier models (conftest ``forced_judges``) run
real forward passes, so the ASR they give is known in advance."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from landscape.core import judges
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    SpecError,
)
from landscape.engine.scan import prepare_scan, scan_grid

LABELS = {"LABEL_0": "safe", "LABEL_1": "harmful"}


def _spec(model, prompts, judge: JudgeSpec, early_stop: bool = True) -> ScanSpec:
    return ScanSpec(
        model=ModelSpec(source=str(model)),
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(start=-0.1, stop=0.1, num=3),
        prompts=PromptSpec(source=str(prompts)),
        generation=GenerationSpec(max_new_tokens=6, early_stop=early_stop, incoherence_window=2),
        judge=judge,
    )


def _guard(models, which: str, **kw) -> JudgeSpec:
    return JudgeSpec(name="guard", model=str(models[f"guard_{which}"]), **kw)


def _run(spec, store, batch_size: int = 64):
    return scan_grid(spec, store, Runtime(progress=False, batch_size=batch_size), log=lambda m: None)


@pytest.mark.parametrize(
    ("which", "asr", "unparsed"), [("unsafe", 100.0, 0.0), ("safe", 0.0, 0.0), ("unparsed", 0.0, 100.0)]
)
def test_guard_scan_gives_the_forced_verdict(
    tiny_model, prompts_file, store, forced_judges, which, asr, unparsed
):
    r = _run(_spec(tiny_model, prompts_file, _guard(forced_judges, which)), store)
    assert r.grid.values["asr_pct"].tolist() == [asr] * 3
    assert r.grid.values["unparsed_pct"].tolist() == [unparsed] * 3
    rows = store.point_responses(r.key, 1, 0)
    if which == "unparsed":  # counted apart: neither complied nor refused
        assert r.grid.values["refusal_pct"].tolist() == [0.0] * 3
        assert all(row["refused"] is None and row["apart"] == "unparsed" for row in rows)
    # early_stop is on in the spec, but a model judge has no decided predicate: nothing is cut
    assert all(row["end"] != "early_stop" for row in rows)


def test_classifier_scan_maps_labels(tiny_model, prompts_file, store, forced_judges):
    for label, asr in ((1, 100.0), (0, 0.0)):
        judge = JudgeSpec(
            name="classifier", model=str(forced_judges[f"classifier_{label}"]), label_map=LABELS
        )
        assert (
            _run(_spec(tiny_model, prompts_file, judge), store).grid.values["asr_pct"].tolist() == [asr] * 3
        )


def test_judge_model_enters_the_key(tiny_model, prompts_file, store, forced_judges):
    key = lambda judge: prepare_scan(_spec(tiny_model, prompts_file, judge), store).key  # noqa: E731
    keys = {
        key(_guard(forced_judges, "safe")),
        key(_guard(forced_judges, "unsafe")),  # other weights
        key(_guard(forced_judges, "safe", max_new_tokens=4)),
        key(JudgeSpec(name="classifier", model=str(forced_judges["classifier_0"]), label_map=LABELS)),
        key(
            JudgeSpec(
                name="classifier",
                model=str(forced_judges["classifier_0"]),
                label_map={"LABEL_0": "harmful", "LABEL_1": "safe"},
            )
        ),
        key(JudgeSpec(name="keywords")),
    }
    assert len(keys) == 6


def test_moving_the_judge_model_keeps_the_key(tiny_model, prompts_file, store, forced_judges, tmp_path):
    moved = shutil.copytree(forced_judges["guard_safe"], tmp_path / "elsewhere")
    a = prepare_scan(_spec(tiny_model, prompts_file, _guard(forced_judges, "safe")), store).key
    b = prepare_scan(_spec(tiny_model, prompts_file, JudgeSpec(name="guard", model=str(moved))), store).key
    assert a == b


def test_batch_size_does_not_change_verdicts(tiny_model, prompts_file, tmp_path, forced_judges):
    from cache import Store

    spec = _spec(tiny_model, prompts_file, _guard(forced_judges, "unsafe"))
    rows = []
    for bs in (1, 64):
        with Store(tmp_path / f"s{bs}") as s:
            r = _run(spec, s, batch_size=bs)
            rows.append([(x["response"], x["refused"], x["reason"]) for x in s.point_responses(r.key, 2, 0)])
    assert rows[0] == rows[1]


def test_the_session_loads_a_model_judge_once(tiny_model, prompts_file, store, forced_judges, monkeypatch):
    guard = judges.JUDGES["guard"]
    loads = []

    def counting(spec, device):
        loads.append(spec)
        return guard.load(spec, device)

    monkeypatch.setitem(judges.JUDGES, "guard", dataclasses.replace(guard, load=counting))
    _run(_spec(tiny_model, prompts_file, _guard(forced_judges, "safe")), store)
    assert len(loads) == 1  # three points, one load


def test_judge_specs_fail_in_one_line(tiny_model, prompts_file, store, forced_judges, tmp_path):
    with pytest.raises(ValueError, match="needs model"):
        JudgeSpec(name="guard")
    with pytest.raises(ValueError, match="takes no model"):
        JudgeSpec(name="keywords", model="/x")
    with pytest.raises(ValueError, match="takes no label_map"):
        JudgeSpec(name="guard", model="/x", label_map=LABELS)
    with pytest.raises(ValueError, match="needs label_map"):
        JudgeSpec(name="classifier", model="/x")
    bad = {
        "not found": JudgeSpec(name="guard", model=str(tmp_path / "missing")),
        "not a causal language model": JudgeSpec(name="guard", model=str(forced_judges["classifier_0"])),
        "does not cover the model's labels": JudgeSpec(
            name="classifier", model=str(forced_judges["classifier_0"]), label_map={"LABEL_1": "harmful"}
        ),
        "labels the model lacks": JudgeSpec(
            name="classifier",
            model=str(forced_judges["classifier_0"]),
            label_map=dict(LABELS, LABEL_9="safe"),
        ),
    }
    no_weights = shutil.copytree(forced_judges["guard_safe"], tmp_path / "pickled")
    (no_weights / "model.safetensors").rename(no_weights / "pytorch_model.bin")
    bad["no .safetensors"] = JudgeSpec(name="guard", model=str(no_weights))
    for message, judge in bad.items():
        with pytest.raises(SpecError, match=message) as err:
            prepare_scan(_spec(tiny_model, prompts_file, judge), store)
        assert "\n" not in str(err.value)
