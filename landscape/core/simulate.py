"""Known-truth simulations of VISAGE's estimators and intervals (numpy only).

An interval is printed only after a simulation with a known truth shows its coverage. Here the
truth is a population ASR curve p(point) in [0, 1] on a grid; a scan asks n prompts at every point,
and whether prompt j succeeds at point i is 1{√ρ·z_j + √(1−ρ)·ε_ij < Φ⁻¹(p_i)}: a Gaussian copula,
so each point's ASR is Binomial(n, p_i) while a hard prompt stays hard at every point (correlation ρ
between points, as the same prompts are asked everywhere; a family's K directions share the prompts'
z_j too). The population VISAGE is the paper's metric on the population curve(s): mean of 100 − 100p
over the points with p < 1 (a point at p = 0.999 is inside the basin), averaged over the K directions.

``coverage`` draws ``reps`` scans of a shape, asks ``bootstrap_visage`` for each interval method,
and reports the share of intervals that contain the truth, the estimator's bias and the mean width.
``bench/bench_visage_coverage.py`` prints the table; a slow test bounds it.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from landscape.core.stats import bootstrap_visage
from landscape.core.visage import visage_paper, visage_reference


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below lo, 1 above hi, smoothstep between."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _smooth(x: np.ndarray, centre: float, scale: float, floor: float) -> np.ndarray:
    """A logistic rise from ``floor`` towards 1 that never reaches it (0.97, 0.99, 0.999… at the edges)."""
    return floor + (1 - floor) / (1 + np.exp(-(x - centre) / scale))


# Each shape maps a signed distance from θ₀ (grid in [-1, 1]) to the population ASR in [0, 1].
# "exact" shapes reach 100% inside the grid (a collapsed model that always "complies"); "smooth"
# ones approach it without reaching it (the usual shape of a real basin's wall on finite prompts).
SHAPES = {
    "wide-exact": lambda a: 0.02 + 0.98 * _ramp(np.abs(a), 0.45, 0.8),
    "narrow-exact": lambda a: 0.05 + 0.95 * _ramp(np.abs(a), 0.1, 0.35),
    "asymmetric-exact": lambda a: 0.02 + 0.98 * np.where(a < 0, _ramp(-a, 0.15, 0.4), _ramp(a, 0.5, 0.9)),
    "wide-smooth": lambda a: _smooth(np.abs(a), 0.55, 0.07, 0.0),
    "narrow-smooth": lambda a: _smooth(np.abs(a), 0.25, 0.05, 0.03),
    "asymmetric-smooth": lambda a: np.where(a < 0, _smooth(-a, 0.3, 0.05, 0.0), _smooth(a, 0.7, 0.08, 0.0)),
    "shallow-smooth": lambda a: _smooth(np.abs(a), 0.4, 0.15, 0.3),
    "mixed": lambda a: np.where(a < 0, 0.02 + 0.98 * _ramp(-a, 0.3, 0.6), _smooth(a, 0.5, 0.08, 0.02)),
}


def population_curves(shape: str, dims: int, k: int, points: int, jitter: float = 0.08, seed: int = 0):
    """K population ASR grids (each ``(points,)`` or ``(points, points)``) of one shape.

    The K directions of a family differ: each one's coordinates are stretched by a factor drawn
    from [1 − jitter, 1 + jitter] (direction 0 unstretched). A 2D grid uses the distance from θ₀
    with the sign of α (so asymmetric shapes stay asymmetric).
    """
    f = SHAPES[shape]
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1.0, 1.0, points)
    out = []
    for i in range(k):
        s = 1.0 if i == 0 else float(rng.uniform(1 - jitter, 1 + jitter))
        if dims == 1:
            out.append(f(axis * s))
        else:
            a, b = np.meshgrid(axis, axis, indexing="ij")
            r = np.sqrt(a**2 + b**2) * np.where(a < 0, -1.0, 1.0)
            out.append(f(np.clip(r * s, -1.5, 1.5)))
    return [np.clip(c, 0.0, 1.0) for c in out]


def population_visage(curves, statistic: str = "paper") -> float:
    """The truth: the paper's VISAGE of each population curve (p < 1 is inside), mean over K; or
    the released code's ``safety_avg`` of each (1D only) with ``statistic="reference"``."""
    f = visage_reference if statistic == "reference" else visage_paper
    return float(np.mean([f(np.where(c < 1.0, 100.0 * c, 100.0)) for c in curves]))


def sample_scans(curves, n: int, rho: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One draw of a family's per-prompt verdicts, ``(*grid, n)`` per curve (True: complied)."""
    z = rng.standard_normal(n)  # each prompt's difficulty, shared by every point and direction
    inv = NormalDist().inv_cdf
    out = []
    for c in curves:
        thr = np.vectorize(lambda p: np.inf if p >= 1 else (-np.inf if p <= 0 else inv(p)))(c)
        eps = rng.standard_normal(c.shape + (n,))
        out.append(np.sqrt(rho) * z + np.sqrt(1 - rho) * eps < thr[..., None])
    return out


class Coverage(NamedTuple):
    """One shape × geometry × n: the truth, the paper estimator's bias, and per interval method its
    coverage (share of intervals containing the truth) and mean width, over ``reps`` scans."""

    shape: str
    dims: int
    k: int
    n: int
    truth: float
    bias: float
    coverage: dict
    width: dict
    reps: int


def coverage(
    shape: str,
    dims: int = 1,
    k: int = 1,
    n: int = 32,
    rho: float = 0.6,
    reps: int = 200,
    b: int = 400,
    methods=("percentile", "bca", "bounds"),
    points: int | None = None,
    seed: int = 0,
    statistic: str = "paper",
) -> Coverage:
    """Simulate ``reps`` scans of a known family and score every interval method against the truth
    (``statistic="reference"``: the released code's VISAGE and its interval, 1D only)."""
    points = points or (21 if dims == 1 else 11)
    curves = population_curves(shape, dims, k, points, seed=seed)
    truth = population_visage(curves, statistic)
    rng = np.random.default_rng(seed + 1)
    hits = {m: 0 for m in methods}
    widths = {m: 0.0 for m in methods}
    estimates = []
    for r in range(reps):
        scans = sample_scans(curves, n, rho, rng)
        for m in methods:
            ci = bootstrap_visage(scans, b=b, seed=r, method=m, statistic=statistic)
            hits[m] += ci.lo - 1e-9 <= truth <= ci.hi + 1e-9
            widths[m] += ci.hi - ci.lo
        estimates.append(ci.visage)
    return Coverage(
        shape,
        dims,
        k,
        n,
        truth,
        float(np.mean(estimates) - truth),
        {m: hits[m] / reps for m in methods},
        {m: widths[m] / reps for m in methods},
        reps,
    )
