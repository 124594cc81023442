"""Agreement between two judges of the same responses: Cohen's κ and the share that disagree.

Pure numpy (the dashboard's Compare page uses it). Each verdict is ``True`` (refused), ``False``
(complied) or ``None`` (no verdict: unparsed by a model judge, or cut by early stopping); a
response either judge left without a verdict is left out of both numbers and counted in
``n_apart``.

Cohen (1960): κ = (p_o − p_e) / (1 − p_e), with p_o the observed share of agreement and
p_e = Σ_c p_a(c)·p_b(c) the agreement expected by chance from each judge's own label shares.
Degenerate case: when both judges give every response the same single label, p_e = 1 and the
formula is 0/0; we define κ = 1 there (the judges agree on every response, and p_o = 1 whenever
p_e = 1), so a point deep inside the basin where both judges say "refused" to everything reads as
full agreement, not as undefined. κ is None only when no response has a verdict from both. The
overall κ pools every response of every point (it is not a mean of per-point κ values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def cohen_kappa(a: Sequence, b: Sequence) -> float | None:
    """Cohen's κ of two equally long label sequences (any hashable labels); None when empty;
    1.0 in the degenerate case where both use one and the same label throughout (see module)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.shape != b.shape:
        raise ValueError(f"label sequences differ in length: {a.shape} vs {b.shape}")
    if a.size == 0:
        return None
    p_o = float(np.mean(a == b))
    p_e = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in set(a.tolist()) | set(b.tolist()))
    if np.isclose(p_e, 1.0):
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)


@dataclass(frozen=True)
class Agreement:
    """Two judges on one set of responses: ``n`` judged by both, ``n_apart`` left out."""

    n: int
    n_apart: int
    disagree_pct: float | None  # share of the n responses the judges call differently
    kappa: float | None


def agreement(verdicts_a: Sequence[bool | None], verdicts_b: Sequence[bool | None]) -> Agreement:
    """κ and the disagreement share of two judges' verdicts on the same responses, in order."""
    if len(verdicts_a) != len(verdicts_b):
        raise ValueError(f"verdict lists differ in length: {len(verdicts_a)} vs {len(verdicts_b)}")
    both = [(x, y) for x, y in zip(verdicts_a, verdicts_b, strict=True) if x is not None and y is not None]
    n = len(both)
    a = [x for x, _ in both]
    b = [y for _, y in both]
    disagree = 100.0 * sum(x != y for x, y in both) / n if n else None
    return Agreement(n, len(verdicts_a) - n, disagree, cohen_kappa(a, b))


@dataclass(frozen=True)
class PointAgreement:
    i: int
    j: int
    alpha: float
    beta: float
    agreement: Agreement


@dataclass(frozen=True)
class AgreementTable:
    points: list[PointAgreement]  # grid order (i, then j)
    overall: Agreement  # every response of every point pooled


def agreement_table(
    points: dict[tuple[int, int], tuple[float, float, Sequence[bool | None], Sequence[bool | None]]],
) -> AgreementTable:
    """Per-point and pooled agreement from ``{(i, j): (alpha, beta, verdicts_a, verdicts_b)}``."""
    rows, all_a, all_b = [], [], []
    for (i, j), (alpha, beta, va, vb) in sorted(points.items()):
        rows.append(PointAgreement(i, j, alpha, beta, agreement(va, vb)))
        all_a += list(va)
        all_b += list(vb)
    return AgreementTable(rows, agreement(all_a, all_b))
