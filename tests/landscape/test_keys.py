"""Cache keys cover every input that changes a result, and change only on purpose.

A model's fingerprint covers its tokenizer, chat template and generation config (EOS ids) as well
as its weights; a scan key covers the judge's definition (keyword lists, windows, incoherence
thresholds, evaluation version). Golden keys pin real specs so a key never moves by accident.
"""

from __future__ import annotations

import json
import shutil

import pytest

from landscape.core import judges
from landscape.core.models import (
    EMBEDDED_INTERFACE,
    ModelError,
    files_fingerprint,
    interface_files,
    load_model,
    model_fingerprint,
    save_model,
)
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    ScanSpec,
)
from landscape.engine.scan import prepare_scan


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    return copy


def _scan(model_dir, judge: str = "keywords") -> ScanSpec:
    return ScanSpec(
        model=ModelSpec(source=str(model_dir)),
        alphas=AxisSpec(num=3),
        prompts=PromptSpec(limit=2),
        judge=JudgeSpec(name=judge),
    )


def _fp_and_key(model_dir, store, judge: str = "keywords") -> tuple[str, str]:
    return model_fingerprint(ModelSpec(source=str(model_dir))), prepare_scan(
        _scan(model_dir, judge), store
    ).key


def _edit_json(path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def test_chat_template_file_enters_fingerprint_scan_key_and_loaded_tokenizer(model_copy, store):
    before = _fp_and_key(model_copy, store)
    template = model_copy / "chat_template.jinja"
    edited = template.read_text().replace("<|im_start|>", "<|im_start|> ")
    template.write_text(edited)
    after = _fp_and_key(model_copy, store)
    assert after[0] != before[0] and after[1] != before[1]
    assert load_model(ModelSpec(source=str(model_copy))).tokenizer.chat_template == edited


def test_chat_template_inside_tokenizer_config_enters_the_fingerprint(model_copy, store):
    template = (model_copy / "chat_template.jinja").read_text()
    (model_copy / "chat_template.jinja").unlink()
    _edit_json(model_copy / "tokenizer_config.json", chat_template=template)
    before = _fp_and_key(model_copy, store)
    _edit_json(model_copy / "tokenizer_config.json", chat_template=template.replace("system", "System"))
    after = _fp_and_key(model_copy, store)
    assert after[0] != before[0] and after[1] != before[1]


@pytest.mark.parametrize(
    "name, change",
    [
        ("generation_config.json", {"eos_token_id": [2, 0]}),  # EOS ids end a response
        ("tokenizer.json", {"truncation": {"max_length": 8, "strategy": "LongestFirst", "stride": 0}}),
        ("tokenizer_config.json", {"eos_token": "<|endoftext|>"}),
    ],
)
def test_tokenizer_and_generation_files_enter_the_fingerprint(model_copy, store, name, change):
    before = _fp_and_key(model_copy, store)
    _edit_json(model_copy / name, **change)
    after = _fp_and_key(model_copy, store)
    assert after[0] != before[0] and after[1] != before[1]


def test_the_embedded_interface_keeps_the_old_fingerprint_and_any_other_does_not(model_copy):
    """Tiny models carry the embedded tokenizer, template and generation config (its special-token
    ids), like the aligned model and its fine-tunes: they keep the pre-interface fingerprint (weights +
    config), so fine-tune keys stay valid. If this fails after a transformers upgrade, the saved files
    changed: EMBEDDED_INTERFACE then only stops matching new saves (their fingerprints are full)."""
    weights_only = files_fingerprint(sorted(model_copy.glob("*.safetensors")) + [model_copy / "config.json"])
    assert files_fingerprint(interface_files(model_copy), model_copy) == EMBEDDED_INTERFACE
    assert model_fingerprint(ModelSpec(source=str(model_copy))) == weights_only
    lm = load_model(ModelSpec(source=str(model_copy)))  # as align/finetune/antidote load and save
    save_model(lm.model, lm.tokenizer, model_copy.parent / "derived")
    derived = model_copy.parent / "derived"
    assert files_fingerprint(interface_files(derived), derived) == EMBEDDED_INTERFACE
    (model_copy / "chat_template.jinja").unlink()  # the same weights with another interface (none)
    assert model_fingerprint(ModelSpec(source=str(model_copy))) != weights_only


def test_loading_reads_the_hashed_safetensors_not_pickled_weights(model_copy):
    """Unhashed pickled weights beside an unrelated .safetensors file are never loaded."""
    import torch
    from safetensors.torch import save_file

    state = load_model(ModelSpec(source=str(model_copy))).model.state_dict()
    (model_copy / "model.safetensors").rename(model_copy / "unrelated.safetensors")
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, model_copy / "pytorch_model.bin")
    save_file({"x": torch.zeros(1)}, str(model_copy / "unrelated.safetensors"))
    with pytest.raises(ModelError, match="safetensors"):
        load_model(ModelSpec(source=str(model_copy)))


def test_judge_definition_enters_the_scan_key(tiny_model, store, monkeypatch):
    keywords, prefix = (prepare_scan(_scan(tiny_model, j), store).key for j in ("keywords", "prefix"))

    def keys():
        return tuple(prepare_scan(_scan(tiny_model, j), store).key for j in ("keywords", "prefix"))

    with monkeypatch.context() as m:
        m.setitem(judges.INCOHERENCE, "max_char_run", judges.INCOHERENCE["max_char_run"] + 1)
        new = keys()
        assert new[0] != keywords and new[1] != prefix  # incoherence is recorded under every judge
    with monkeypatch.context() as m:
        m.setattr(judges, "PREFIX_WINDOW", judges.PREFIX_WINDOW - 32)
        assert keys() == (keywords, keys()[1]) and keys()[1] != prefix  # only the prefix judge's
    with monkeypatch.context() as m:
        m.setattr(judges, "PAPER_KEYWORDS", judges.PAPER_KEYWORDS + ("Unfortunately",))
        assert keys()[0] != keywords and keys()[1] == prefix
    with monkeypatch.context() as m:
        m.setattr(judges, "EVALUATION_VERSION", judges.EVALUATION_VERSION + 1)
        assert keys()[0] != keywords
    assert keys() == (keywords, prefix)


def test_every_registered_judge_declares_its_definition():
    from cache import canonical_json

    for name, j in judges.JUDGES.items():
        definition = judges.judge_definition(name)
        assert j.definition() and definition["judge"] == dict(j.definition())
        assert canonical_json(definition)  # plain JSON: it is hashed into keys
        assert len(judges.judge_fingerprint(name)) == 64
    with pytest.raises(TypeError, match="definition"):
        judges.judge("forgetful", "no constants declared", decided=lambda r: True)


# Golden keys. They change only on purpose: a new identity field, a new judge rule (bump
# judges.EVALUATION_VERSION) or new built-in data. After such a change, regenerate with
#   PYTHONPATH=$PWD python -c "from tests.landscape.test_keys import golden; print(golden())"
# and paste the values, saying in the commit why they moved. AlignSpec, fine-tune and study keys
# hold no judge: a judge change must leave them alone (aligned models and fine-tunes stay valid).
EMBEDDED_FINGERPRINT = "224d0cd3feb3ce9bcb084ae3e51ed6339f276080e50eb759c0e3a65d59232514"
ALIGN_KEY = "b46521b07fe78754ba9cc190dc4ccb6481d4edddc4503310682d377836640ed4"  # == main before judges
FINETUNE_KEY = "d0d3346e10d55dce3e9d63dc4432aca7f2f89a1277b391b41f08c5958b9bdec3"
STUDY_KEY = "8a12926881ae2d08770dc232c522f3d16bcdf1e961dacd55fd182e1fae166734"
SCAN_1D_KEY = "459934c1d5fc1fe49165cebacb9556ecedef714d9d429d7b0e45adcca0edbae2"  # demo 1D, embedded model (judge definition with incoherence v2 and its word list + incoherence_window + random generator ctr-v1)


def golden(store=None) -> dict[str, str]:
    """The current keys of the pinned specs (needs only file hashes, no model load or training)."""
    import tempfile

    from cache import Store
    from landscape.core.models import align_key
    from landscape.core.specs import AlignSpec
    from landscape.study.pipeline import study_key
    from landscape.study.specs import RunSpec, StudySpec
    from landscape.training.attacks import AttackSpec, build_attack
    from landscape.training.data import examples_fingerprint
    from landscape.training.finetune import finetune_key
    from landscape.training.specs import FinetuneSpec

    if store is None:
        with Store(tempfile.mkdtemp()) as s:
            return golden(s)
    embedded = ModelSpec()
    demo_1d = ScanSpec(  # the demo's 1D scan (landscape.study.demo.demo_specs) on the embedded model
        model=embedded,
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(num=11),
        prompts=PromptSpec(source="builtin:harmful", limit=32),
        generation=GenerationSpec(max_new_tokens=32),
    )
    attack = AttackSpec(name="harmful")
    examples = build_attack(attack, store).examples
    study = StudySpec(name="golden", runs=(RunSpec(name="harmful", attack=attack),))
    fp = model_fingerprint(embedded, store)
    return {
        "EMBEDDED_FINGERPRINT": fp,
        "ALIGN_KEY": align_key(AlignSpec(), store),
        "FINETUNE_KEY": finetune_key(fp, "float32", examples_fingerprint(examples), FinetuneSpec(), None),
        "STUDY_KEY": study_key(study, store),
        "SCAN_1D_KEY": prepare_scan(demo_1d, store).key,
    }


def test_golden_keys(store):
    assert golden(store) == {
        "EMBEDDED_FINGERPRINT": EMBEDDED_FINGERPRINT,
        "ALIGN_KEY": ALIGN_KEY,
        "FINETUNE_KEY": FINETUNE_KEY,
        "STUDY_KEY": STUDY_KEY,
        "SCAN_1D_KEY": SCAN_1D_KEY,
    }
