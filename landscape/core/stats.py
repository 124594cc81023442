"""Uncertainty on every number: intervals for ASRs and VISAGE, tests for claims (numpy and math only).

An ASR is a share of n prompts, so every ASR, VISAGE and "defence X beats run Y" carries sampling
error that the point values hide (32 prompts cannot tell 60% from 70%).

- ``wilson``: the 95% Wilson score interval of a proportion k/n, in percent (Wilson 1927;
  Agresti & Coull 1998 recommend it over the normal interval, which collapses at 0 and n):
  centre (p̂ + z²/2n)/(1 + z²/n), half-width z·√(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n).
- ``bootstrap_visage``: an interval for the paper's VISAGE over prompts (default ``"bounds"``: from
  the lowest VISAGE the data allow, every point seen at 100% counted inside the basin, to the
  paper estimator's upper quantile; checked by simulation, ``core.simulate``). The same
  prompts are asked at every point, so one resample of prompt indices is applied to every point of
  a scan, and jointly to every scan of a family (K directions), whose VISAGE is the mean over K.
  Seeded (``numpy.random.default_rng(seed)``) and reproducible; the seed comes back with the result.
- ``bootstrap_visage(..., method="bca")``: the bias-corrected and accelerated interval (Efron 1987;
  Efron & Tibshirani 1993, ch. 14): the percentile levels shifted by the bias z₀ = Φ⁻¹(share of
  resamples below the estimate) and the acceleration â from the jackknife over prompts,
  â = Σ(θ̄ − θ₍ᵢ₎)³ / (6 (Σ(θ̄ − θ₍ᵢ₎)²)^{3/2}); α' = Φ(z₀ + (z₀ + z_α)/(1 − â(z₀ + z_α))). VISAGE is
  a bounded, skewed statistic (capped at 0 and 100), where the plain percentile interval is biased.
- ``two_proportion_z``: the pooled two-proportion z-test, two-sided (normal tail by ``math.erfc``),
  for independent samples only.
- ``mcnemar_exact``: McNemar's exact test for paired verdicts (the same prompts under two models),
  the binomial test on the discordant prompts; what the study's one-seed claims use.
- ``bootstrap_difference``: the difference of two mean ASRs resampled over prompts (the same
  indices for both sides: they answer the same prompts) and over seeds; its two-sided p-value is
  the one that inverts the percentile interval, 2·min(P*(Δ ≤ 0), P*(Δ ≥ 0)) with the +1 correction.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np

from landscape.core.visage import visage_reference

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_B = 1000
BOOTSTRAP_SEED = 0


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials, in percent; (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n]: k={k}, n={n}")
    return wilson_share(k / n, n, z)


def wilson_share(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's interval for a share ``p`` seen in an effective sample of ``n`` (not always whole)."""
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n)) / denom
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def effective_prompts(verdicts) -> float:
    """Kish's effective sample size of a (seeds, prompts) array of 0/1 verdicts whose prompts are the
    independent units: p̂(1−p̂) over the variance of the mean of the per-prompt averages, kept between
    the prompt count (every seed agrees on each prompt) and seeds × prompts (seeds independent);
    the prompt count when that variance or p̂(1−p̂) is 0 (nothing says the seeds are independent)."""
    x = np.atleast_2d(np.asarray(verdicts, dtype=float))
    s, n = x.shape
    p = x.mean()
    var = x.mean(axis=0).var(ddof=1) / n if n > 1 else 0.0
    if var <= 0 or p <= 0 or p >= 1:
        return float(n)
    return float(min(max(p * (1 - p) / var, n), n * s))


def clustered_wilson(verdicts, z: float = Z95) -> tuple[float, float]:
    """A 95% interval, in percent, for the mean of (seeds, prompts) 0/1 verdicts over the population
    of prompts, the seeds' models held fixed: Wilson's interval at the effective number of prompts
    (``effective_prompts``). One seed: exactly ``wilson``. Pooling seeds × prompts as independent
    trials ignores that every seed answers the same prompts and covers as little as 81% where a
    prompt's difficulty dominates; this covers 93.5–97% in the simulation of
    ``tests/landscape/core/test_stats.py`` (3 seeds, 32 prompts, logistic prompt and seed effects)."""
    x = np.atleast_2d(np.asarray(verdicts, dtype=float))
    if x.shape[0] == 1:
        return wilson(int(x.sum()), x.shape[1], z)
    if x.shape[1] == 0:
        return float("nan"), float("nan")
    return wilson_share(float(x.mean()), effective_prompts(x), z)


def wilson_arrays(asr_pct, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """``wilson`` element-wise over a grid of ASRs (percent) asked of ``n`` prompts each (scalar or
    grid); NaN where the ASR or n is missing. k is recovered as round(ASR·n/100)."""
    asr = np.asarray(asr_pct, dtype=float)
    ns = np.broadcast_to(np.asarray(n, dtype=float), asr.shape)
    lo, hi = np.full(asr.shape, np.nan), np.full(asr.shape, np.nan)
    for idx in zip(*np.nonzero(np.isfinite(asr) & np.isfinite(ns) & (ns > 0)), strict=True):
        nn = int(ns[idx])
        lo[idx], hi[idx] = wilson(int(round(asr[idx] * nn / 100)), nn, z)
    return lo, hi


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


class TestResult(NamedTuple):
    """A hypothesis test's name, its statistic (z, or the observed difference in points) and p."""

    name: str
    statistic: float
    p: float


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> TestResult:
    """Two-sided pooled two-proportion z-test of k1/n1 against k2/n2."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one trial")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # both all-0 or both all-1: no evidence of a difference
        return TestResult("two-proportion z-test", 0.0, 1.0)
    z = (k1 / n1 - k2 / n2) / se
    return TestResult("two-proportion z-test", z, min(1.0, 2 * normal_sf(abs(z))))


def discordant(a, b) -> tuple[int, int]:
    """(n₁₀, n₀₁): prompts that complied under ``a`` alone and under ``b`` alone (paired verdicts)."""
    a, b = np.asarray(a, dtype=bool).ravel(), np.asarray(b, dtype=bool).ravel()
    if a.size != b.size or a.size == 0:
        raise ValueError("paired verdicts need the same, non-zero number of prompts on both sides")
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


def mcnemar_exact(a, b) -> TestResult:
    """McNemar's exact test of paired verdicts ``a`` and ``b`` (the same prompts, True: complied).

    Only the discordant prompts count: n₁₀ complied under ``a`` alone, n₀₁ under ``b`` alone. Under
    the null each discordant prompt is a fair coin, so p = min(1, 2·P(X ≤ min(n₁₀, n₀₁))) with
    X ~ Binomial(n₁₀ + n₀₁, ½) (statsmodels' ``mcnemar(exact=True)``); the statistic is min(n₁₀, n₀₁)
    as there. No discordant prompt: p = 1.
    """
    n10, n01 = discordant(a, b)
    n, k = n10 + n01, min(n10, n01)
    if n == 0:
        return TestResult("McNemar exact", 0.0, 1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return TestResult("McNemar exact", float(k), min(1.0, 2 * tail))


def _visage_rows(asr: np.ndarray) -> np.ndarray:
    """The paper's VISAGE of each row of ``asr`` (B, points): mean 100 − ASR where ASR < 100, else 0."""
    inside = asr < 100.0
    count = inside.sum(axis=1)
    total = np.where(inside, 100.0 - asr, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


class VisageInterval(NamedTuple):
    """VISAGE (mean over the scans) with its bootstrap percentile interval over prompts."""

    visage: float
    lo: float
    hi: float
    b: int
    seed: int
    level: float = 0.95
    method: str = "bounds"  # or "percentile", "bca": bias-corrected and accelerated


def _bca_levels(stats: np.ndarray, point: float, jack: np.ndarray, level: float) -> tuple[float, float]:
    """The BCa percentile levels (in [0, 1]) for ``stats`` (b,) around ``point``, from the jackknife
    values ``jack`` (n,). z₀ = 0 and â = 0 give back the percentile levels."""
    b = stats.size
    tie = np.isclose(stats, point, rtol=0, atol=1e-9)  # VISAGE takes few values: ties are common
    below = (np.sum((stats < point) & ~tie) + 0.5 * np.sum(tie)) / b
    norm = NormalDist()
    z0 = norm.inv_cdf(min(max(below, 1 / (b + 1)), b / (b + 1)))
    d = jack.mean() - jack
    denom = 6 * np.sum(d**2) ** 1.5
    a = float(np.sum(d**3) / denom) if denom > 0 else 0.0
    out = []
    for q in ((1 - level) / 2, (1 + level) / 2):
        z = z0 + norm.inv_cdf(q)
        out.append(norm.cdf(z0 + z / (1 - a * z)))
    return out[0], out[1]


def _visage_all_rows(asr: np.ndarray) -> np.ndarray:
    """The lowest VISAGE a population could have given ``asr`` (B, points): every point counted
    inside the basin, those at 100% with a margin of 0, i.e. mean of 100 − ASR over all points."""
    return (100.0 - asr).mean(axis=1)


def _reference_rows(asr: np.ndarray) -> np.ndarray:
    """The released code's VISAGE (``visage.visage_reference``) of each row of ``asr`` (B, points)."""
    return np.array([visage_reference(row) for row in asr])


def bootstrap_visage(
    complied: list[np.ndarray],
    b: int = BOOTSTRAP_B,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
    method: Literal["bounds", "percentile", "bca"] = "bounds",
    statistic: Literal["paper", "reference"] = "paper",
) -> VisageInterval:
    """Bootstrap interval of VISAGE (the paper's, or the released code's), resampling prompts.

    ``complied``: one array per scan of a family, shaped ``(*grid, n_prompts)`` (True where the
    attack succeeded), every scan over the same n prompts in the same order. Each of ``b`` resamples
    draws n prompt indices with replacement and applies them to every point of every scan; the
    statistic is the mean over scans of each scan's VISAGE.

    ``method``: ``"bounds"`` (the default, the one every surface shows) runs from the lower
    (1 − level)/2 quantile of the lowest VISAGE the data allow (every point observed at 100% counted
    inside the basin with a margin of 0: a point whose true ASR is 99.9% looks like 100% on finite
    prompts, yet it is inside the basin) to the upper quantile of the paper's estimator (every such
    point outside). It covers the population VISAGE whether the basin's walls reach 100% or only
    approach it, at the cost of width (see docs: methods, "VISAGE intervals"); ``"percentile"`` and
    ``"bca"`` are the plain bootstrap intervals of the estimator, which miss the truth on walls that
    approach 100% smoothly. ``statistic="reference"`` (1D scans only) does the same for the released
    code's ``safety_avg``, whose edges are also found where the ASR exceeds 99.99%.
    """
    mats = [np.asarray(c, dtype=float).reshape(-1, np.shape(c)[-1]) for c in complied]
    if not mats:
        raise ValueError("no scans to bootstrap")
    if method not in ("bounds", "percentile", "bca"):
        raise ValueError(f"unknown bootstrap method {method!r}; use bounds, percentile or bca")
    n = mats[0].shape[1]
    if n == 0 or any(m.shape[1] != n for m in mats):
        raise ValueError("every scan must hold the same, non-zero number of prompts")
    rows = _reference_rows if statistic == "reference" else _visage_rows
    point = float(np.mean([rows(100 * m.mean(axis=1)[None, :])[0] for m in mats]))
    idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
    stats = np.zeros(b)
    floor = np.zeros(b)
    for m in mats:
        asr = 100 * m[:, idx].mean(axis=2).T  # (b, points)
        stats += rows(asr)
        if method == "bounds":
            floor += _visage_all_rows(asr)
    stats /= len(mats)
    floor /= len(mats)
    q_lo, q_hi = (1 - level) / 2, (1 + level) / 2
    if method == "bca":
        # jackknife: each prompt left out once, the same prompt from every point of every scan
        jack = np.zeros(n)
        for m in mats:
            asr = 100 * (m.sum(axis=1)[None, :] - m.T) / max(n - 1, 1)  # (n, points)
            jack += rows(asr)
        q_lo, q_hi = _bca_levels(stats, point, jack / len(mats), level)
    lo, hi = np.percentile(stats, [100 * q_lo, 100 * q_hi])
    if method == "bounds":
        lo = np.percentile(floor, 100 * q_lo)
    return VisageInterval(point, float(lo), float(hi), b, seed, level, method)


def bootstrap_difference(
    a: np.ndarray, b_: np.ndarray, b: int = BOOTSTRAP_B, seed: int = BOOTSTRAP_SEED
) -> TestResult:
    """Two-sided bootstrap test of mean ASR(a) − mean ASR(b_) over prompts and seeds.

    ``a`` and ``b_`` are shaped ``(seeds, n_prompts)`` (True: complied), over the same prompts. Each
    resample draws seeds with replacement for each side (the same draw when both have as many seeds,
    which pairs runs trained with the same seed) and one set of prompt indices for both.
    The statistic reported is the observed difference in percentage points.
    """
    a, b_ = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b_, dtype=float))
    n = a.shape[1]
    if n == 0 or b_.shape[1] != n:
        raise ValueError("both sides must answer the same, non-zero number of prompts")
    rng = np.random.default_rng(seed)
    sa = rng.integers(0, a.shape[0], size=(b, a.shape[0]))
    sb = sa if b_.shape[0] == a.shape[0] else rng.integers(0, b_.shape[0], size=(b, b_.shape[0]))
    pi = rng.integers(0, n, size=(b, n))

    def resampled_mean(x, seeds):  # x[seeds] is (b, seeds, n); the prompt columns are shared
        picked = x[seeds]
        cols = np.broadcast_to(pi[:, None, :], picked.shape)
        return np.take_along_axis(picked, cols, axis=2).mean(axis=(1, 2))

    da, db = resampled_mean(a, sa), resampled_mean(b_, sb)
    diffs = 100 * (da - db)
    observed = 100 * (a.mean() - b_.mean())
    below = (np.sum(diffs <= 0) + 1) / (b + 1)
    above = (np.sum(diffs >= 0) + 1) / (b + 1)
    return TestResult(
        "bootstrap over prompts and seeds", float(observed), float(min(1.0, 2 * min(below, above)))
    )


def format_p(p: float) -> str:
    """A p-value for prose: two significant digits, "< 0.001" below that."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
