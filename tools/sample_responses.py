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
    from landscape.engine.rejudge import row_windows, window_maker

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
            make = window_maker(store, s)  # the scan model's tokenizer, loaded on first use
            asr = store.scan_grid(s["key"], fields=("asr_pct",)).values["asr_pct"]
            for i in range(len(asr)):
                rows = [r for r in store.point_responses(s["key"], i, 0) or [] if r.get("set") != "benign"]
                for r in rows:
                    item = {
                        "scan": s["key"][:12],
                        "kind": s["kind"],
                        "model": spec["model"]["source"]
                        + (" + adapter" if spec["model"].get("adapter") else ""),
                        "row": r,
                        "make": make,
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
        for item in picked:  # the window the scan judged: stored with the row, or re-made as rejudge does
            (item["window"],) = row_windows([item.pop("row")], item.pop("make"))
            item["label"] = ""
            print(json.dumps(item, ensure_ascii=False))


if __name__ == "__main__":
    main()
