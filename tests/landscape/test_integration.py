"""Integration on the embedded SmolLM2-135M-Instruct (marked slow; CI runs them)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.models import builtin_gguf_path, load_model
from landscape.scan import scan_grid
from landscape.specs import AxisSpec, GenerationSpec, ModelSpec, PromptSpec, Runtime, ScanSpec

pytestmark = pytest.mark.slow


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
