"""The memory plan against a measured peak, on CPU: does a scan's point take what the plan says?

    python bench/bench_memory_plan.py [--models embedded,1.1b] [--json]
    python bench/bench_memory_plan.py --one MODEL KIND DIRS     (one measurement, in this process)

For each model (the embedded SmolLM2-135M, a random Llama of TinyLlama-1.1B's shape, or ``tiny``:
a random 21M-parameter Llama for the test), each scan kind (1D, 2D with Gram–Schmidt) and each
direction policy (regenerated per point, held in float32), a fresh process:

1. loads or builds the model in float32 on the CPU, reads every weight once (a memory-mapped
   file's pages are resident after a scan's first decoding, and are the model's, not the plan's),
   and reads its resident memory (after ``malloc_trim``), then resets the kernel's peak-RSS mark
   (``/proc/self/clear_refs``);
2. takes the scan's snapshot θ₀, builds its directions as ``Session.directions`` does (random,
   filter-normalised, the second orthogonalised against the first, ``Materialized`` when held) and
   applies one point and restores it (``perturbed``), without decoding;
3. reports the peak RSS above the loaded model (``VmHWM``) against the plan's bytes for the same
   things: snapshot + held directions + per-point workspace (``MemoryPlan.device_bytes``).

The decoding reserve is left out of both sides: it is an estimate of the KV cache and logits for
the batch and token budget (``decode_reserve``), not a size the plan can know exactly.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    # TinyLlama-1.1B: 22 layers of 2048, 32 heads (4 KV), 5632 MLP, 32000 tokens, untied
    "1.1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    "warm-up": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=512,
    ),
    "tiny": dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
}


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _settle() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _model(name: str):
    import torch

    if name == "embedded":
        from cache import Store
        from landscape.core.models import load_model
        from landscape.core.specs import ModelSpec

        store = Store(Path(tempfile.mkdtemp(prefix="bench-memory-")) / "store")
        return load_model(ModelSpec(source="smollm2-135m-instruct", dtype="float32"), "cpu", store).model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **SHAPES[name]))
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model.eval().requires_grad_(False)


def measure(name: str, kind: str, dirs: str) -> dict:
    """One measurement in this process (see the module docstring)."""
    import torch

    from landscape.core.directions import Materialized, Orthogonalized, RandomDirection
    from landscape.core.memory import plan_memory, scan_budget
    from landscape.core.models import perturbable_parameters
    from landscape.core.perturb import Snapshot, perturbed
    from landscape.core.specs import DirectionSpec

    torch.set_num_threads(1)
    include_embeddings = DirectionSpec().include_embeddings
    n = 2 if kind == "2d" else 1
    keep = "float32" if dirs == "held" else None

    def point(params) -> None:  # what one point of a fresh scan allocates
        snapshot = Snapshot(params, "device")
        made = [RandomDirection(snapshot.weights, seed, "filter") for seed in range(n)]
        if n == 2:
            made[1] = Orthogonalized(made[1], made[0])
        if keep:
            made = [Materialized(d, dtype=torch.float32) for d in made]
        with perturbed(snapshot, made, [0.3, -0.2][:n]):
            pass

    # the same code once on a small model first: code pages and thread pools loaded on first use
    # are resident too, and are no part of what the plan sizes
    point(perturbable_parameters(_model("warm-up"), include_embeddings))
    model = _model(name)
    with torch.no_grad():  # weights read from a memory-mapped file are resident once read: a scan's
        for p in model.parameters():  # first decoding reads them all, and they are the model's
            p.sum()
    params = perturbable_parameters(model, include_embeddings)
    huge = 1 << 50
    plan = plan_memory(scan_budget(model, params, n, 1, 1, keep, (huge, huge)))
    _settle()
    base = _rss()
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts again from here
    t0 = time.perf_counter()
    point(params)
    elapsed = time.perf_counter() - t0
    peak = _hwm() - base
    return {
        "model": name,
        "kind": kind,
        "directions": dirs,
        "parameters": sum(p.numel() for p in params.values()),
        "largest": max(p.numel() for p in params.values()),
        "planned_bytes": plan.device_bytes,
        "measured_bytes": peak,
        "ratio": peak / plan.device_bytes,
        "seconds": elapsed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="embedded,1.1b")
    p.add_argument("--kinds", default="1d,2d")
    p.add_argument("--directions", default="regenerated,held")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--one", nargs=3, metavar=("MODEL", "KIND", "DIRS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    rows = []
    for model in args.models.split(","):
        for kind in args.kinds.split(","):
            for dirs in args.directions.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", model, kind, dirs],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    raise SystemExit(f"error: {model} {kind} {dirs}: {out.stderr.strip().splitlines()[-1]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(
                        f"{model:9} {kind} {dirs:11} planned {row['planned_bytes'] / 1e6:8.0f} MB  "
                        f"measured {row['measured_bytes'] / 1e6:8.0f} MB  measured/planned {row['ratio']:.3f}  "
                        f"({row['seconds']:.1f} s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
