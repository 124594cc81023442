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

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import torch

from landscape.core.directions import LazyDirection
from landscape.core.specs import NonFiniteError

__all__ = [
    "NonFiniteError",
    "Snapshot",
    "StepResolutionError",
    "check_step_resolution",
    "perturbed",
    "step_error",
]


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


def _finite(t: torch.Tensor) -> torch.Tensor:
    """A 0-d bool on ``t``'s device: every element finite (from its min and max, no full copy)."""
    lo, hi = torch.aminmax(t)
    return torch.isfinite(lo) & torch.isfinite(hi)


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
        checks: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # (name, float32 ok, cast ok)
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
                p.copy_(new)  # cast back to the model dtype
                # finiteness on the device, no copy and no sync per tensor: NaN and ±inf show in
                # the extremes (aminmax propagates NaN); one sync for the whole point below
                summed = _finite(new)
                checks.append((name, summed, _finite(p) if p.dtype != new.dtype else summed))
                del new
            for d in directions:  # memos of the last tensors: not through decoding
                d.release()
            if checks:
                flags = torch.stack([torch.stack([a, b]) for _, a, b in checks])
                if not bool(flags.all()):  # the point's one sync
                    row = int((~flags.all(dim=1)).nonzero()[0])
                    name, summed_ok, _ = checks[row]
                    if not bool(summed_ok):
                        raise NonFiniteError(
                            f"coefficients {tuple(coeffs)} give non-finite weights in {name}"
                        )
                    dtype = snapshot.params[name].dtype
                    raise NonFiniteError(f"coefficients {tuple(coeffs)} overflow {dtype} in {name}")
        yield
    finally:
        snapshot.restore()


# A step the weights' dtype rounds by more than this (relative L2 error of the applied step, on a
# sample of elements) is refused: at α = 0.001 along a layer-normalised direction a bf16 weight
# keeps 78% of its elements unchanged (error 0.80), at 0.01 the error is 0.17, at 0.05 0.03.
STEP_ERROR_MAX = 0.10
STEP_SAMPLE = 1 << 16  # elements per checked tensor (a fixed stride: deterministic)
STEP_TENSORS = 8  # tensors checked, spread over the model


class StepResolutionError(NonFiniteError):
    """The model's dtype cannot hold the grid's smallest step (bf16 rounds it away)."""


def step_error(
    snapshot: Snapshot, direction: LazyDirection, coeff: float, dtype: torch.dtype
) -> tuple[float, float]:
    """How much of the step ``coeff·d`` a weight of ``dtype`` keeps: ``(relative error, share
    unchanged)`` of the applied step ``round(θ₀ + c·d) − θ₀`` against ``c·d``, over a fixed sample
    of elements of up to ``STEP_TENSORS`` tensors spread over the model (exactly what ``perturbed``
    computes on those elements: θ₀ + c·d summed in float32, cast once)."""
    names = [n for n in snapshot.params if n in direction.names]
    if not names or not coeff:
        return 0.0, 0.0
    pick = names[:: max(1, len(names) // STEP_TENSORS)][:STEP_TENSORS]
    err_sq = want_sq = unchanged = moved = 0.0
    with torch.no_grad():
        for name in pick:
            d = direction.tensor(name).reshape(-1)
            w0 = snapshot.weights[name].reshape(-1).to(d.device)
            stride = max(1, d.numel() // STEP_SAMPLE)
            d, w0 = d[::stride].float(), w0[::stride]
            want = coeff * d
            got = (w0.float() + want).to(dtype).float() - w0.float()
            err_sq += float(torch.sum((got - want).double() ** 2))
            want_sq += float(torch.sum(want.double() ** 2))
            nonzero = want != 0
            unchanged += float(torch.sum((got == 0) & nonzero))
            moved += float(torch.sum(nonzero))
    return (err_sq / want_sq) ** 0.5 if want_sq else 0.0, unchanged / moved if moved else 0.0


def check_step_resolution(
    snapshot: Snapshot, directions: Sequence[LazyDirection], smallest: Sequence[float], dtype: torch.dtype
) -> list[tuple[float, float, float]]:
    """``(coefficient, relative error, share unchanged)`` of each direction's smallest nonzero
    grid step in ``dtype``; a ``StepResolutionError`` (one line, with the flag that fixes it) when
    one is rounded by more than ``STEP_ERROR_MAX``. float32 weights are not checked."""
    if dtype == torch.float32:
        return []
    out = []
    for k, (d, c) in enumerate(zip(directions, smallest, strict=True)):
        if not c:
            continue
        err, same = step_error(snapshot, d, c, dtype)
        out.append((c, err, same))
        if err > STEP_ERROR_MAX:
            axis = "αβ"[k] if len(directions) <= 2 else f"c{k + 1}"
            raise StepResolutionError(
                f"{str(dtype).removeprefix('torch.')} weights cannot hold the step {axis} = {c:g}: "
                f"{same:.0%} of sampled weights do not move and the step is off by {err:.2f} "
                f"(> {STEP_ERROR_MAX:.2f}); use --dtype float32 or a grid with larger steps"
            )
    return out
