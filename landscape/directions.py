"""Directions in weight space (Peng et al. 2024 §1; Li et al. 2018 for filter normalisation).

A direction is a ``dict[str, Tensor]`` keyed by parameter name. The pure functions here build,
normalise, orthogonalise and compare them tensor by tensor:

- random: ``d_i ~ N(0, I)`` per parameter, seeded by (seed, parameter name), so a direction is
  regenerated on demand and never stored, and adding a parameter does not reshuffle the others;
- ``layer`` normalisation: ``d̂_i = d_i / ‖d_i‖ · ‖θ_i‖`` (Frobenius, per tensor; the paper's);
  ``filter``: the same per output row (dim 0); ``none``: raw;
- Gram–Schmidt over the whole model: ``d₂⊥ = d₂ − (⟨d₁,d₂⟩ / ⟨d₁,d₁⟩) d₁``, with the inner
  products summed tensor by tensor (the reference code forgot to orthogonalise);
- interpolation: ``d = θ_b − θ_a``, unnormalised (it cannot be regenerated, so it is stored).

Scans use ``LazyDirection`` objects that produce one tensor at a time from these same functions,
so a point never needs a whole direction in memory (``Materialized`` holds one when asked to).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import torch

Direction = dict[str, torch.Tensor]


def tensor_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


def gaussian_like(name: str, shape: torch.Size, seed: int) -> torch.Tensor:
    """N(0, 1) noise for one parameter, float32 on CPU, reproducible on any device."""
    g = torch.Generator().manual_seed(tensor_seed(seed, name))
    return torch.randn(shape, generator=g, dtype=torch.float32)


def normalize_tensor(d: torch.Tensor, w: torch.Tensor, norm: str) -> torch.Tensor:
    """Scale one direction tensor ``d`` to the norm of its weight ``w`` (see module docstring)."""
    w = w.float()
    if norm == "none":
        return d
    if norm == "layer" or d.ndim < 2:
        return d * (w.norm() / d.norm().clamp_min(1e-12))
    if norm == "filter":
        # (out, *in): each output row scaled to that row's norm.
        dims = tuple(range(1, d.ndim))
        return d * (w.norm(dim=dims, keepdim=True) / d.norm(dim=dims, keepdim=True).clamp_min(1e-12))
    raise ValueError(f"unknown normalisation {norm!r}")


def random_direction(weights: Mapping[str, torch.Tensor], seed: int, norm: str) -> Direction:
    """A normalised Gaussian direction over ``weights`` (materialised; see ``RandomDirection``)."""
    return {
        name: normalize_tensor(gaussian_like(name, w.shape, seed), w, norm) for name, w in weights.items()
    }


def dot(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor]) -> float:
    """⟨d₁, d₂⟩ over the whole model; a name missing from one side contributes 0."""
    return float(sum(float((d1[n].double() * d2[n].double()).sum()) for n in d1 if n in d2))


def cosine(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor]) -> float:
    return dot(d1, d2) / max((dot(d1, d1) * dot(d2, d2)) ** 0.5, 1e-300)


def orthogonalize(d2: Mapping[str, torch.Tensor], d1: Mapping[str, torch.Tensor]) -> Direction:
    """Gram–Schmidt: the part of ``d2`` orthogonal to ``d1`` (whole-model inner product)."""
    coef = dot(d1, d2) / max(dot(d1, d1), 1e-300)
    return {n: t - coef * d1[n].float() if n in d1 else t for n, t in d2.items()}


def interpolation_direction(
    theta_a: Mapping[str, torch.Tensor], theta_b: Mapping[str, torch.Tensor]
) -> Direction:
    """``θ_b − θ_a`` per parameter; both models must share names and shapes."""
    missing = set(theta_a) ^ set(theta_b)
    if missing:
        raise ValueError(f"models differ in parameters: {sorted(missing)[:3]}")
    out = {}
    for n, a in theta_a.items():
        b = theta_b[n]
        if a.shape != b.shape:
            raise ValueError(f"parameter {n} has shape {tuple(a.shape)} vs {tuple(b.shape)}")
        out[n] = b.float() - a.float()
    return out


class LazyDirection:
    """A direction produced one tensor at a time (float32, CPU)."""

    names: tuple[str, ...]

    def tensor(self, name: str) -> torch.Tensor:
        raise NotImplementedError

    def items(self) -> Iterable[tuple[str, torch.Tensor]]:
        for n in self.names:
            yield n, self.tensor(n)


class RandomDirection(LazyDirection):
    """``random_direction`` regenerated per tensor; ``weights`` are θ₀ (for the norms)."""

    def __init__(self, weights: Mapping[str, torch.Tensor], seed: int, norm: str):
        self.weights, self.seed, self.norm = weights, seed, norm
        self.names = tuple(weights)
        self._last: tuple[str, torch.Tensor] | None = None

    def tensor(self, name: str) -> torch.Tensor:
        # One-entry memo: a point asks for d1[name] once for itself and once to orthogonalise d2.
        if self._last is not None and self._last[0] == name:
            return self._last[1]
        w = self.weights[name]
        t = normalize_tensor(gaussian_like(name, w.shape, self.seed), w, self.norm)
        self._last = (name, t)
        return t


class StoredDirection(LazyDirection):
    """A direction in a safetensors file, read tensor by tensor (memory-mapped)."""

    def __init__(self, path):
        from safetensors import safe_open

        self._file = safe_open(str(path), framework="pt")
        self.names = tuple(self._file.keys())

    def tensor(self, name: str) -> torch.Tensor:
        return self._file.get_tensor(name).float()


class Orthogonalized(LazyDirection):
    """``base`` minus its projection on ``against`` (coefficient from one tensor-by-tensor pass)."""

    def __init__(self, base: LazyDirection, against: LazyDirection):
        self.base, self.against = base, against
        self.names = base.names
        against_names = set(against.names)
        num = den = 0.0
        base_sq = 0.0
        for n in set(base.names) | against_names:
            a = against.tensor(n).double() if n in against_names else None
            b = base.tensor(n).double() if n in self.names else None
            if a is not None:
                den += float((a * a).sum())
            if b is not None:
                base_sq += float((b * b).sum())
            if a is not None and b is not None:
                num += float((a * b).sum())
        self.coef = num / max(den, 1e-300)
        self.cosine_before = num / max((den * base_sq) ** 0.5, 1e-300)
        self._against_names = against_names

    def tensor(self, name: str) -> torch.Tensor:
        t = self.base.tensor(name)
        if name in self._against_names:
            t = t - self.coef * self.against.tensor(name)
        return t


class Materialized(LazyDirection):
    """A lazy direction held in memory (faster per point, one more copy of the weights)."""

    def __init__(self, direction: LazyDirection, device: str = "cpu"):
        self.names = direction.names
        self._d = {n: t.to(device) for n, t in direction.items()}

    def tensor(self, name: str) -> torch.Tensor:
        return self._d[name]
