"""Benchmark: one scan point of a 7B-shaped model — time, direction overhead and peak memory.

A random-initialised Llama of Llama-2-7B's architecture (hidden 4096, 32 layers, 32 heads, MLP
11008; SmolLM2's 49,152-token vocabulary, since its tokenizer is the one on every machine (Llama-2 has
32,000: the embeddings and lm_head are 0.14 B parameters, 2%, larger than Llama-2-7B's): 6.88 B
parameters) is built in code (no download), saved once as safetensors and then loaded by the
project's own loader, so the point runs exactly as a scan's does. Per scan kind (1D: one random
direction; 2D: two, the second orthogonalised) it prints

- ``overhead_s``: directions generated + θ₀ + Σ cₖ·dₖ written + θ₀ restored, with no decoding
  (median of ``--repeats`` after a warm-up that also computes the normalisation factors);
- ``point_s``: a whole point (overhead + decoding + judging) at the given prompts × tokens, early stop
  off unless ``--early-stop`` (a random model rarely says EOS, so responses run to the budget);
- ``overhead_s / point_s``, the share the issue bounds (≤ 2% at the paper's 80 × 512, ≤ 10% at our
  defaults), and the peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, peak RSS on a CPU.

    python bench/bench_7b.py --device cuda --dtype bfloat16 [--prompts 80 --max-new-tokens 512]
    python bench/bench_7b.py --arch 1b --prompts 4 --max-new-tokens 8      # CPU stand-in (~1.1 B)

``--arch tiny`` is for checking the script itself. The model directory (``--model-dir``, default a
temporary directory) is reused when it already holds the same architecture; on a CPU the peak RSS
includes building the model unless that directory already holds it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHS = {
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
    ),
    "1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
}


def random_llama(arch: dict, dtype: str, device: str, **config):
    """A Llama of ``arch``'s shape with N(0, 0.02) weights, made on ``device`` (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **arch, **config))
    # cast while on the meta device (free), then allocate once in the compute dtype: allocating in
    # float32 first left 27.5 GB cached on the GPU before the measured run
    model = model.to(getattr(torch, dtype)).to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)
    return model.eval()


def build(arch: str, dtype: str, device: str, directory: Path, tokenizer) -> Path:
    """A random-initialised Llama of ``arch`` saved in ``directory`` (skipped if already there)."""
    from landscape.core.models import save_model

    marker = directory / "bench_arch.json"
    want = {"arch": arch, "dtype": dtype}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return directory
    model = random_llama(
        ARCHS[arch],
        dtype,
        device,
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    t0 = time.perf_counter()
    save_model(model.cpu(), tokenizer, directory)
    print(
        f"  built {arch} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params), "
        f"saved in {time.perf_counter() - t0:.0f} s"
    )
    del model
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()  # nothing of the build stays cached into the measured run
    marker.write_text(json.dumps(want))
    return directory


def peak_bytes(device: str) -> int:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sync(device: str) -> None:
    """Wait for the device's queued work, so a timing covers it (CPU work is synchronous)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="7b", choices=sorted(ARCHS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--prompts", type=int, default=80)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--early-stop", action="store_true", help="as our defaults (off: the worst case)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep-directions", action="store_true", help="hold the directions (the plan allowing)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from cache import Store
    from landscape.core.models import load_model
    from landscape.core.perturb import perturbed
    from landscape.core.prompts import load_prompts
    from landscape.core.specs import (
        AxisSpec,
        DirectionSpec,
        GenerationSpec,
        ModelSpec,
        PromptSpec,
        Runtime,
        ScanSpec,
    )
    from landscape.engine.scan import Session

    work = tempfile.TemporaryDirectory(prefix="bench-7b-")
    store = Store(Path(work.name) / "store")
    directory = args.model_dir or Path(work.name) / "model"
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = load_model(ModelSpec(), "cpu", store).tokenizer
    build(args.arch, args.dtype, args.device, directory, tokenizer)
    runtime = Runtime(
        device=args.device, batch_size=args.batch_size, progress=False, keep_directions=args.keep_directions
    )
    session = Session(store, runtime, log=print)
    out: dict = {
        "arch": args.arch,
        "device": args.device,
        "dtype": args.dtype,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
    }
    if args.device.startswith("cuda"):
        out["device_name"] = torch.cuda.get_device_name()
    print(
        f"{args.arch} on {args.device} ({args.dtype}): {args.prompts} prompts × {args.max_new_tokens} "
        f"new tokens, batch {args.batch_size}, early stop {'on' if args.early_stop else 'off'}"
    )
    for n in (1, 2):
        spec = ScanSpec(
            model=ModelSpec(source=str(directory), dtype=args.dtype),
            directions=tuple(DirectionSpec(seed=s) for s in (0, 1000)[:n]),
            alphas=AxisSpec(start=0.1, stop=0.1, num=1),
            betas=AxisSpec(start=0.1, stop=0.1, num=1) if n == 2 else None,
            prompts=PromptSpec(source="builtin:harmful", limit=args.prompts),
            generation=GenerationSpec(max_new_tokens=args.max_new_tokens, early_stop=args.early_stop),
        )
        prompts = load_prompts(spec.prompts)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        snapshot, dirs, _ = session.directions(spec)
        coeffs = [0.1, 0.1][:n]
        with perturbed(snapshot, dirs, coeffs):  # warm-up: normalisation factors, allocator
            sync(args.device)
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            with perturbed(snapshot, dirs, [0.1 + 0.01 * r, 0.1][:n]):
                sync(args.device)
            sync(args.device)
            times.append(time.perf_counter() - t0)
        overhead = statistics.median(times)
        res = session.evaluate_at(spec, prompts, snapshot, dirs, coeffs)
        sync(args.device)
        point, decode = res.metrics["point_s"], res.metrics["elapsed_s"]
        tokens = res.metrics["tokens"]
        peak = peak_bytes(args.device)
        out[f"{n}d"] = {
            "overhead_s": overhead,
            "point_s": point,
            "decode_s": decode,
            "tokens": tokens,
            "overhead_share": overhead / point,
            "peak_bytes": peak,
        }
        print(
            f"  {n}D: overhead {overhead:.3f} s, point {point:.1f} s (decode + judge {decode:.1f} s, "
            f"{tokens} tokens, {tokens / decode:.0f} tokens/s); overhead/point {overhead / point:.2%}; "
            f"peak memory {peak / 2**30:.1f} GiB"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    store.close()
    work.cleanup()


if __name__ == "__main__":
    main()
