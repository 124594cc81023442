"""Benchmark: what directions cost per point, against decoding, and what each memory plan holds.

Per-point overhead is the time of ``perturbed(snapshot, dirs, coeffs)`` entered and left with no
decoding: every direction tensor generated and normalised, θ₀ + Σ cₖ·dₖ written into the model,
θ₀ restored. It is measured after one warm-up point (the first point also computes each tensor's
normalisation factor, once a scan) and compared, in the same run, between

- ``old``: the previous generator, torch's CPU ``randn`` seeded per (seed, name) and copied to the
  weight's device, normalised from the weight's norm recomputed at every point;
- ``new``: ``landscape.core.directions.gaussian_like``, counter-based, made on the weight's device;
- ``held``: the new directions held in float32 (``--keep-directions``): perturb and restore only.

The models: the embedded SmolLM2-135M (loaded from its GGUF by the project's loader) and a
random-initialised Llama of ~1.1B parameters (TinyLlama-1.1B's shape: 22 layers, hidden 2048,
built in code; on this CPU it stands in for Llama-2-7B's architecture, which would need 27 GB in
float32). Decoding time is one point of the demo's scans on the embedded model (1D: 32 prompts ×
32 new tokens; 2D: 12 prompts × 24 tokens, greedy, early stop, batch 64): the ratio printed is
overhead / decoding. Peak RSS of each memory plan is measured in a fresh subprocess per plan
(snapshot + 2D directions + one perturbed point), as the peak RSS above the loaded model's.

    OMP_NUM_THREADS=1 python bench/bench_directions.py [--device cpu] [--skip-1b] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_7b import ARCHS, random_llama, sync  # noqa: E402  (bench/ is on sys.path when a bench script runs)


class OldRandomDirection:
    """The generator before ctr-v1: CPU ``torch.randn`` per (seed, name), moved to the weight's
    device, normalised at every point (kept here only to measure against)."""

    def __init__(self, weights, seed: int, norm: str):
        self.weights, self.seed, self.norm = weights, seed, norm
        self.names = tuple(weights)
        self._last = None

    def tensor(self, name):
        import torch

        if self._last is not None and self._last[0] == name:
            return self._last[1]
        w = self.weights[name]
        key = int.from_bytes(hashlib.sha256(f"{self.seed}:{name}".encode()).digest()[:8], "little") >> 1
        d = torch.randn(w.shape, generator=torch.Generator().manual_seed(key), dtype=torch.float32)
        d, wf = d.to(w.device), w.float()
        t = d * (wf.norm() / d.norm().clamp_min(1e-12))
        self._last = (name, t)
        return t

    def items(self):
        for n in self.names:
            yield n, self.tensor(n)


def llama_1b(dtype: str, device: str):
    """A random-initialised Llama of TinyLlama-1.1B's shape (no download)."""
    return random_llama(ARCHS["1b"], dtype, device, vocab_size=32000)


def load(which: str, dtype: str, device: str):
    """(model, {name: parameter} a random direction moves)."""
    from landscape.core.models import load_model, perturbable_parameters
    from landscape.core.specs import ModelSpec

    if which == "embedded":
        model = load_model(ModelSpec(dtype=dtype), device).model
    else:
        model = llama_1b(dtype, device)
    return model, perturbable_parameters(model)


def make_dirs(kind: str, snapshot, n: int, device):
    from landscape.core.directions import Materialized, Orthogonalized, RandomDirection

    if kind == "held":  # --keep-directions: the new directions held in float32
        return [Materialized(d) for d in make_dirs("new", snapshot, n, device)]
    if kind == "old":
        d = [OldRandomDirection(snapshot.weights, s, "layer") for s in (0, 1000)[:n]]
    else:
        d = [RandomDirection(snapshot.weights, s, "layer", device) for s in (0, 1000)[:n]]
    return d if n == 1 else [d[0], Orthogonalized(d[1], d[0])]


def overhead(model_name: str, args) -> dict:
    """Seconds per point of directions + perturb + restore, old vs new, 1D and 2D."""
    from landscape.core.perturb import Snapshot, perturbed

    model, params = load(model_name, args.dtype, args.device)
    device = next(iter(params.values())).device
    snapshot = Snapshot(params)
    out = {"params": sum(p.numel() for p in params.values())}
    dims = (1,) if model_name == "1b" else (1, 2)
    for n in dims:
        for kind in ("old", "new") if model_name == "1b" else ("old", "new", "held"):
            t0 = time.perf_counter()
            dirs = make_dirs(kind, snapshot, n, device)  # 2D: Gram–Schmidt's pass over both
            with perturbed(snapshot, dirs, [0.1, 0.1][:n]):  # warm-up (normalisation factors)
                pass
            sync(args.device)
            setup = time.perf_counter() - t0
            times = []
            for r in range(args.repeats if model_name == "embedded" else 1):
                t0 = time.perf_counter()
                with perturbed(snapshot, dirs, [0.2 + 0.01 * r, -0.1][:n]):
                    sync(args.device)
                sync(args.device)
                times.append(time.perf_counter() - t0)
            out[f"{n}d_{kind}_s"] = statistics.median(times)
            out[f"{n}d_{kind}_setup_s"] = setup
            print(f"  {model_name} {n}D {kind}: {statistics.median(times):.2f} s/point (setup {setup:.1f} s)")
    return out


def decode_times(args) -> dict:
    """Seconds of decoding + judging of one point of the demo's 1D and 2D scans (embedded model)."""
    from cache import Store
    from landscape.core.perturb import Snapshot
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

    out = {}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, Store(tmp) as store:
        session = Session(store, Runtime(device=args.device, progress=False), log=lambda m: None)
        for name, n_prompts, tokens_max in (("1d", 32, 32), ("2d", 12, 24)):
            spec = ScanSpec(
                model=ModelSpec(dtype=args.dtype),
                directions=(DirectionSpec(seed=0),),
                alphas=AxisSpec(num=3),
                prompts=PromptSpec(source="builtin:harmful", limit=n_prompts),
                generation=GenerationSpec(max_new_tokens=tokens_max),
            )
            prompts = load_prompts(spec.prompts)
            session.evaluate_at(spec, prompts[:2], Snapshot({}), [], [])  # warm-up
            res = session.evaluate_at(spec, prompts, Snapshot({}), [], [])
            out[f"{name}_decode_s"] = sec = res.metrics["elapsed_s"]
            out[f"{name}_tokens"] = tokens = res.metrics["tokens"]
            print(
                f"  embedded decode, demo {name} point ({n_prompts} prompts × ≤{tokens_max} tokens, one batch): "
                f"{sec:.2f} s, {tokens} new tokens, {tokens / sec:.1f} tokens/s"
            )
    return out


PLANS = ("model-only", "regenerated", "held-float32", "held-compute")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_child(model_name: str, plan: str, args) -> None:
    """One plan in this process: model, snapshot, 2D directions (held or not), one point. Its
    extra memory is the peak RSS after the model is loaded minus the RSS then: loading the GGUF
    peaks far higher than a scan, so the kernel's high-water mark is reset first (Linux
    ``/proc/self/clear_refs``)."""
    import gc

    import torch

    from landscape.core.directions import Materialized
    from landscape.core.perturb import Snapshot, perturbed

    model, params = load(model_name, args.dtype, args.device)
    device = next(iter(params.values())).device
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kb("VmRSS")
    if plan != "model-only":
        snapshot = Snapshot(params)
        n = 1 if model_name == "1b" else 2
        dirs = make_dirs("new", snapshot, n, device)
        if plan.startswith("held"):
            dtype = torch.float32 if plan == "held-float32" else model.dtype
            dirs = [Materialized(d, dtype=dtype) for d in dirs]
        with perturbed(snapshot, dirs, [0.1, 0.1][:n]):
            pass
    out = {"base_rss_mb": base / 1024, "extra_peak_rss_mb": (_status_kb("VmHWM") - base) / 1024}
    if args.device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out))


def rss(model_name: str, args) -> dict:
    out = {}
    for plan in PLANS:
        cmd = [
            sys.executable,
            __file__,
            "--rss-child",
            model_name,
            plan,
            "--dtype",
            args.dtype,
            "--device",
            args.device,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            print(f"  {model_name} {plan}: failed: {res.stderr.strip().splitlines()[-1:]}")
            continue
        out[plan] = json.loads(line[0][7:])
        r = out[plan]
        cuda = f"; peak CUDA {r['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in r else ""
        print(
            f"  {model_name} {plan}: peak RSS {r['extra_peak_rss_mb']:.0f} MB over the loaded model "
            f"({r['base_rss_mb']:.0f} MB){cuda}"
        )
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=3, help="timed points per case (embedded model)")
    p.add_argument("--skip-1b", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--rss-child", nargs=2, metavar=("MODEL", "PLAN"))
    args = p.parse_args(argv)
    if args.rss_child:
        return rss_child(*args.rss_child, args)
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}, {args.dtype}"
    )
    result = {"embedded": overhead("embedded", args)}
    result["embedded"].update(decode_times(args))
    if not args.skip_1b:
        result["1b"] = overhead("1b", args)
    if not args.skip_rss:
        result["rss_embedded"] = rss("embedded", args)
    e = result["embedded"]
    print("\nper-point overhead (directions + perturb + restore), old → new generator:")
    for n in (1, 2):
        old, new, dec = e[f"{n}d_old_s"], e[f"{n}d_new_s"], e[f"{n}d_decode_s"]
        print(
            f"  embedded {n}D: {old:.2f} s → {new:.2f} s (new/old {new / old:.2f}); decoding a demo {n}D point "
            f"{dec:.2f} s: overhead/decoding {old / dec:.1%} → {new / dec:.1%}"
        )
        held = e[f"{n}d_held_s"]
        print(
            f"  embedded {n}D held in float32 (--keep-directions): {held:.2f} s ({held / dec:.1%} of decoding)"
        )
    if "1b" in result:
        b = result["1b"]
        print(
            f"  1.1B random Llama 1D ({b['params'] / 1e9:.2f}B perturbed): {b['1d_old_s']:.2f} s → {b['1d_new_s']:.2f} s "
            f"(new/old {b['1d_new_s'] / b['1d_old_s']:.2f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
