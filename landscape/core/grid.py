"""Grid conventions for landscapes (numpy only, shared with the dashboard).

The axis convention: 2D values are arrays shaped ``(len(alphas), len(betas))`` with
``indexing="ij"`` (row i is alpha_i, column j is beta_j), always returned with their coordinates
(``cache.ScanGrid``). The ancestor loss-landscape code transposes non-square grids by accident; here
a point is always addressed as ``(i, j)`` (``grid_points``) and stored under that pair.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GridPoint(NamedTuple):
    i: int
    j: int
    alpha: float
    beta: float


def axis_values(start: float, stop: float, num: int) -> np.ndarray:
    """``linspace(start, stop, num)``; a single point sits at ``start``."""
    return np.linspace(start, stop, num) if num > 1 else np.array([float(start)])


def grid_points(alphas: np.ndarray, betas: np.ndarray | None) -> list[GridPoint]:
    """Every point of the grid, ordered centre-out so a partial scan already shows the basin.

    A 1D grid has ``j = 0`` and ``beta = 0`` throughout.
    """
    alphas = np.asarray(alphas, dtype=float)
    bs = np.zeros(1) if betas is None else np.asarray(betas, dtype=float)
    pts = [GridPoint(i, j, float(a), float(b)) for i, a in enumerate(alphas) for j, b in enumerate(bs)]
    # Ties broken by (i, j) so the order is deterministic.
    return sorted(pts, key=lambda p: (p.alpha**2 + p.beta**2, p.i, p.j))


def origin_index(coords: np.ndarray) -> int:
    """Index of the coordinate closest to 0 (the unperturbed model when 0 is on the grid)."""
    return int(np.argmin(np.abs(np.asarray(coords, dtype=float))))


def zero_index(coords: np.ndarray) -> int | None:
    """Index of the coordinate that is 0 (θ₀ itself, up to ``linspace`` rounding: 1e-9 of the axis
    span), or None when the axis does not sample 0 (an even ``--points``, a range beside 0)."""
    c = np.asarray(coords, dtype=float)
    if c.size == 0:
        return None
    i = origin_index(c)
    span = float(np.ptp(c)) if c.size > 1 else abs(float(c[0]))
    return i if abs(c[i]) <= 1e-9 * max(span, 1e-12) else None


def symmetric_axis(halfwidth: float, num: int) -> tuple[float, float, int]:
    """An odd-sized axis centred on 0 so the unperturbed model is a grid point."""
    num = num if num % 2 == 1 else num + 1
    return -float(halfwidth), float(halfwidth), num
