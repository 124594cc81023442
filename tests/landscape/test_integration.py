"""Integration on the embedded SmolLM2-135M-Instruct (marked slow; CI runs them)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.core.models import builtin_gguf_path, load_model
from landscape.core.specs import AxisSpec, GenerationSpec, ModelSpec, PromptSpec, Runtime, ScanSpec
from landscape.engine.scan import scan_grid

pytestmark = pytest.mark.slow
BATCH_PROMPTS = 12  # batch sizes 1, 7 and 64 over 12 prompts: 12 batches, 2 batches, 1 batch


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    from cache import Store

    with Store(tmp_path_factory.mktemp("smol")) as s:
        yield s


def test_embedded_model_loads_as_float32_llama(shared_store):
    lm = load_model(ModelSpec(), store=shared_store)
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert (
        next(lm.model.parameters()).dtype.is_floating_point
        and str(next(lm.model.parameters()).dtype) == "torch.float32"
    )
    assert builtin_gguf_path().suffix == ".gguf"
    assert shared_store.artifact("gguf", lm.fingerprint) is not None  # converted once, reused
    again = load_model(ModelSpec(), store=shared_store)
    assert again.fingerprint == lm.fingerprint


def test_short_scan_on_the_embedded_model(shared_store):
    spec = ScanSpec(
        model=ModelSpec(),
        alphas=AxisSpec(start=-0.3, stop=0.3, num=3),
        prompts=PromptSpec(source="builtin:harmful", limit=4),
        generation=GenerationSpec(max_new_tokens=12),
    )
    res = scan_grid(spec, shared_store, Runtime(progress=False), log=lambda m: None)
    asr = res.grid.values["asr_pct"]
    assert np.isfinite(asr).all() and ((asr >= 0) & (asr <= 100)).all()
    # The unaligned model complies at θ₀: the reason the project aligns it first.
    assert asr[1] >= 75
    rows = shared_store.point_responses(res.key, 1, 0)
    assert all(r["response"] for r in rows)
    assert scan_grid(spec, shared_store, Runtime(progress=False), log=lambda m: None).computed == 0


def test_verdicts_do_not_depend_on_the_batch_size(shared_store):
    """Batch size is a runtime field, outside the key, so a point's verdicts must not depend on it.

    It changes the numerics (left padding to the batch's longest prompt; the shared prefix run once
    for a batch of two or more), so a greedy near-tie could flip a token. Measured in fp32 on CPU
    (bench/bench_batch.py): on the base model with the llama2 system prompt no verdict and no
    response text differs between batch sizes 1, 7 and 64; pinned here. bf16 is not pinned."""
    from landscape.core.perturb import Snapshot
    from landscape.core.prompts import load_prompts
    from landscape.engine.scan import Session

    spec = ScanSpec(
        model=ModelSpec(),
        directions=(),
        alphas=AxisSpec(start=0.0, stop=0.0, num=1),
        prompts=PromptSpec(source="builtin:harmful", limit=BATCH_PROMPTS),
        system_prompt="llama2",
    )
    prompts = load_prompts(spec.prompts)
    session = Session(shared_store, Runtime(progress=False), log=lambda m: None)
    rows = {}
    for bs in (1, 7, 64):
        session.runtime = Runtime(batch_size=bs, progress=False)
        rows[bs] = session.evaluate_at(spec, prompts, Snapshot({}), [], []).responses
    for bs in (7, 64):
        pairs = list(zip(rows[bs], rows[1], strict=True))
        assert sum(a["refused"] != b["refused"] for a, b in pairs) == 0
        assert sum(a["response"] != b["response"] for a, b in pairs) == 0
