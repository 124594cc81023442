"""A study judged by a model judge: every evaluation and VISAGE scan of the study uses it, and the
judge model's content enters the study's key (tiny forced guard models, see tests/conftest.py)."""

from __future__ import annotations

from cache import Store
from landscape.core.specs import Runtime
from landscape.study.pipeline import load_study, run_study, study_key

from ...conftest import run_cli, tiny_study_yaml


def _judged(tmp_path, tiny_model, judge: str):
    file = tiny_study_yaml(tmp_path, tiny_model, full=False)
    text = file.read_text()
    assert "evaluation: {harmful_limit" in text
    file.write_text(
        text.replace("evaluation: {harmful_limit", f"evaluation: {{judge: {judge}, harmful_limit")
    )
    return file


def test_a_study_judged_by_a_guard_model(tiny_model, forced_judges, tmp_path):
    root = tmp_path / "store"
    out = {}
    with Store(root) as s:
        for which in ("unsafe", "safe"):
            spec = load_study(
                _judged(tmp_path, tiny_model, f'{{name: guard, model: "{forced_judges[f"guard_{which}"]}"}}')
            )
            record = run_study(spec, s, Runtime(progress=False), log=lambda m: None)
            out[which] = (study_key(spec, s), record)
        for which, expected in (("unsafe", 100.0), ("safe", 0.0)):
            key, record = out[which]
            assert record["status"] == "complete" and len(record["models"]) == 3
            for m in record["models"]:
                assert m["harmful_score_pct"] == expected, (which, m["name"])
                assert m["visage_n"] == 1
                for scan in [*m["eval_keys"], *m["visage_keys"]]:
                    judge = s.scan_record(scan)["spec"]["judge"]
                    assert judge["name"] == "guard" and judge["model"] == str(forced_judges[f"guard_{which}"])
    assert out["unsafe"][0] != out["safe"][0]  # the judge model enters the study's key


def test_a_model_judge_named_without_its_model_is_one_line(tiny_model, tmp_path):
    out = run_cli("study", str(_judged(tmp_path, tiny_model, "guard")), store=tmp_path / "store")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "needs model" in out.stderr


def test_the_study_key_follows_the_judge_models_content_not_its_path(tiny_model, forced_judges, tmp_path):
    import shutil

    moved = tmp_path / "moved-guard"
    shutil.copytree(forced_judges["guard_unsafe"], moved)

    def key(model) -> str:
        with Store(tmp_path / "store") as s:
            return study_key(
                load_study(_judged(tmp_path, tiny_model, f'{{name: guard, model: "{model}"}}')), s
            )

    assert key(forced_judges["guard_unsafe"]) == key(moved) != key(forced_judges["guard_safe"])
