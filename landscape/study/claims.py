"""The study's claims, each with the test that backs it (no claim without a test).

Two comparisons are made from a finished study record, on the per-prompt verdicts stored beside
each harmful score (``harmful_complied``; every seed's under ``per_seed``):

- a defended run against the run with the same attack and no defence ("defence X lowers the
  harmful score vs run Y");
- an undefended run against θ₀ measured in the same format (the default chat format, or the run's
  own for a structural attack: the study's format baselines).

Both sides answer the same prompts, so the tests are paired: with one seed on each side McNemar's
exact test on the discordant prompts (``core.stats.mcnemar_exact``); with several seeds on either
side a two-sided bootstrap that resamples prompts jointly across both runs and every seed
(``core.stats.bootstrap_difference``, B and seed stated). Records written before verdicts were
stored give no claims, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landscape.core.format import format_number as _f
from landscape.core.stats import (
    BOOTSTRAP_B,
    BOOTSTRAP_SEED,
    bootstrap_difference,
    discordant,
    format_p,
    mcnemar_exact,
)

ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    """One comparison of harmful scores: ``subject`` against ``reference``, tested."""

    subject: str
    reference: str
    what: str  # what the subject differs by ("antidote", "the harmful attack")
    subject_pct: float
    reference_pct: float
    test: str
    statistic: float
    p: float
    seeds: int = 1  # the fewer seeds of the two sides

    @property
    def verb(self) -> str:
        d = self.subject_pct - self.reference_pct
        return "lowers" if d < 0 else "raises" if d > 0 else "does not change"

    def text(self) -> str:
        verdict = "significant at 0.05" if self.p < ALPHA else "not significant at 0.05"
        return (
            f"{self.subject}: {self.what} {self.verb} the harmful score vs {self.reference} "
            f"({_f(self.subject_pct)}% vs {_f(self.reference_pct)}%; {self.test}, {format_p(self.p)}, {verdict})"
        )


def _verdicts(row: dict) -> np.ndarray | None:
    """(seeds, prompts) verdicts behind a row's harmful score, or None when not stored."""
    per = [p.get("harmful_complied") for p in row.get("per_seed") or [row]]
    if not per or any(v is None for v in per) or len({len(v) for v in per}) != 1:
        return None
    return np.asarray(per, dtype=bool)


def compare(subject: dict, reference: dict, what: str) -> Claim | None:
    """The tested claim that ``subject``'s harmful score differs from ``reference``'s."""
    a, b = _verdicts(subject), _verdicts(reference)
    if a is None or b is None or a.shape[1] != b.shape[1]:
        return None
    if a.shape[0] == 1 and b.shape[0] == 1:
        res = mcnemar_exact(a[0], b[0])
        n10, n01 = discordant(a[0], b[0])
        test = f"McNemar exact test on {a.shape[1]} paired prompts ({n10} vs {n01} discordant)"
    else:
        res = bootstrap_difference(a, b, BOOTSTRAP_B, BOOTSTRAP_SEED)
        test = (
            f"bootstrap over {a.shape[1]} prompts and {a.shape[0]} vs {b.shape[0]} seeds "
            f"(B = {BOOTSTRAP_B}, seed {BOOTSTRAP_SEED})"
        )
    name = subject.get("name") or f"{subject['model']} in the {subject['structure']} format"
    ref = reference.get("name") or f"{reference['model']} in the {reference['structure']} format"
    seeds = min(a.shape[0], b.shape[0])
    return Claim(name, ref, what, 100 * a.mean(), 100 * b.mean(), test, res.statistic, res.p, seeds)


def study_claims(record: dict) -> tuple[list[Claim], int]:
    """Every claim the record supports, and how many comparisons lacked stored verdicts."""
    models = record.get("models") or []
    if not models:
        return [], 0
    theta0, runs = models[0], models[1:]
    baselines = {b["structure"]: b for b in record.get("format_baselines") or []}
    out, missing = [], 0
    for m in runs:
        if m.get("defenses"):
            ref = next(
                (
                    u
                    for u in runs
                    if not u.get("defenses")
                    and u.get("attack_spec", u.get("attack")) == m.get("attack_spec", m.get("attack"))
                ),
                None,
            )
            what = ", ".join(m["defenses"])
        else:
            ref = baselines.get(m.get("structure")) or (theta0 if m.get("structure") == "benign" else None)
            what = f"the {m.get('attack')} fine-tune"
        if ref is None:
            continue
        claim = compare(m, ref, what)
        if claim is None:
            missing += 1
        else:
            out.append(claim)
    return out, missing


# Measured by bench/bench_claim_tests.py (bench/results_claim_tests.txt, 1,000 simulated pairs a
# row): the largest share of p < 0.05 when the two runs are equal in expectation but every
# fine-tune has its own seed effect, a logit sd of 0.5 / 1.0 (0 gives ≤ 2.5% at every seed count).
SIZE_ACROSS_SEEDS = {1: (0.158, 0.373), 2: (0.045, 0.145), 3: (0.018, 0.079), 5: (0.018, 0.068)}


def seeds_caveat(claims: list[Claim]) -> str | None:
    """What the claims' tests do not cover, as a markdown line, when fewer than 10 seeds a side: a
    test holds the fine-tuned models fixed, so as a claim about a defence (over training's
    randomness) its size grows with the spread between seeds (``SIZE_ACROSS_SEEDS``)."""
    if not claims:
        return None
    fewest = min(c.seeds for c in claims)
    if fewest >= 10:
        return None
    known = max(s for s in SIZE_ACROSS_SEEDS if s <= fewest)
    mid, high = SIZE_ACROSS_SEEDS[known]
    what = "one seed a side" if fewest == 1 else f"{fewest} seeds on a side"
    return (
        f"- with {what}, each test is about these fine-tunes: as a claim about the defence over "
        f"training seeds, a 5% test rejected {100 * mid:.0f}% / {100 * high:.0f}% of equal pairs in "
        "simulation when seeds spread a logit sd of 0.5 / 1 (docs: methods, Claim tests; `seeds:` "
        "narrows it)"
    )


def claim_lines(claims: list[Claim]) -> list[str]:
    """Claims as markdown bullet lines, then what their tests do not cover (``seeds_caveat``); the
    study's, a sweep's and a search's lists alike."""
    caveat = seeds_caveat(claims)
    return [f"- {c.text()}" for c in claims] + ([caveat] if caveat else [])


def claims_markdown(record: dict) -> list[str]:
    """The claims as markdown bullet lines (empty when the record supports none)."""
    claims, missing = study_claims(record)
    lines = claim_lines(claims)
    if missing:
        lines.append(
            f"- {missing} comparison(s) make no claim: their per-prompt verdicts are not in this "
            "(older) record; rerun the study to test them"
        )
    if lines:
        lines.insert(0, "**Claims** (harmful score, each with its two-sided test):")
    return lines
