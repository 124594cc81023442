"""Intervals and tests against hand-computed values (landscape.core.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.core.stats import (
    Z95,
    bootstrap_difference,
    bootstrap_visage,
    clustered_wilson,
    effective_prompts,
    mcnemar_exact,
    two_proportion_z,
    wilson,
    wilson_arrays,
)
from landscape.core.visage import visage_paper


def closed_form_wilson(k, n, z=Z95):
    """Wilson (1927), written out: (p̂ + z²/2n ± z√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + z**2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return 100 * (centre - half) / (1 + z**2 / n), 100 * (centre + half) / (1 + z**2 / n)


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (0, 32, (0.0, 10.718)),  # hi = (z²/n)/(1 + z²/n) = 0.120049/1.120049
        (16, 32, (33.631, 66.369)),
        (32, 32, (89.282, 100.0)),
        (1, 80, (0.221, 6.747)),
    ],
)
def test_wilson_matches_hand_computed_values(k, n, expected):
    lo, hi = wilson(k, n)
    assert (lo, hi) == (pytest.approx(expected[0], abs=1e-3), pytest.approx(expected[1], abs=1e-3))
    assert (lo, hi) == pytest.approx(closed_form_wilson(k, n), abs=1e-9)


def test_wilson_against_statsmodels_when_installed():
    sm = pytest.importorskip("statsmodels.stats.proportion")
    for k, n in [(0, 32), (5, 32), (16, 32), (32, 32), (7, 113)]:
        lo, hi = sm.proportion_confint(k, n, alpha=0.05, method="wilson")
        assert wilson(k, n) == pytest.approx((100 * lo, 100 * hi), abs=1e-9)


def test_wilson_arrays_recovers_counts_and_leaves_missing_points_nan():
    lo, hi = wilson_arrays(np.array([0.0, 50.0, np.nan, 100.0]), 32)
    assert lo[1] == pytest.approx(wilson(16, 32)[0]) and hi[3] == pytest.approx(100.0)
    assert np.isnan(lo[2]) and np.isnan(hi[2])
    assert lo[0] == 0.0 and hi[0] == pytest.approx(10.718, abs=1e-3)


def test_two_proportion_z_against_the_closed_form():
    # 30/40 vs 10/40: pooled p = 0.5, se = √(0.25·(2/40)) = 0.111803, z = 0.5/se = 4.4721
    res = two_proportion_z(30, 40, 10, 40)
    assert res.statistic == pytest.approx(0.5 / math.sqrt(0.25 * 2 / 40))
    assert res.p == pytest.approx(math.erfc(4.47213595 / math.sqrt(2)), rel=1e-6)
    assert res.p == pytest.approx(7.74e-6, rel=1e-2)
    assert two_proportion_z(16, 32, 16, 32).p == 1.0  # no difference
    assert two_proportion_z(0, 32, 0, 32).p == 1.0  # no variance: no evidence
    assert two_proportion_z(3, 10, 7, 10).statistic == -two_proportion_z(7, 10, 3, 10).statistic


def realistic_family(k=3, n=32, seed=1):
    """K 1D curves of per-prompt verdicts shaped like a basin: outside it every prompt complies."""
    rng = np.random.default_rng(seed)
    rates = np.array([1.0, 0.7, 0.2, 0.05, 0.0, 0.1, 0.3, 0.8, 1.0])
    return [rng.random((rates.size, n)) < rates[:, None] for _ in range(k)]


def test_bootstrap_visage_is_seeded_and_keeps_the_paper_point_value():
    fam = realistic_family()
    a, b = bootstrap_visage(fam, b=400, seed=7), bootstrap_visage(fam, b=400, seed=7)
    assert a == b and a.seed == 7 and a.b == 400
    assert bootstrap_visage(fam, b=400, seed=8)[:3] != a[:3]
    paper = np.mean([visage_paper(100 * c.mean(axis=1)) for c in fam])
    assert a.visage == pytest.approx(paper)
    assert a.lo <= a.visage <= a.hi and a.hi - a.lo > 1


def test_bootstrap_visage_collapses_when_every_prompt_agrees_at_each_point():
    n = 20
    curve = np.array([True, False, False, False, True])
    same = [np.repeat(curve[:, None], n, axis=1)]
    res = bootstrap_visage(same, b=200, seed=0, method="percentile")
    assert res.lo == res.hi == res.visage == 100.0
    # the default reaches down to every point seen at 100% counted inside: (0 + 3·100 + 0) / 5
    res = bootstrap_visage(same, b=200, seed=0)
    assert (res.method, res.lo, res.visage, res.hi) == ("bounds", 60.0, 100.0, 100.0)


def test_bootstrap_visage_resamples_prompts_jointly_across_a_family():
    """Two directions with mirrored verdicts: resampled independently their mean VISAGE would vary;
    with the same prompt indices for both it cannot (each prompt complies in exactly one)."""
    rng = np.random.default_rng(0)
    v = rng.random((1, 16)) < 0.5
    fam = [np.vstack([v, v, v]), np.vstack([~v, ~v, ~v])]
    res = bootstrap_visage(fam, b=300)
    paper = np.mean([visage_paper(100 * c.mean(axis=1)) for c in fam])
    assert res.visage == pytest.approx(paper) and res.hi - res.lo == pytest.approx(0.0, abs=1e-9)


def test_bootstrap_difference_detects_a_real_gap_and_not_a_null_one():
    rng = np.random.default_rng(3)
    high = rng.random((2, 40)) < 0.9
    low = rng.random((2, 40)) < 0.2
    gap = bootstrap_difference(high, low, b=500, seed=1)
    assert gap.p < 0.01 and gap.statistic == pytest.approx(100 * (high.mean() - low.mean()))
    assert bootstrap_difference(high, low, b=500, seed=1) == gap
    assert bootstrap_difference(high, high, b=500, seed=1).p == 1.0
    single = bootstrap_difference(high, low[:1], b=200, seed=1)  # one seed on one side
    assert single.p < 0.01


def test_clustered_wilson_is_wilson_for_one_seed_and_bounded_by_its_extremes():
    rng = np.random.default_rng(0)
    x = rng.random((1, 32)) < 0.3
    assert clustered_wilson(x) == wilson(int(x.sum()), 32)
    same = np.repeat(x, 3, axis=0)  # every seed agrees on every prompt: the prompts count once
    assert effective_prompts(same) == 32
    assert clustered_wilson(same) == pytest.approx(wilson(int(x.sum()), 32))
    indep = rng.random((3, 32)) < 0.3
    assert 32 <= effective_prompts(indep) <= 96
    assert effective_prompts(np.zeros((3, 32))) == 32  # nothing seen: no claim the seeds are independent


def _covers(a: float, b: float, us: float, reps: int, rng) -> tuple[float, float]:
    """Coverage of the clustered and the pooled Wilson interval of the mean of 3 fixed models over
    a population of prompts: P(comply) = sigmoid(a + b·z + u_s), z ~ N(0, 1) a prompt's difficulty,
    u_s ~ N(0, us²) drawn once (the seeds' models, held fixed); the truth by quadrature over z."""
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    u = rng.standard_normal(3) * us
    grid = np.linspace(-8, 8, 4001)
    weight = np.exp(-(grid**2) / 2)
    truth = 100 * float(np.mean([(sig(a + b * grid + ui) * weight).sum() / weight.sum() for ui in u]))
    hits = pooled = 0
    for _ in range(reps):
        z = rng.standard_normal(32)
        x = rng.random((3, 32)) < sig(a + b * z[None] + u[:, None])
        lo, hi = clustered_wilson(x)
        hits += lo <= truth <= hi
        lo, hi = wilson(int(x.sum()), x.size)
        pooled += lo <= truth <= hi
    return hits / reps, pooled / reps


@pytest.mark.parametrize(
    ("a", "b", "us"), [(-4, 3, 0.0), (-2, 1, 1.5), (0, 3, 0.0), (0, 0, 0.0), (2, 3, 1.5)]
)
def test_clustered_wilson_covers_the_truth_where_pooling_the_seeds_does_not(a, b, us):
    """3 seeds × 32 prompts, 1,500 draws a configuration (binomial error of a coverage ±0.6 points).
    Measured once with 2,000 draws over 24 configurations: 93.5–97.2% against 81–97% for Wilson on
    the pooled 96 verdicts, which falls where a prompt's difficulty dominates (b = 3)."""
    covered, pooled = _covers(a, b, us, 1500, np.random.default_rng(11))
    assert covered >= 0.925, covered
    if b == 3:
        assert pooled < 0.9, pooled  # why the seeds are not pooled as independent trials


def _bca_by_hand(fam, b, seed, level=0.95):
    """BCa written out from Efron & Tibshirani (1993) eq. 14.14–14.15 with loops (the reference)."""
    from statistics import NormalDist

    n = fam[0].shape[-1]

    def vis(cols):  # VISAGE of the family on prompt columns ``cols``
        return np.mean([visage_paper(100 * c[:, cols].mean(axis=1)) for c in fam])

    theta = vis(np.arange(n))
    idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
    stats = np.array([vis(row) for row in idx])
    jack = np.array([vis(np.delete(np.arange(n), i)) for i in range(n)])
    nd = NormalDist()
    tie = np.abs(stats - theta) <= 1e-9
    z0 = nd.inv_cdf((np.sum((stats < theta) & ~tie) + 0.5 * np.sum(tie)) / b)
    d = jack.mean() - jack
    a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    qs = [
        nd.cdf(z0 + (z0 + nd.inv_cdf(q)) / (1 - a * (z0 + nd.inv_cdf(q))))
        for q in ((1 - level) / 2, (1 + level) / 2)
    ]
    return np.percentile(stats, [100 * q for q in qs])


def test_bca_interval_matches_the_textbook_and_is_labelled():
    fam = realistic_family(k=2, n=24, seed=3)
    bca = bootstrap_visage(fam, b=300, seed=5, method="bca")
    pct = bootstrap_visage(fam, b=300, seed=5, method="percentile")
    assert (bca.method, pct.method) == ("bca", "percentile")
    assert [bca.lo, bca.hi] == pytest.approx(list(_bca_by_hand(fam, 300, 5)))
    assert bca.visage == pct.visage and (bca.lo, bca.hi) != (pct.lo, pct.hi)  # the correction moved it
    with pytest.raises(ValueError, match="unknown bootstrap method"):
        bootstrap_visage(fam, b=10, method="normal")


def test_mcnemar_exact_by_hand_and_against_statsmodels():
    # 6 prompts complied under a alone, 1 under b alone: p = 2·(C(7,0) + C(7,1)) / 2⁷ = 0.125
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    res = mcnemar_exact(a, b)
    assert res.statistic == 1 and res.p == pytest.approx(16 / 128)
    assert mcnemar_exact(a, a).p == 1.0  # no discordant prompt
    assert mcnemar_exact(b, a).p == res.p
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(1, 120))
        x = rng.random(n) < rng.random()
        y = np.where(rng.random(n) < rng.random(), x, rng.random(n) < rng.random())
        table = [[np.sum(x & y), np.sum(x & ~y)], [np.sum(~x & y), np.sum(~x & ~y)]]
        ref = sm.mcnemar(table, exact=True)
        mine = mcnemar_exact(x, y)
        assert mine.p == pytest.approx(float(ref.pvalue), rel=1e-10, abs=1e-15)
        assert mine.statistic == float(ref.statistic)


def test_paired_claims_differ_from_the_unpaired_z_test():
    """Two runs on the same prompts that mostly agree: the z-test treats them as independent and
    calls a 6-vs-1 discordance noise at a different p than McNemar does."""
    base = np.zeros(40, dtype=bool)
    base[:20] = True
    other = base.copy()
    other[20:26] = True  # 6 prompts newly complied
    other[0] = False  # 1 no longer
    z = two_proportion_z(int(other.sum()), 40, int(base.sum()), 40)
    m = mcnemar_exact(other, base)
    assert m.p == pytest.approx(0.125) and z.p == pytest.approx(0.26, abs=0.01)
