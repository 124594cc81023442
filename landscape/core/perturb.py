"""Perturbation: set θ = θ₀ + α·d₁ (+ β·d₂) in place, and restore θ₀ exactly.

Like PEFT's ``disable_adapter``, ``perturbed`` is a context manager that restores by *copy* in
``finally``, never by subtracting: floating-point add/sub is not reversible (bf16 visibly so).
Every point is built from the snapshot θ₀, never from the previous point, so errors do not
accumulate. Memory beyond the model: one snapshot of the perturbed parameters (the reference
implementation holds three copies plus a full ``load_state_dict`` per point), plus one tensor of
each direction at a time. Everything stays on the model's device (directions produce their tensors
there, ``landscape.core.directions``) except, when the memory plan says so (``landscape.core.memory``),
the snapshot: in pinned host memory it costs no device memory and one host→device copy per tensor
per point (asynchronous, ordered on the current stream before the kernels that read it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import torch

from landscape.core.directions import LazyDirection
from landscape.core.specs import NonFiniteError

__all__ = ["NonFiniteError", "Snapshot", "perturbed"]


class Snapshot:
    """θ₀: a copy of the parameters a scan perturbs, taken once, where the weights are
    (``where="device"``) or in host memory (``"host"``: pinned when CUDA is available, so the
    per-point copies back are asynchronous)."""

    def __init__(self, params: Mapping[str, torch.nn.Parameter], where: Literal["device", "host"] = "device"):
        self.params, self.where = dict(params), where
        pin = where == "host" and torch.cuda.is_available()
        with torch.no_grad():
            self.weights = {
                n: p.detach().clone() if where == "device" else _host_copy(p.detach(), pin)
                for n, p in self.params.items()
            }

    def restore(self) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.weights[n], non_blocking=True)


def _host_copy(t: torch.Tensor, pin: bool) -> torch.Tensor:
    out = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=pin)
    return out.copy_(t)


@contextmanager
def perturbed(snapshot: Snapshot, directions: Sequence[LazyDirection], coeffs: Sequence[float]):
    """Within the block the model holds θ₀ + Σ cₖ·dₖ; on exit (even on error) exactly θ₀."""
    if len(directions) != len(coeffs):
        raise ValueError("one coefficient per direction")
    try:
        if not all(abs(c) <= torch.finfo(torch.float32).max for c in coeffs):  # NaN fails too
            raise NonFiniteError(f"coefficients {tuple(coeffs)} give non-finite weights (beyond float32)")
        with torch.no_grad():
            for name, p in snapshot.params.items():
                terms = [(c, d) for c, d in zip(coeffs, directions, strict=True) if c and name in d.names]
                if not terms:
                    continue
                w0 = snapshot.weights[name].to(p.device, non_blocking=True)
                (c, d), rest = terms[0], terms[1:]
                new = torch.add(w0, d.tensor(name), alpha=c)  # a fresh float32 tensor: θ₀ + c·d
                for c, d in rest:
                    new.add_(d.tensor(name), alpha=c)
                # A float64 sum, not an isfinite mask (one pass, no temporary): NaN and ±inf
                # propagate into it, and finite float32 values cannot overflow it.
                if not math.isfinite(new.sum(dtype=torch.float64).item()):
                    raise NonFiniteError(f"coefficients {tuple(coeffs)} give non-finite weights in {name}")
                p.copy_(new)  # cast back to the model dtype
                if p.dtype != new.dtype and not math.isfinite(p.sum(dtype=torch.float64).item()):
                    raise NonFiniteError(f"coefficients {tuple(coeffs)} overflow {p.dtype} in {name}")
        yield
    finally:
        snapshot.restore()
