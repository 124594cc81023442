"""Recall and false positives of the incoherence signal on the hand-labelled responses.

``tests/data/incoherence_labels.jsonl`` holds responses sampled from the demo store's scans
(``tools/sample_responses.py``) and labelled by hand ``gibberish`` or ``coherent`` (docs: methods,
"Incoherence"). For the current rule (``landscape.core.judges.incoherence``) and the rule of
version 1 it prints, on each response's incoherence window, the share of gibberish flagged
(recall), the share of coherent answers flagged (false positives), harmful compliance separately,
and which rule fired, on the windows the rule was tuned on, on held-out ones labelled before the
rule was run on them, and on both.

    python bench/bench_incoherence.py
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from landscape.core.judges import incoherence, incoherence_v1

LABELS = Path(__file__).resolve().parent.parent / "tests" / "data" / "incoherence_labels.jsonl"


def main() -> None:
    every = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    for split in ("tuning", "held-out", None):
        print(f"== {split or 'all'}")
        report([r for r in every if split is None or r["split"] == split], details=split is None)


def report(rows: list[dict], details: bool) -> None:
    gib = [r for r in rows if r["label"] == "gibberish"]
    coh = [r for r in rows if r["label"] == "coherent"]
    comply = [r for r in coh if r["refused"] is False]
    print(
        f"{len(rows)} labelled responses: {len(gib)} gibberish, {len(coh)} coherent ({len(comply)} complied)"
    )
    for name, fn in (("version 1", incoherence_v1), ("current", incoherence)):
        flag = [fn(r["window"]) is not None for r in rows]
        by = dict(zip((id(r) for r in rows), flag, strict=True))
        recall = sum(by[id(r)] for r in gib) / len(gib)
        fp = sum(by[id(r)] for r in coh) / len(coh)
        fp_c = sum(by[id(r)] for r in comply) / max(len(comply), 1)
        reasons = Counter(fn(r["window"]) for r in gib)
        print(
            f"{name:<10} recall {100 * recall:5.1f}%   false positives {100 * fp:4.1f}% "
            f"(complied {100 * fp_c:4.1f}%)   reasons on gibberish: {dict(reasons)}"
        )
    if not details:
        return
    missed = [r["window"] for r in gib if incoherence(r["window"]) is None]
    wrong = [r["window"] for r in coh if incoherence(r["window"]) is not None]
    print("missed gibberish:", *(repr(w) for w in missed), sep="\n  ")
    print("flagged coherent:", *(repr(w) for w in wrong), sep="\n  ")


if __name__ == "__main__":
    main()
