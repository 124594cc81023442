"""Benchmark: do per-prompt verdicts depend on the batch size (a runtime field, outside the key)?

The same point (θ₀, or θ₀ + α·d for a random direction) is evaluated at several batch sizes; the
responses and verdicts at each are compared with those at batch size 1. Batch size changes the
numerics, not the maths: rows are left-padded to the longest prompt of their batch, and a batch of
two or more runs the prompts' shared prefix once (``generate._prefill``), so matrix shapes, and with
them float rounding, differ; a greedy argmax that is a near-tie can flip and the text diverges from
there. Printed: per batch size, how many responses differ from batch size 1 (text, verdict,
incoherence flag) and the seconds the point took.

    python bench/bench_batch.py [--model smollm2-135m-instruct] [--prompts 64] [--batch-sizes 1,7,64]
                                [--system-prompt llama2] [--alpha 0] [--device cpu] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def point_spec(model: str, dtype: str, prompts: int, system_prompt: str, alpha: float, max_new_tokens: int):
    from landscape.core.specs import AxisSpec, DirectionSpec, GenerationSpec, ModelSpec, PromptSpec, ScanSpec

    return ScanSpec(
        model=ModelSpec(source=model, dtype=dtype),
        directions=(DirectionSpec(seed=0),) if alpha else (),
        alphas=AxisSpec(start=alpha, stop=alpha, num=1),
        prompts=PromptSpec(source="builtin:harmful", limit=prompts),
        system_prompt=system_prompt,
        generation=GenerationSpec(max_new_tokens=max_new_tokens),
    )


def rows_by_batch_size(spec, store, batch_sizes, device: str = "cpu") -> dict[int, tuple[list[dict], float]]:
    """Evaluate the one point of ``spec`` at each batch size: {batch size: (rows, seconds)}."""
    from landscape.core.prompts import load_prompts
    from landscape.core.specs import Runtime
    from landscape.engine.scan import Session

    prompts = load_prompts(spec.prompts)
    out = {}
    for bs in batch_sizes:
        session = Session(store, Runtime(device=device, batch_size=bs, progress=False), log=lambda m: None)
        snapshot, dirs, _ = session.directions(spec)
        t0 = time.perf_counter()
        result = session.evaluate_at(spec, prompts, snapshot, dirs, [spec.alphas.start][: len(dirs)])
        out[bs] = (result.responses, time.perf_counter() - t0)
        print(f"batch size {bs}: {out[bs][1]:.1f} s", file=sys.stderr, flush=True)
    return out


def differences(rows: list[dict], base: list[dict]) -> dict:
    """How many rows differ from ``base`` in text, verdict and incoherence flag (and which)."""
    pairs = list(zip(rows, base, strict=True))
    return {
        "text": sum(a["response"] != b["response"] for a, b in pairs),
        "verdict": sum(a["refused"] != b["refused"] for a, b in pairs),
        "incoherent": sum(a["incoherent"] != b["incoherent"] for a, b in pairs),
        "verdict_prompts": [k for k, (a, b) in enumerate(pairs) if a["refused"] != b["refused"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--store", default=None, help="store holding the model (default: a temporary one)")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--batch-sizes", default="1,7,64")
    p.add_argument("--system-prompt", default="llama2")
    p.add_argument("--alpha", type=float, default=0.0, help="point θ₀ + α·d (random direction, seed 0)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    from cache import Store

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    spec = point_spec(
        args.model, args.dtype, args.prompts, args.system_prompt, args.alpha, args.max_new_tokens
    )
    with tempfile.TemporaryDirectory() as tmp, Store(args.store or tmp) as store:
        if args.store:
            from landscape.core.models import resolve_source

            src = str(resolve_source(spec.model.source, store))
            spec = spec.model_copy(update={"model": spec.model.model_copy(update={"source": src})})
        results = rows_by_batch_size(spec, store, sizes, args.device)
    base = results[sizes[0]][0]
    print(
        f"model {args.model}, {args.dtype} on {args.device}, {args.prompts} builtin:harmful prompts, system "
        f"prompt {args.system_prompt}, alpha {args.alpha}, max_new_tokens {args.max_new_tokens}"
    )
    print(f"{'batch':>6} {'s':>7} {'texts differ':>13} {'verdicts differ':>16} {'incoherent differ':>18}")
    report = {}
    for bs in sizes:
        rows, secs = results[bs]
        d = differences(rows, base)
        report[bs] = d
        print(f"{bs:>6} {secs:>7.1f} {d['text']:>13} {d['verdict']:>16} {d['incoherent']:>18}")
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
