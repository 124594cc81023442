"""Fine-tuning trajectories drawn over a 2D safety landscape (papers.md §1, Figure 1B; Li et al. 2018).

The per-epoch checkpoints θ_e of one or more fine-tuning runs are expressed as deltas δ_e = θ_e − θ₀
from the aligned model and projected onto a plane through θ₀:

- ``interpolation``: d₁ = θ_final − θ₀ of the first listed run (α = 1 is its final model) and a
  layer-normalised random d₂ orthogonalised against d₁ — the paper's Figure 1B plane;
- ``pca``: the top-2 principal directions of all checkpoints' deltas (uncentred, so θ₀ stays the
  origin), from the eigenvectors of their Gram matrix (Li et al.'s trajectory plot).

Inner products are ``landscape.core.directions.dot`` (whole model, float64, a missing tensor is 0), the
one Gram–Schmidt uses. Coordinates solve the 2×2 normal equations, so they are exact least squares
even when d₁, d₂ are not orthogonal; the residual share ‖δ − (αd₁ + βd₂)‖ / ‖δ‖ says how much of a path leaves the plane.
The plane's 2D landscape is a normal scan (cached, resumable) whose grid covers the path.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from landscape.core.directions import dot


def model_delta(theta: Mapping, theta0: Mapping) -> dict:
    """``{name: θ − θ₀}`` (float32) for the tensors that changed."""
    out = {}
    for name, t0 in theta0.items():
        d = theta[name].detach().float().cpu() - t0
        if d.abs().max() > 0:
            out[name] = d
    return out


def gram_matrix(deltas: list[Mapping]) -> np.ndarray:
    """G_ij = ⟨δ_i, δ_j⟩ (n × n)."""
    n = len(deltas)
    g = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            g[i, j] = g[j, i] = dot(deltas[i], deltas[j])
    return g


def pca_directions(deltas: list[Mapping], k: int = 2) -> tuple[list[dict], np.ndarray]:
    """Top-``k`` unit principal directions of the deltas and their explained-variance shares.

    With M the (n × P) matrix of deltas, M Mᵀ = V Λ Vᵀ and the principal directions are
    u_k = Mᵀ v_k / √λ_k, so P-sized arrays are only ever summed, never decomposed.
    """
    g = gram_matrix(deltas)
    lam, vecs = np.linalg.eigh(g)
    order = np.argsort(lam)[::-1]
    lam, vecs = np.clip(lam[order], 0, None), vecs[:, order]
    if len(lam) < k or lam[k - 1] <= 1e-12 * max(lam[0], 1e-300):
        raise ValueError(f"the checkpoints span fewer than {k} dimensions")
    names = sorted(set().union(*(d.keys() for d in deltas)))
    dirs = []
    for c in range(k):
        u = {}
        for name in names:
            acc = None
            for i, d in enumerate(deltas):
                if name in d:
                    term = d[name] * float(vecs[i, c])
                    acc = term if acc is None else acc + term
            u[name] = acc / float(np.sqrt(lam[c]))
        dirs.append(u)
    return dirs, lam[:k] / lam.sum()


def plane_gram(d1, d2) -> np.ndarray:
    """The 2×2 Gram matrix of the plane's directions (computed once per plane)."""
    g12 = dot(d1, d2)
    return np.array([[dot(d1, d1), g12], [g12, dot(d2, d2)]])


def project(delta: Mapping, d1, d2, g: np.ndarray | None = None) -> tuple[float, float, float]:
    """Least-squares (α, β) with δ ≈ α·d₁ + β·d₂, and the residual share ‖δ − αd₁ − βd₂‖ / ‖δ‖."""
    g = plane_gram(d1, d2) if g is None else g
    b = np.array([dot(delta, d1), dot(delta, d2)])
    alpha, beta = np.linalg.solve(g, b)
    dd = dot(delta, delta)
    if dd <= 0:
        return 0.0, 0.0, 0.0
    res_sq = dd - 2 * (alpha * b[0] + beta * b[1]) + alpha * alpha * g[0, 0] + 2 * alpha * beta * g[0, 1]
    res_sq += beta * beta * g[1, 1]
    return float(alpha), float(beta), float(np.sqrt(max(res_sq, 0.0) / dd))


def covering_axis(coords: list[float], margin: float, num: int, include: tuple[float, ...] = (0.0,)):
    """(start, stop) covering ``coords`` and ``include`` with ``margin`` of the span either side."""
    lo, hi = min([*coords, *include]), max([*coords, *include])
    span = max(hi - lo, 1e-3)
    return lo - margin * span, hi + margin * span, num
