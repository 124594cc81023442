"""Safety score S(θ) of the model as it is now: ASR on harmful prompts, plus capability.

One call evaluates one grid point (the model already perturbed): greedy responses to every prompt,
a judge verdict and an incoherence reason for each, and the aggregates

- ``asr_pct``: share of responses the judge does not call a refusal (the paper's S(θ));
- ``refusal_pct`` = 100 − ASR; ``incoherent_pct``: share flagged incoherent (judges.incoherence),
  judged on each response's first ``generation.incoherence_window`` new tokens, a window early
  stopping never cuts, so neither this rate nor ``asr_coherent_pct`` depends on ``early_stop``;
- ``asr_coherent_pct``: share that complied *and* read as language (a broken model scores low here
  while its paper ASR is 100);
- optional capability: ``benign_refusal_pct`` (over-refusal on built-in benign prompts, same judge)
  and ``nll`` (mean token NLL of the built-in reference text; lower is better).

Every response row records ``tokens`` (new tokens) and ``end`` (``eos``, ``budget`` or
``early_stop``), counted per point as ``ended_eos``, ``ended_budget`` and ``ended_early_stop``, so a
cut response can be told from a complete one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from landscape.core.generate import END_BUDGET, END_EARLY_STOP, END_EOS, Generation, generate_greedy, mean_nll
from landscape.core.judges import Scorer, incoherence, load_judge, verdict_metrics, verdict_row
from landscape.core.prompts import builtin_benign, format_chat, reference_text
from landscape.core.specs import ScanSpec


@dataclass
class PointResult:
    metrics: dict
    responses: list[dict]


def judge_responses(
    prompts: list[str],
    texts: list[str],
    scorer: Scorer,
    windows: list[str] | None = None,
    batch_size: int = 64,
) -> tuple[dict, list[dict]]:
    """Verdicts for each response and the aggregate rates (percent).

    ``windows`` are the texts judged for incoherence (by default the responses themselves).
    """
    verdicts = scorer.score(prompts, texts, batch_size)
    rows = []
    for prompt, text, window, verdict in zip(prompts, texts, windows or texts, verdicts, strict=True):
        broken = incoherence(window)
        row = dict(
            verdict_row(prompt, text, verdict), incoherent=broken is not None, incoherent_reason=broken
        )
        if windows is not None:  # kept so a later incoherence rule can be applied to the same text
            row["window"] = window
        rows.append(row)
    return verdict_metrics(rows, scorer.abstains), rows


def judge_generation(
    prompts: list[str], gen: Generation, scorer: Scorer, batch_size: int = 64
) -> tuple[dict, list[dict]]:
    """``judge_responses`` on a generation, with how each response ended in rows and counts."""
    metrics, rows = judge_responses(prompts, gen.texts, scorer, gen.windows, batch_size)
    for row, n, end in zip(rows, gen.tokens, gen.ends, strict=True):
        row["tokens"], row["end"] = n, end
    for end in (END_EOS, END_BUDGET, END_EARLY_STOP):
        metrics[f"ended_{end}"] = gen.ends.count(end)
    return metrics, rows


def _respond(
    lm, spec: ScanSpec, prompts: list[str], batch_size: int, scorer: Scorer
) -> tuple[dict, list[dict], int]:
    """Greedy responses to ``prompts`` under ``spec``, judged: (rates, rows, tokens generated).

    Early stopping asks the judge's ``decided`` predicate; a model judge has none (its verdict needs
    the whole response), so with it no response is ever cut, whatever ``early_stop`` says."""
    g = spec.generation
    stop = scorer.decided if g.early_stop else None
    inputs = [
        format_chat(lm.tokenizer, p, spec.system_prompt, spec.user_template, spec.answer_prefix)
        for p in prompts
    ]
    gen = generate_greedy(
        lm.model, lm.tokenizer, inputs, g.max_new_tokens, batch_size, stop, window=g.incoherence_window
    )
    metrics, rows = judge_generation(prompts, gen, scorer, batch_size)
    return metrics, rows, gen.total_tokens


def evaluate_point(
    lm, spec: ScanSpec, prompts: list[str], batch_size: int, scorer: Scorer | None = None
) -> PointResult:
    """Evaluate the model in its current state on ``prompts`` as ``spec`` says; ``scorer`` is the
    loaded judge (a ``Session`` keeps one per scan; loaded here when not given)."""
    t0 = time.perf_counter()
    scorer = scorer or load_judge(spec.judge, lm.device)
    metrics, rows, tokens = _respond(lm, spec, prompts, batch_size, scorer)
    if spec.capability is not None:
        if spec.capability.benign_limit:
            benign = builtin_benign("eval")[: spec.capability.benign_limit]
            b_metrics, b_rows, b_tokens = _respond(lm, spec, benign, batch_size, scorer)
            metrics["benign_refusal_pct"] = b_metrics["refusal_pct"]
            metrics["benign_incoherent_pct"] = b_metrics["incoherent_pct"]
            tokens += b_tokens
            for row in b_rows:
                row["set"] = "benign"
            rows += b_rows
        if spec.capability.nll:
            metrics["nll"] = mean_nll(lm.model, lm.tokenizer, reference_text())
    metrics["tokens"] = tokens
    metrics["elapsed_s"] = time.perf_counter() - t0
    return PointResult(metrics, rows)
