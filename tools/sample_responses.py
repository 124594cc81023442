"""Sample stored responses for hand-labelling the incoherence signal (tests/data/incoherence_labels.jsonl).

For every complete 1D scan and single-point evaluation in a store (a fine-tuned model's harmful
score: coherent harmful compliance), it takes harmful-prompt responses from the points whose ASR
is at least ``--far-asr`` (far from θ₀, where a broken model writes word salad) and from the points
below it (the basin and its wall: refusals and coherent compliance), seeded, and writes one JSON
line each with the response, its incoherence window (the first ``incoherence_window`` new tokens,
re-tokenised with the scan model's tokenizer) and an empty ``label`` to be filled in by hand:
``gibberish`` or ``coherent``.

    python tools/sample_responses.py --store /tmp/demo-fresh --far 90 --near 60 > /tmp/to_label.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from cache import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--far", type=int, default=90, help="responses from points with ASR ≥ --far-asr")
    ap.add_argument("--near", type=int, default=60, help="responses from the other points")
    ap.add_argument("--far-asr", type=float, default=90.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scans", nargs="*", default=None, help="only these scans (key prefixes)")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from landscape.core.models import resolve_source

    rng = random.Random(args.seed)
    far, near = [], []
    with Store(args.store) as store:
        for s in store.list_scans():
            if s["kind"] not in ("1d", "eval") or s["status"] != "complete" or s.get("derived"):
                continue
            if args.scans is not None and not any(s["key"].startswith(p) for p in args.scans):
                continue
            spec = s["spec"]
            window = spec["generation"].get("incoherence_window", 16)
            source = resolve_source(spec["model"]["source"], store)
            asr = store.scan_grid(s["key"], fields=("asr_pct",)).values["asr_pct"]
            for i in range(len(asr)):
                rows = [r for r in store.point_responses(s["key"], i, 0) or [] if r.get("set") != "benign"]
                for r in rows:
                    item = {
                        "scan": s["key"][:12],
                        "kind": s["kind"],
                        "model": spec["model"]["source"]
                        + (" + adapter" if spec["model"].get("adapter") else ""),
                        "source": str(source),
                        "alpha": s["alphas"][i],
                        "point_asr": float(asr[i]),
                        "window_tokens": window,
                        "prompt": r["prompt"],
                        "response": r["response"],
                        "refused": r["refused"],
                        "stored_incoherent": r.get("incoherent"),
                    }
                    (far if np.isfinite(asr[i]) and asr[i] >= args.far_asr else near).append(item)
    picked = rng.sample(far, min(args.far, len(far))) + rng.sample(near, min(args.near, len(near)))
    toks: dict[str, object] = {}
    for item in picked:
        src = item.pop("source")
        if src not in toks:
            path = Path(src)
            toks[src] = (
                AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                if path.suffix == ".gguf"
                else AutoTokenizer.from_pretrained(path)
            )
        tok = toks[src]
        ids = tok(item["response"], add_special_tokens=False)["input_ids"][: item["window_tokens"]]
        item["window"] = tok.decode(ids, skip_special_tokens=True)
        item["label"] = ""
        print(json.dumps(item, ensure_ascii=False))


if __name__ == "__main__":
    main()
