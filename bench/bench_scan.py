"""Benchmark: our scan against a faithful re-implementation of the reference algorithm.

The reference (Peng et al.'s released code, after Li et al.'s loss-landscape) evaluates a point by
building a perturbed copy of the whole state dict from θ₀ and a stored direction and calling
``load_state_dict`` on it (θ₀, the direction and the perturbed copy held at once), then decodes
with ``model.generate`` in batches of 4 to a fixed ``max_new_tokens``, no early stop, fp32.

Ours: ``scan_grid`` with its defaults (one snapshot, directions regenerated per tensor, all prompts
of a point in one batch, KV-cached greedy decoding that drops a response once its verdict is final).

Both run in separate subprocesses on the same model, prompts, direction (same seed and
normalisation) and grid, in the same invocation, so the ratio is measured on one machine state.
Printed: seconds per point for each and the ratio, peak RSS of each, and the share of
(point, prompt) verdicts on which they agree.

    python bench/bench_scan.py [--model aligned] [--prompts 32] [--points 5] [--half 0.15]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _specs(args):
    from landscape.specs import AxisSpec, DirectionSpec, GenerationSpec, ModelSpec, PromptSpec, ScanSpec

    return ScanSpec(
        model=ModelSpec(source=args.model, dtype=args.dtype),
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(start=-args.half, stop=args.half, num=args.points),
        prompts=PromptSpec(source="builtin:harmful", limit=args.prompts),
        generation=GenerationSpec(max_new_tokens=args.max_new_tokens),
    )


def run_ours(args) -> dict:
    from cache import Store
    from landscape.scan import scan_grid
    from landscape.specs import Runtime

    spec = _specs(args)
    with tempfile.TemporaryDirectory() as tmp, Store(args.store) as models_store:
        # Loading the model from the user's store (for 'aligned'), scanning into a fresh one.
        from landscape.models import resolve_source

        src = str(resolve_source(spec.model.source, models_store))
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"source": src})})
        with Store(tmp) as store:
            t0 = time.perf_counter()
            res = scan_grid(spec, store, Runtime(device=args.device, progress=False), log=lambda m: None)
            wall = time.perf_counter() - t0
            verdicts = []
            for i in range(args.points):
                verdicts.append([r["refused"] for r in store.point_responses(res.key, i, 0)])
            per_point = [store.point(res.key, i, 0)["elapsed_s"] for i in range(args.points)]
    return {"wall_s": wall, "per_point_s": per_point, "verdicts": verdicts}


def run_reference(args) -> dict:
    import torch

    from cache import Store
    from landscape.directions import random_direction
    from landscape.judges import judge_keywords
    from landscape.models import load_model, perturbable_parameters
    from landscape.prompts import format_chat, load_prompts

    spec = _specs(args)
    with Store(args.store) as store:
        lm = load_model(spec.model, args.device, store)
    model, tok = lm.model, lm.tokenizer
    prompts = load_prompts(spec.prompts)
    inputs = [format_chat(tok, p) for p in prompts]
    t0 = time.perf_counter()
    # The parameters (tied embeddings once, as the paper asks), not state_dict(): its duplicate
    # lm_head entry would overwrite the perturbed embedding on load.
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}  # copy 1: θ₀
    names = perturbable_parameters(model)
    direction = random_direction({n: theta0[n] for n in names}, 0, "layer")  # copy 2: direction
    verdicts, per_point = [], []
    for alpha in spec.alphas.values():
        tp = time.perf_counter()
        perturbed = {
            k: (v + alpha * direction[k] if k in direction else v.clone()) for k, v in theta0.items()
        }  # copy 3
        model.load_state_dict(perturbed, strict=False)
        del perturbed
        point = []
        for s in range(0, len(inputs), 4):
            enc = tok(inputs[s : s + 4], return_tensors="pt", padding=True, add_special_tokens=False).to(
                args.device
            )
            with torch.no_grad():
                out = model.generate(
                    **enc, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
                )
            texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            point += [judge_keywords(t).refused for t in texts]
        verdicts.append(point)
        per_point.append(time.perf_counter() - tp)
    return {"wall_s": time.perf_counter() - t0, "per_point_s": per_point, "verdicts": verdicts}


def child(which: str, args) -> None:
    out = run_ours(args) if which == "ours" else run_reference(args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="aligned")
    p.add_argument("--store", default=str(Path("~/.cache/safety-landscape").expanduser()))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--points", type=int, default=5)
    p.add_argument("--half", type=float, default=0.15, help="grid spans [-half, half]")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--child", choices=["ours", "reference"])
    args = p.parse_args()
    if args.child:
        child(args.child, args)
        return
    results = {}
    for which in ("reference", "ours"):
        cmd = [sys.executable, __file__, "--child", which] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{which} failed:\n{out.stderr[-2000:]}")
        results[which] = json.loads(line[7:])
    ref, ours = results["reference"], results["ours"]
    ref_pp = sum(ref["per_point_s"]) / len(ref["per_point_s"])
    our_pp = sum(ours["per_point_s"]) / len(ours["per_point_s"])
    pairs = [
        (a, b)
        for pa, pb in zip(ref["verdicts"], ours["verdicts"], strict=True)
        for a, b in zip(pa, pb, strict=True)
    ]
    agree = sum(a == b for a, b in pairs) / len(pairs)
    print(
        f"model {args.model}, {args.points} points in [-{args.half}, {args.half}], {args.prompts} prompts, "
        f"max_new_tokens {args.max_new_tokens}, device {args.device}, {args.dtype}"
    )
    print(f"{'':<12} {'s/point':>9} {'peak RSS MB':>12}")
    print(f"{'reference':<12} {ref_pp:>9.2f} {ref['peak_rss_mb']:>12.0f}")
    print(f"{'ours':<12} {our_pp:>9.2f} {ours['peak_rss_mb']:>12.0f}")
    print(
        f"speed-up per point: {ref_pp / our_pp:.2f}x   memory ratio (ours/reference): "
        f"{ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}   verdict agreement: {100 * agree:.1f}% of {len(pairs)}"
    )


if __name__ == "__main__":
    main()
