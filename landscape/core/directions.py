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
Every tensor a direction produces lives on the device of the weight it moves, and random noise is
made there: ``gaussian_like`` is a counter-based generator (splitmix64 over (seed, name, index) in
int64 tensor ops, then Box–Muller), so the same spec gives the same direction on a CPU and a GPU up
to float rounding, at any size, without a host-side generator or a copy per point. Its version
(``RANDOM_GENERATOR`` in core/specs.py) is part of a random direction's identity.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping

import torch

from landscape.core.memory import CPU_CHUNK_PAIRS, GPU_CHUNK_PAIRS
from landscape.core.specs import RANDOM_GENERATOR

Direction = dict[str, torch.Tensor]


# splitmix64 (Steele, Lea & Flood 2014): a Weyl step and a finaliser, as signed int64 constants.
_GAMMA = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX = ((30, 0xBF58476D1CE4E5B9 - (1 << 64)), (27, 0x94D049BB133111EB - (1 << 64)), (31, None))
# Pairs of normals per chunk (memory.py, which counts their temporaries: 36 bytes a pair): CPU
# chunks stay in cache; GPU chunks are big enough that kernel launches do not dominate.
CHUNK_PAIRS = {"cpu": CPU_CHUNK_PAIRS}


def _int64(x: int) -> int:
    """``x`` modulo 2⁶⁴ as a signed 64-bit integer (what an int64 tensor holds)."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >> 63 else x


def tensor_key(seed: int, name: str) -> int:
    """The 64-bit key of one parameter's noise: sha256 of (generator version, seed, name)."""
    digest = hashlib.sha256(f"{RANDOM_GENERATOR}:{seed}:{name}".encode()).digest()
    return _int64(int.from_bytes(digest[:8], "little"))


def _mix_(z: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser in place on int64 ``z`` (wrapping products; ``>>`` made logical by
    masking the sign-extended bits), the same integers on every device."""
    for shift, mult in _MIX:
        torch.bitwise_right_shift(z, shift, out=tmp)
        z.bitwise_xor_(tmp.bitwise_and_((1 << (64 - shift)) - 1))
        if mult is not None:
            z.mul_(mult)
    return z


def gaussian_like(
    name: str,
    shape: torch.Size | tuple[int, ...],
    seed: int,
    device: torch.device | str = "cpu",
    chunk_pairs: int | None = None,
) -> torch.Tensor:
    """N(0, 1) float32 noise for one parameter, made on ``device`` by a counter-based generator.

    Pair ``p`` of the ``P = ⌈n/2⌉`` pairs hashes the counter ``key + (p+1)·γ`` (splitmix64, key from
    ``tensor_key``) into 64 bits; read as signed integers, its top 24 bits ``v`` give
    ``u = (v + 2²³ + 1)/2²⁴ ∈ (0, 1]`` and its low 32 bits ``l`` an angle ``θ = 2π·l/2³²``; Box–Muller
    then gives element ``p`` = ``√(−2 ln u)·cos θ`` and element ``P + p`` =
    ``√(−2 ln u)·sin θ``. Every integer step is exact int64 arithmetic, so CPU and CUDA give the
    same bits before the float32 ``log``/``cos``/``sin`` (equal up to their last-place rounding);
    chunking (``chunk_pairs``) only bounds memory and never changes a number. The largest normal
    is √(2·24·ln 2) ≈ 5.77.
    """
    device = torch.device(device)
    n = math.prod(shape)
    pairs = (n + 1) // 2
    out = torch.empty(2 * pairs, dtype=torch.float32, device=device)  # (2P,): cos half, sin half
    chunk = chunk_pairs or CHUNK_PAIRS.get(device.type, GPU_CHUNK_PAIRS)
    width = max(1, min(pairs, chunk))
    steps = torch.arange(1, width + 1, dtype=torch.int64, device=device).mul_(_GAMMA)  # (width,)
    z, tmp = torch.empty_like(steps), torch.empty_like(steps)
    theta = torch.empty(width, dtype=torch.float32, device=device)
    key = tensor_key(seed, name)
    for start in range(0, pairs, width):
        m = min(width, pairs - start)
        # narrow, not t[a:b]: the same view, and no Python-indexing device guard (test_device.py)
        zc, tc, angle = z.narrow(0, 0, m), tmp.narrow(0, 0, m), theta.narrow(0, 0, m)
        radius = out.narrow(0, start, m)
        torch.add(steps.narrow(0, 0, m), _int64(key + start * _GAMMA), out=zc)
        _mix_(zc, tc)
        angle.copy_(zc.to(torch.int32)).mul_(2 * math.pi / 2**32)  # low 32 bits: [−π, π)
        radius.copy_(zc.bitwise_right_shift_(40)).add_(2**23 + 1).mul_(2.0**-24)  # top 24: (0, 1]
        radius.log_().mul_(-2.0).sqrt_()
        torch.mul(radius, torch.sin(angle), out=out.narrow(0, pairs + start, m))
        radius.mul_(angle.cos_())
    return out.narrow(0, 0, n).view(shape)


def normalization_scale(d: torch.Tensor, w: torch.Tensor, norm: str) -> torch.Tensor | None:
    """The factor that scales direction tensor ``d`` to the norm of weight ``w`` (see the module
    docstring), on ``d``'s device: a scalar (``layer``, 1-D tensors), one per output row
    (``filter``), or None (``none``). Norms are taken in float32 where each tensor lives (no
    float32 copy of a bf16 weight); only the small result crosses devices, once per tensor."""
    if norm == "none":
        return None
    if norm == "layer" or d.ndim < 2:
        dims, keep = None, False
    elif norm == "filter":
        dims, keep = tuple(range(1, d.ndim)), True  # (out, *in): each output row its own scale
    else:
        raise ValueError(f"unknown normalisation {norm!r}")
    w_norm = torch.linalg.vector_norm(w, dim=dims, keepdim=keep, dtype=torch.float32).to(d.device)
    return w_norm / torch.linalg.vector_norm(d, dim=dims, keepdim=keep).clamp_min(1e-12)


def normalize_tensor(d: torch.Tensor, w: torch.Tensor, norm: str) -> torch.Tensor:
    """Scale one direction tensor ``d`` to the norm of its weight ``w`` (see module docstring);
    the result is on ``d``'s device (the model's)."""
    scale = normalization_scale(d, w, norm)
    return d if scale is None else d * scale


def random_direction(weights: Mapping[str, torch.Tensor], seed: int, norm: str) -> Direction:
    """A normalised Gaussian direction over ``weights`` (materialised, on each weight's device;
    see ``RandomDirection``)."""
    return {
        name: normalize_tensor(gaussian_like(name, w.shape, seed, w.device), w, norm)
        for name, w in weights.items()
    }


DOT_CHUNK = 1 << 20  # elements per float64 block of ``tensor_dot``


def tensor_dot(x: torch.Tensor, y: torch.Tensor) -> float:
    """⟨x, y⟩ of one pair of tensors, in float64 on ``x``'s device (``y`` is moved there), a block
    of ``DOT_CHUNK`` elements at a time: float64 copies of whole operands (and of their product)
    took 24 bytes an element of the largest tensor, more than the memory plan's workspace."""
    xs, ys = x.reshape(-1), y.to(x.device).reshape(-1)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, xs.numel(), DOT_CHUNK):
        n = min(DOT_CHUNK, xs.numel() - start)
        total += torch.dot(xs.narrow(0, start, n).double(), ys.narrow(0, start, n).double())
    return total.item()


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

    def release(self) -> None:
        """Drop what a one-entry memo keeps (``perturbed`` calls it before decoding: the last
        tensor of each direction, often the lm_head, would otherwise stay alive through it)."""
        self._last = None


class RandomDirection(LazyDirection):
    """``random_direction`` regenerated per tensor on ``device`` (default: each weight's);
    ``weights`` are θ₀ (for the norms; they may live elsewhere, e.g. a snapshot in host memory).
    Each tensor's normalisation factor is computed once and kept (a scalar or one per row): it
    depends only on the noise and θ₀, so later points only regenerate and scale."""

    def __init__(
        self,
        weights: Mapping[str, torch.Tensor],
        seed: int,
        norm: str,
        device: torch.device | str | None = None,
    ):
        self.weights, self.seed, self.norm = weights, seed, norm
        self.device = None if device is None else torch.device(device)
        self.names = tuple(weights)
        self._scales: dict[str, torch.Tensor | None] = {}
        self._last: tuple[str, torch.Tensor] | None = None

    def tensor(self, name: str) -> torch.Tensor:
        # One-entry memo: a point asks for d1[name] once for itself and once to orthogonalise d2.
        if self._last is not None and self._last[0] == name:
            return self._last[1]
        w = self.weights[name]
        t = gaussian_like(name, w.shape, self.seed, self.device or w.device)
        if name not in self._scales:
            self._scales[name] = normalization_scale(t, w, self.norm)
        scale = self._scales[name]
        if scale is not None:
            t.mul_(scale)
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
        self._last: tuple[str, torch.Tensor] | None = None

    def tensor(self, name: str) -> torch.Tensor:
        # One-entry memo, as RandomDirection's: a 2D point asks for d1[name] for itself and again
        # to orthogonalise d2, and each ask was a read and a host→device copy (6 reads for 3
        # tensors a point; a 7B float32 interpolation direction is ≈27 GB a read).
        if self._last is not None and self._last[0] == name:
            return self._last[1]
        t = self._file.get_tensor(name).float().to(self.device)
        self._last = (name, t)
        return t


class Orthogonalized(LazyDirection):
    """``base`` minus its projection on ``against`` (see ``orthogonalize``): it moves only the
    tensors ``base`` has, and is orthogonal to ``against`` over the whole model.

    One pass over the tensors (each read or regenerated once) gives the coefficient and the
    whole-model cosines of ``against`` with ``base`` before orthogonalising and with the result
    after it. Its sums are ``dot``'s
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
        # cos(base⊥, against) from the same sums: ⟨b⊥,a⟩ = ⟨a,b⟩ − c·⟨a|_B,a|_B⟩ and
        # ‖b⊥‖² = ⟨b,b⟩ − 2c·⟨a,b⟩ + c²·⟨a|_B,a|_B⟩ (b⊥ has only B's tensors). This is 0 up to
        # float64 rounding of the sums; the float32 rounding of b⊥'s own tensors (≲1e-7) is not in it.
        after_sq = max(base_sq - 2 * self.coef * ab + self.coef**2 * shared_sq, 0.0)
        self.cosine_after = (ab - self.coef * shared_sq) / max((against_sq * after_sq) ** 0.5, 1e-300)

    def tensor(self, name: str) -> torch.Tensor:
        t = self.base.tensor(name)
        if name in self._against_names:  # one new tensor, no temporary coef·a beside it
            t = torch.add(t, self.against.tensor(name), alpha=-self.coef)
        return t

    def release(self) -> None:
        self.base.release()
        self.against.release()


class Materialized(LazyDirection):
    """A lazy direction held in memory (faster per point, one more copy of the weights), where
    its tensors are produced (the weights' device) unless ``device`` says otherwise, in float32
    unless ``dtype`` says otherwise (a bf16 copy halves the memory and rounds the direction)."""

    def __init__(
        self,
        direction: LazyDirection,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        self.names = direction.names
        self._d = {n: t.to(device=device, dtype=dtype) for n, t in direction.items()}
        direction.release()  # its memo would keep one more copy of the last tensor

    def tensor(self, name: str) -> torch.Tensor:
        return self._d[name]
