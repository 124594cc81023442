"""Early stopping changes no measurement on the embedded SmolLM2 model (issue 9, items 2 and 3).

The base model under the Llama-2 system prompt, its answer prefilled with "I", goes on with
"'m sorry for any confusion, but ..." to some requests and "'m glad you're interested ..." to
others; at alpha 0.3 along a random direction it writes broken text. The same points are
scanned with early stop off and on (once per judge, since stopping follows the judge's
``decided``): every per-prompt verdict, incoherence flag and rate must be identical.
"""

from __future__ import annotations

import pytest

from landscape.core.judges import JUDGES, get_judge
from landscape.core.specs import AxisSpec, GenerationSpec, JudgeSpec, PromptSpec, Runtime, ScanSpec
from landscape.engine.scan import Session, scan_grid

pytestmark = pytest.mark.slow


def test_early_stop_on_and_off_measure_the_same(tmp_path):
    from cache import Store

    base = ScanSpec(
        alphas=AxisSpec(start=0.0, stop=0.3, num=2),
        prompts=PromptSpec(source="builtin:harmful", limit=16),
        system_prompt="llama2",
        answer_prefix="I",
    )
    off_gen = GenerationSpec(max_new_tokens=24, early_stop=False)
    runtime = Runtime(progress=False)
    with Store(tmp_path / "store") as store:
        session = Session(store, runtime, log=lambda m: None)

        def scan(judge: str, gen: GenerationSpec):
            spec = base.model_copy(update={"generation": gen, "judge": JudgeSpec(name=judge)})
            res = scan_grid(spec, store, runtime, log=lambda m: None, session=session)
            return [(store.point(res.key, i), store.point_responses(res.key, i)) for i in range(2)]

        off = scan("keywords", off_gen)  # the texts do not depend on the judge without early stop
        cut, verdicts = 0, set()
        # text judges only: a model judge has no `decided`, so early stopping never cuts what it reads
        # (tests/landscape/engine/test_judge_models.py checks that), and it needs a judge model
        for name in sorted(n for n, j in JUDGES.items() if j.decided is not None):
            on = scan(name, off_gen.model_copy(update={"early_stop": True}))
            for (m_on, rows_on), (m_off, rows_off) in zip(on, off, strict=True):
                full = [get_judge(name).judge(r["response"]).refused for r in rows_off]
                verdicts |= set(full)
                assert [r["refused"] for r in rows_on] == full, name
                assert [r["incoherent_reason"] for r in rows_on] == [r["incoherent_reason"] for r in rows_off]
                assert m_on["incoherent_pct"] == m_off["incoherent_pct"]
                coherent_asr = (
                    100 * sum(not f and not r["incoherent"] for f, r in zip(full, rows_off, strict=True)) / 16
                )
                assert m_on["asr_coherent_pct"] == coherent_asr
                for a, b in zip(rows_on, rows_off, strict=True):
                    assert b["response"].startswith(a["response"])
                cut += m_on["ended_early_stop"]
    assert cut > 0  # early stopping did cut responses
    assert verdicts == {True, False}  # both verdicts occur, so agreement is not trivial
    assert any(r["incoherent"] for r in off[1][1])  # alpha 0.3 breaks the model
