"""Studies over several seeds: keys, the per-seed record, mean ± std, and claims backed by tests."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.core.stats import bootstrap_difference, format_p, mcnemar_exact
from landscape.study.claims import claims_markdown, study_claims
from landscape.study.specs import RunSpec, StudySpec
from landscape.study.table import study_markdown
from landscape.training.attacks import AttackSpec

from ...conftest import tiny_study_yaml


def _study(**kw) -> StudySpec:
    run = RunSpec.model_validate(
        {"name": "mix", "attack": {"name": "harmful"}, "defenses": [{"name": "generic_mix", "count": 2}]}
    )
    return StudySpec(name="s", runs=(RunSpec(name="h", attack=AttackSpec(name="harmful")), run), **kw)


def test_seeds_shift_every_stochastic_stage_and_seed_zero_is_the_study_as_written():
    spec = _study(seeds=(0, 3))
    assert spec.for_seed(0).runs == spec.runs and spec.for_seed(0).finetune == spec.finetune
    s3 = spec.for_seed(3)
    assert s3.finetune.seed == spec.finetune.seed + 3
    assert [r.attack.seed for r in s3.runs] == [3, 3] and s3.runs[1].defenses[0].seed == 3
    with pytest.raises(ValueError, match="distinct"):
        _study(seeds=(1, 1))


def test_a_study_without_seeds_keeps_its_key_and_seeds_give_a_new_one(store):
    from landscape.study.pipeline import study_key

    from ..test_keys import STUDY_KEY

    golden = StudySpec(name="golden", runs=(RunSpec(name="harmful", attack=AttackSpec(name="harmful")),))
    assert study_key(golden, store) == STUDY_KEY
    assert study_key(golden.model_copy(update={"seeds": (0, 1)}), store) != STUDY_KEY


def _row(name, verdicts, **kw):
    per = [{"harmful_complied": list(v), "seed": s} for s, v in enumerate(verdicts)]
    row = {"name": name, "harmful_score_pct": 100 * np.mean(verdicts), **kw}
    if len(per) > 1:
        row["per_seed"] = per
    else:
        row["harmful_complied"] = per[0]["harmful_complied"]
    return row


def test_claims_state_their_test_and_p_value():
    v = np.random.default_rng(0).random((2, 20))
    base = _row("base", [v[0] < 0.05], structure="benign", defenses=[])
    harm = _row("h", [v[0] < 0.9], structure="benign", attack="harmful", attack_spec={"n": 1}, defenses=[])
    mix = _row(
        "mix",
        [v[1] < 0.3],
        structure="benign",
        attack="harmful",
        attack_spec={"n": 1},
        defenses=["generic_mix"],
    )
    other = _row(
        "other", [v[1] < 0.3], structure="benign", attack="harmful", attack_spec={"n": 2}, defenses=["x"]
    )
    claims, missing = study_claims({"models": [base, harm, mix, other]})
    assert missing == 0 and [(c.subject, c.reference) for c in claims] == [("h", "base"), ("mix", "h")]
    # one seed: the same 20 prompts on both sides, so McNemar's exact test on the discordant ones
    z = mcnemar_exact(v[1] < 0.3, v[0] < 0.9)
    assert claims[1].p == pytest.approx(z.p) and claims[1].verb == "lowers"
    n10, n01 = int(((v[1] < 0.3) & ~(v[0] < 0.9)).sum()), int((~(v[1] < 0.3) & (v[0] < 0.9)).sum())
    text = study_markdown({"name": "s", "models": [base, harm, mix, other]})
    assert "mix: generic_mix lowers the harmful score vs h" in text
    assert f"McNemar exact test on 20 paired prompts ({n10} vs {n01} discordant), {format_p(z.p)}" in text
    # several seeds: a bootstrap over prompts and seeds, paired by seed
    w = np.random.default_rng(1).random((3, 20))
    harm2 = _row("h", list(w < 0.8), structure="benign", attack="harmful", defenses=[])
    mix2 = _row("mix", list(w < 0.4), structure="benign", attack="harmful", defenses=["generic_mix"])
    (claim,) = [c for c in study_claims({"models": [base, harm2, mix2]})[0] if c.subject == "mix"]
    assert claim.test.startswith("bootstrap over 20 prompts and 3 vs 3 seeds")
    assert claim.p == pytest.approx(bootstrap_difference(w < 0.4, w < 0.8).p)
    # what a test does not cover is said once under the claims: one seed a side, then 3
    assert "with one seed a side, each test is about these fine-tunes" in text
    assert "16% / 37% of equal pairs" in text
    three = "\n".join(claims_markdown({"models": [base | {"per_seed": [base] * 3}, harm2, mix2]}))
    assert "with 3 seeds on a side" in three and "2% / 8% of equal pairs" in three
    ten = np.random.default_rng(2).random((10, 20))
    harm10 = _row("h", list(ten < 0.8), structure="benign", attack="harmful", defenses=[])
    mix10 = _row("mix", list(ten < 0.4), structure="benign", attack="harmful", defenses=["generic_mix"])
    tenfold = base | {"per_seed": [base] * 10}
    assert "each test is about" not in "\n".join(claims_markdown({"models": [tenfold, harm10, mix10]}))
    # an older record without verdicts makes no claim, and says so
    old = [{k: m[k] for k in ("name", "structure", "defenses", "harmful_score_pct")} for m in (base, harm)]
    assert study_claims({"models": old}) == ([], 1)
    assert "make no claim" in study_markdown({"name": "s", "models": old})


def test_a_study_with_two_seeds_stores_both(tiny_model, tmp_path):
    from cache import Store
    from landscape.core.specs import Runtime
    from landscape.study.pipeline import load_study, run_study

    file = tiny_study_yaml(tmp_path, tiny_model, full=False)
    file.write_text(file.read_text() + "seeds: [0, 1]\n")
    with Store(tmp_path / "store") as s:
        record = run_study(load_study(file), s, Runtime(progress=False), log=lambda m: None)
        finetunes = [s.get_json(k) for k in s.keys("artifact:finetunes:")]
    assert record["seeds"] == [0, 1] and len(finetunes) == 4  # 2 runs × 2 seeds
    base, *runs = record["models"]
    assert "per_seed" not in base
    for m in runs:
        assert [p["seed"] for p in m["per_seed"]] == [0, 1]
        assert m["per_seed"][0]["finetune_key"] != m["per_seed"][1]["finetune_key"]
        scores = [p["harmful_score_pct"] for p in m["per_seed"]]
        assert m["harmful_score_pct"] == pytest.approx(np.mean(scores))
        assert m["harmful_score_pct_sd"] == pytest.approx(np.std(scores, ddof=1))
        assert len(m["visage_keys"]) == 2 and m["visage_ci"]["b"] == 1000
    text = study_markdown(record)
    row = next(line for line in text.splitlines() if line.startswith("| harmful |"))
    h = runs[0]
    assert row.split("|")[4].strip() == f"{h['harmful_score_pct']:.1f} ± {h['harmful_score_pct_sd']:.1f}"
    assert "seeds 0, 1: each run's numbers are mean ± std" in text
    claim_lines = [line for line in text.splitlines() if "the harmful score vs" in line]
    assert claim_lines and all(
        ("McNemar exact test" in c or "bootstrap" in c) and "p " in c for c in claim_lines
    )
