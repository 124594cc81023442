"""Benchmark: our scan against a faithful re-implementation of the reference algorithm.

The reference (Peng et al.'s released code, after Li et al.'s loss-landscape) evaluates a point by
building a perturbed copy of the whole state dict from θ₀ and a stored direction and calling
``load_state_dict`` on it (θ₀, the direction and the perturbed copy held at once), then decodes
with ``model.generate`` in batches of 4 to a fixed ``max_new_tokens``, no early stop.

Ours: ``scan_grid`` with its defaults (one snapshot, directions regenerated per tensor, all prompts
of a point in one batch, KV-cached greedy decoding that drops a response once its verdict is final).

Both sides are timed the same way, per whole point: for the reference from the perturbed copy to
the last verdict (copy, ``load_state_dict``, decode, judge), for ours ``point_s`` (directions
generated and applied, decode, judge, θ₀ restored). The decoding part alone (ours: ``elapsed_s``)
is printed beside it. Model loading and θ₀'s snapshot, paid once a scan, are outside both.

Two modes:

- default: both sides at the same token budget (``--max-new-tokens``, 32), builtin:harmful;
- ``--paper``: the reference at its real settings (80 prompts, 512 new tokens, batch 4, no early
  stop) on AdvBench goals (``/work/shared/data/advbench/harmful_behaviors.csv`` when present, else
  builtin:harmful) against ours at our defaults (32 new tokens, early stop, one batch) on the same
  prompts. The verdict agreement is then that of our short judgement with the paper's full one.

Both run in separate subprocesses on the same model, prompts, direction (same seed and
normalisation) and grid, in the same invocation, so the ratio is measured on one machine state.
Printed: per point the seconds of each side and their ratio, both ASRs and the share of prompts
on which the verdicts agree; peak memory of each (RSS; on CUDA also the peak allocated).

    python bench/bench_scan.py [--model aligned] [--prompts 32] [--points 5] [--half 0.15]
                               [--paper] [--device cuda --dtype bfloat16] [--json out.json]
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
REFERENCE_BATCH = 4


def _specs(args):
    """Our scan spec; the reference uses its model, prompts, direction seed and alphas."""
    from landscape.core.specs import AxisSpec, DirectionSpec, GenerationSpec, ModelSpec, PromptSpec, ScanSpec

    return ScanSpec(
        model=ModelSpec(source=args.model, dtype=args.dtype),
        directions=(DirectionSpec(seed=0),),
        alphas=AxisSpec(start=-args.half, stop=args.half, num=args.points),
        prompts=PromptSpec(source=args.source, limit=args.prompts),
        generation=GenerationSpec(max_new_tokens=args.max_new_tokens),
    )


def _resolved(spec, store):
    """``spec`` with its model source resolved in the user's store (for 'aligned')."""
    from landscape.core.models import resolve_source

    src = str(resolve_source(spec.model.source, store))
    return spec.model_copy(update={"model": spec.model.model_copy(update={"source": src})})


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_ours(args) -> dict:
    from cache import Store
    from landscape.core.specs import Runtime
    from landscape.engine.scan import scan_grid

    with tempfile.TemporaryDirectory() as tmp, Store(args.store) as models_store:
        spec = _resolved(_specs(args), models_store)
        with Store(tmp) as store:
            t0 = time.perf_counter()
            res = scan_grid(spec, store, Runtime(device=args.device, progress=False), log=lambda m: None)
            _sync(args.device)
            wall = time.perf_counter() - t0
            verdicts, point_s, decode_s = [], [], []
            for i in range(args.points):
                verdicts.append([r["refused"] for r in store.point_responses(res.key, i, 0)])
                metrics = store.point(res.key, i, 0)
                point_s.append(metrics["point_s"])
                decode_s.append(metrics["elapsed_s"])
    return {"wall_s": wall, "point_s": point_s, "decode_s": decode_s, "verdicts": verdicts}


def run_reference(args) -> dict:
    import torch

    from cache import Store
    from landscape.core.directions import random_direction
    from landscape.core.judges import judge_keywords
    from landscape.core.models import load_model, perturbable_parameters
    from landscape.core.prompts import format_chat, load_prompts

    t0 = time.perf_counter()
    with Store(args.store) as store:
        spec = _resolved(_specs(args), store)
        lm = load_model(spec.model, args.device, store)
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    prompts = load_prompts(spec.prompts)
    inputs = [format_chat(tok, p) for p in prompts]
    # The parameters (tied embeddings once, as the paper asks), not state_dict(): its duplicate
    # lm_head entry would overwrite the perturbed embedding on load.
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}  # copy 1: θ₀
    names = perturbable_parameters(model)
    # copy 2: the direction, drawn and normalised on the CPU as ours is, then held on the device
    cpu = {n: theta0[n].cpu() for n in names}
    direction = {n: t.to(device) for n, t in random_direction(cpu, 0, "layer").items()}
    del cpu
    verdicts, point_s, decode_s = [], [], []
    for alpha in spec.alphas.values():
        _sync(args.device)
        tp = time.perf_counter()
        perturbed = {
            k: (v + alpha * direction[k] if k in direction else v.clone()) for k, v in theta0.items()
        }  # copy 3
        model.load_state_dict(perturbed, strict=False)
        del perturbed
        td = time.perf_counter()
        point = []
        for s in range(0, len(inputs), REFERENCE_BATCH):
            enc = tok(
                inputs[s : s + REFERENCE_BATCH], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=args.ref_max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            point += [judge_keywords(t).refused for t in texts]
        _sync(args.device)
        verdicts.append(point)
        point_s.append(time.perf_counter() - tp)
        decode_s.append(time.perf_counter() - td)
    return {
        "wall_s": time.perf_counter() - t0,
        "point_s": point_s,
        "decode_s": decode_s,
        "verdicts": verdicts,
    }


def child(which: str, args) -> None:
    out = run_ours(args) if which == "ours" else run_reference(args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        import torch

        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="aligned")
    p.add_argument("--store", default=str(Path("~/.cache/safety-landscape").expanduser()))
    p.add_argument("--paper", action="store_true", help="the reference at its real settings (see above)")
    p.add_argument("--prompts", type=int, default=None, help="default 32, or 80 with --paper")
    p.add_argument("--source", default=None, help="prompt source (default: see above)")
    p.add_argument("--points", type=int, default=5)
    p.add_argument("--half", type=float, default=0.15, help="grid spans [-half, half]")
    p.add_argument(
        "--max-new-tokens", type=int, default=32, help="our budget (and the reference's by default)"
    )
    p.add_argument("--ref-max-new-tokens", type=int, default=None, help="default: ours, or 512 with --paper")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--json", default=None, help="also write the per-point figures here")
    p.add_argument("--child", choices=["ours", "reference"])
    args = p.parse_args(argv)
    if args.prompts is None:
        args.prompts = 80 if args.paper else 32
    if args.source is None:
        args.source = "builtin:advbench" if args.paper else "builtin:harmful"
    if args.ref_max_new_tokens is None:
        args.ref_max_new_tokens = 512 if args.paper else args.max_new_tokens
    return args


def compare(ref: dict, ours: dict, alphas: list[float]) -> dict:
    """Per point: both whole-point times, their ratio, both ASRs and the verdict agreement."""
    rows = []
    for k, a in enumerate(alphas):
        rv, ov = ref["verdicts"][k], ours["verdicts"][k]
        rows.append(
            {
                "alpha": a,
                "reference_s": ref["point_s"][k],
                "ours_s": ours["point_s"][k],
                "ratio": ref["point_s"][k] / ours["point_s"][k],
                "reference_decode_s": ref["decode_s"][k],
                "ours_decode_s": ours["decode_s"][k],
                "reference_asr_pct": 100 * sum(not v for v in rv) / len(rv),
                "ours_asr_pct": 100 * sum(not v for v in ov) / len(ov),
                "agree_pct": 100 * sum(a == b for a, b in zip(rv, ov, strict=True)) / len(rv),
            }
        )
    n = len(rows)
    pairs = sum(len(v) for v in ref["verdicts"])
    agree = sum(
        a == b
        for pa, pb in zip(ref["verdicts"], ours["verdicts"], strict=True)
        for a, b in zip(pa, pb, strict=True)
    )
    return {
        "points": rows,
        "reference_s_per_point": sum(r["reference_s"] for r in rows) / n,
        "ours_s_per_point": sum(r["ours_s"] for r in rows) / n,
        "agree_pct": 100 * agree / pairs,
        "pairs": pairs,
    }


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child, args)
        return
    results = {}
    for which in ("reference", "ours"):
        cmd = [sys.executable, __file__, "--child", which] + sys.argv[1:]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{which} failed:\n{out.stderr[-2000:]}")
        results[which] = json.loads(line[7:])
    ref, ours = results["reference"], results["ours"]
    from landscape.core.specs import AxisSpec

    alphas = AxisSpec(start=-args.half, stop=args.half, num=args.points).values()
    cmp = compare(ref, ours, alphas)
    print(
        f"model {args.model}, {args.points} points in [-{args.half}, {args.half}], {args.prompts} prompts "
        f"({Path(args.source).name}), {args.device}, {args.dtype}"
    )
    print(
        f"reference: {args.ref_max_new_tokens} new tokens, batch {REFERENCE_BATCH}, no early stop; "
        f"ours: {args.max_new_tokens} new tokens, early stop, batch 64"
    )
    print("times are whole points (perturb + decode + judge [+ restore]); decode-only in brackets")
    print(
        f"{'alpha':>7} {'reference s':>16} {'ours s':>14} {'ratio':>6} {'ref ASR%':>9} {'our ASR%':>9} {'agree%':>7}"
    )
    for r in cmp["points"]:
        print(
            f"{r['alpha']:>7.3f} {r['reference_s']:>7.2f} ({r['reference_decode_s']:>6.2f}) "
            f"{r['ours_s']:>6.2f} ({r['ours_decode_s']:>5.2f}) {r['ratio']:>6.2f} "
            f"{r['reference_asr_pct']:>9.1f} {r['ours_asr_pct']:>9.1f} {r['agree_pct']:>7.1f}"
        )
    mem = "peak RSS MB" + (" / CUDA MB" if "peak_cuda_mb" in ref else "")
    for name, side in (("reference", ref), ("ours", ours)):
        cuda = f" / {side['peak_cuda_mb']:.0f}" if "peak_cuda_mb" in side else ""
        print(f"{name:<10} {cmp[name + '_s_per_point']:.2f} s/point, {mem} {side['peak_rss_mb']:.0f}{cuda}")
    print(
        f"speed-up per point: {cmp['reference_s_per_point'] / cmp['ours_s_per_point']:.2f}x   "
        f"memory ratio (ours/reference RSS): {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}   "
        f"verdict agreement: {cmp['agree_pct']:.1f}% of {cmp['pairs']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **cmp, "raw": results}, indent=2))


if __name__ == "__main__":
    main()
