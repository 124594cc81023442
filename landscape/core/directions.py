"""Directions in weight space (Peng et al. 2024 §1; Li et al. 2018 for filter normalisation).

A direction is a ``dict[str, Tensor]`` keyed by parameter name. The pure functions here build,
normalise, orthogonalise and compare them tensor by tensor:

- random: ``d_i ~ N(0, I)`` per parameter, seeded by (seed, parameter name), so a direction is
  regenerated on demand and never stored, and adding a parameter does not reshuffle the others;
- ``layer`` normalisation: ``d̂_i = d_i / ‖d_i‖ · ‖θ_i‖`` (Frobenius, per tensor; the paper's);
  ``filter``: the same per output row (dim 0); ``none``: raw;
- whole-model inner product ``⟨d₁,d₂⟩ = Σ_i ⟨d₁ᵢ,d₂ᵢ⟩`` (float64), a tensor missing from one side
  counting as 0 (``dot``; the one implementation, which scans and trajectory planes share);
- Gram–Schmidt: ``d₂⊥ = d₂ − c·d₁|_{B}`` with ``c = ⟨d₁,d₂⟩ / ⟨d₁|_B,d₁|_B⟩``, where ``B`` is the
  set of tensors ``d₂`` has, so ``⟨d₂⊥, d₁⟩ = 0`` over the whole model even when ``d₁`` moves
  tensors ``d₂`` does not (an interpolation direction moves norms; a random one does not). With
  equal sets this is the textbook ``⟨d₁,d₂⟩ / ⟨d₁,d₁⟩`` (the reference code forgot to orthogonalise);
- interpolation: ``d = θ_b − θ_a``, unnormalised (it cannot be regenerated, so it is stored).

Scans use ``LazyDirection`` objects that produce one tensor at a time from these same functions,
so a point never needs a whole direction in memory (``Materialized`` holds one when asked to).
Every tensor a direction produces lives on the device of the weight it moves. Noise is drawn by a
seeded CPU generator (the same numbers on any machine) and moved there before it is normalised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

import torch

Direction = dict[str, torch.Tensor]


def tensor_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


def gaussian_like(name: str, shape: torch.Size, seed: int) -> torch.Tensor:
    """N(0, 1) noise for one parameter, float32 on CPU, reproducible on any device."""
    g = torch.Generator().manual_seed(tensor_seed(seed, name))
    return torch.randn(shape, generator=g, dtype=torch.float32)


def normalize_tensor(d: torch.Tensor, w: torch.Tensor, norm: str) -> torch.Tensor:
    """Scale one direction tensor ``d`` to the norm of its weight ``w`` (see module docstring);
    the result is on ``w``'s device."""
    d, w = d.to(w.device), w.float()
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


def tensor_dot(x: torch.Tensor, y: torch.Tensor) -> float:
    """⟨x, y⟩ of one pair of tensors, in float64 on ``x``'s device (``y`` is moved there)."""
    return (x.double() * y.to(x.device).double()).sum().item()


def _accessors(d) -> tuple[Iterable[str], Callable[[str], torch.Tensor]]:
    """(names, name → tensor) of a direction given as a dict or as a ``LazyDirection``."""
    if hasattr(d, "tensor"):
        return d.names, d.tensor
    return d.keys(), d.__getitem__


def dot(d1, d2) -> float:
    """⟨d₁, d₂⟩ over the whole model; a name missing from one side contributes 0. Each side is a
    dict or a ``LazyDirection`` (read one tensor at a time)."""
    names1, get1 = _accessors(d1)
    names2, get2 = _accessors(d2)
    shared = set(names2)
    return float(sum(tensor_dot(get1(n), get2(n)) for n in names1 if n in shared))


def cosine(d1, d2) -> float:
    return dot(d1, d2) / max((dot(d1, d1) * dot(d2, d2)) ** 0.5, 1e-300)


def orthogonalize(d2: Mapping[str, torch.Tensor], d1: Mapping[str, torch.Tensor]) -> Direction:
    """Gram–Schmidt: the part of ``d2`` orthogonal to ``d1`` over the whole model, moving only the
    tensors ``d2`` has (the coefficient's denominator is ``d1`` restricted to them)."""
    d1_on_d2 = {n: t for n, t in d1.items() if n in d2}
    coef = dot(d1, d2) / max(dot(d1_on_d2, d1_on_d2), 1e-300)
    return {n: t - coef * d1_on_d2[n].float().to(t.device) if n in d1_on_d2 else t for n, t in d2.items()}


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
    """A direction produced one tensor at a time (float32, on the device of the weight it moves)."""

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
    """A direction in a safetensors file, read tensor by tensor (memory-mapped) onto ``device``
    (the model's: the file is read on the CPU and each tensor moved when asked for)."""

    def __init__(self, path, device: torch.device | str = "cpu"):
        from safetensors import safe_open

        self.device = torch.device(device)
        self._file = safe_open(str(path), framework="pt")
        self.names = tuple(self._file.keys())

    def tensor(self, name: str) -> torch.Tensor:
        return self._file.get_tensor(name).float().to(self.device)


class Orthogonalized(LazyDirection):
    """``base`` minus its projection on ``against`` (see ``orthogonalize``): it moves only the
    tensors ``base`` has, and is orthogonal to ``against`` over the whole model.

    One pass over the tensors (each read or regenerated once) gives the coefficient and the
    whole-model cosine of ``base`` and ``against`` before orthogonalising. Its sums are ``dot``'s
    (``dot(base, against)``, ``dot(base, base)``, ``dot(against|_B, against|_B)``,
    ``dot(against, against)``; tests/landscape/core/test_directions.py pins them equal), fused because
    four ``dot`` calls would regenerate or re-read each direction two or three times (a random
    direction over a 7B model is about 100 s of noise per pass on one CPU core).
    """

    def __init__(self, base: LazyDirection, against: LazyDirection):
        self.base, self.against = base, against
        self.names = base.names
        self._against_names = set(against.names)
        ab = base_sq = shared_sq = 0.0  # ⟨a,b⟩, ⟨b,b⟩, ⟨a|_B, a|_B⟩
        for n in base.names:
            b = base.tensor(n)
            base_sq += tensor_dot(b, b)
            if n in self._against_names:
                a = against.tensor(n)
                ab += tensor_dot(a, b)
                shared_sq += tensor_dot(a, a)
        against_sq = shared_sq  # ⟨a,a⟩: add the tensors base lacks
        base_names = set(base.names)
        for n in against.names:
            if n not in base_names:
                a = against.tensor(n)
                against_sq += tensor_dot(a, a)
        self.coef = ab / max(shared_sq, 1e-300)
        self.cosine_before = ab / max((against_sq * base_sq) ** 0.5, 1e-300)

    def tensor(self, name: str) -> torch.Tensor:
        t = self.base.tensor(name)
        if name in self._against_names:
            t = t - self.coef * self.against.tensor(name)
        return t


class Materialized(LazyDirection):
    """A lazy direction held in memory (faster per point, one more copy of the weights), where
    its tensors are produced (the weights' device) unless ``device`` says otherwise."""

    def __init__(self, direction: LazyDirection, device: torch.device | str | None = None):
        self.names = direction.names
        self._d = {n: t if device is None else t.to(device) for n, t in direction.items()}

    def tensor(self, name: str) -> torch.Tensor:
        return self._d[name]
