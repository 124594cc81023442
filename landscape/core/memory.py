"""The memory plan of a scan: where θ₀'s snapshot lives and whether directions are held.

A scan needs, beside the loaded model: one snapshot θ₀ of the parameters it perturbs (restored by
copy after every point, ``landscape.core.perturb``), the directions, a per-point workspace, and
room to decode. ``plan_memory`` is a pure function of those sizes and of the free memory (measured
by ``free_memory`` at the edge), so a test can drive it with a 7B-shaped budget on any machine:

- snapshot on the model's device (fastest restore), else in pinned host memory (CUDA only: the
  restore is a host→device copy per tensor per point);
- directions regenerated per point on the device (``gaussian_like``: no memory), or held when the
  user asks (``--keep-directions``: float32, 4 bytes an element each, or the compute dtype). Holding
  is never chosen silently: regenerating is cheap (bench/bench_directions.py) and a compute-dtype
  copy rounds the direction;
- when nothing fits: ``MemoryPlanError``, one line with a suggestion (a ``SpecError``, so the CLI
  prints it without a traceback).

Sizes are bytes; "GB" in messages is 10⁹ bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from landscape.core.specs import SpecError

Keep = Literal["float32", "compute"] | None
# gaussian_like's temporaries per pair of a chunk, measured: int64 steps, z and tmp (24 B), the
# float32 angle (4), the int32 cast of z (4) and sin(angle) (4); its chunks (directions.py)
GENERATOR_PAIR_BYTES = 36
CPU_CHUNK_PAIRS, GPU_CHUNK_PAIRS = 1 << 16, 1 << 22
HEADROOM = 0.05  # of free device memory, left for the allocator's fragmentation
ASSUMED_PROMPT_TOKENS = 256  # prompt + chat template, for the decoding reserve (an estimate)


class MemoryPlanError(SpecError):
    """No snapshot placement and direction policy fits the free memory."""


@dataclass(frozen=True)
class MemoryBudget:
    """What a scan needs and what is free (bytes, element counts)."""

    param_bytes: int  # the perturbed parameters in the model's dtype (= the snapshot)
    param_elements: int  # elements of each direction (the perturbed parameters')
    largest_elements: int  # the biggest perturbed tensor (the per-point workspace scales with it)
    compute_bytes: int  # bytes an element of the compute dtype (2: bfloat16, 4: float32)
    n_directions: int
    device: str  # the device's type: "cuda", or "cpu" (and any other: one memory with the host)
    free_device: int  # on CPU the same memory as free_host
    free_host: int
    decode_bytes: int = 0  # reserve for decoding: KV cache and activations (``decode_reserve``)
    keep: Keep = None  # the user's preference: hold directions in float32 / the compute dtype
    pinned_ok: bool = False  # pinned host memory is possible (CUDA available)
    pinned_bytes: int = 0  # the snapshot in pinned host memory (``pinned_size`` per tensor); 0: param_bytes
    stored: int = 0  # of the directions, how many are read from a file (file, interpolation)


def pinned_size(nbytes: int) -> int:
    """Bytes PyTorch's pinned host allocator takes for a tensor of ``nbytes``: it rounds every
    block up to a power of two (a 7B bf16 snapshot of 13.48 GB, pinned tensor by tensor, takes
    17.72 GB)."""
    return 1 << max(nbytes - 1, 0).bit_length() if nbytes > 0 else 0


@dataclass(frozen=True)
class MemoryPlan:
    snapshot: Literal["device", "host"]  # host: pinned memory, copied to the device per point
    directions: Literal["regenerated", "float32", "compute"]  # held in float32 / compute dtype
    device_bytes: int  # what the plan adds on the device (snapshot, held directions, workspace)
    host_bytes: int  # what it adds in host memory (a host snapshot)
    budget: MemoryBudget
    stored_on_device: bool = False  # file directions read once and held on the device (CUDA)

    def line(self, stored: int = 0) -> str:
        """The one line printed before a scan; ``stored``: how many of the directions are read
        from a file (file and interpolation directions), which a regenerating plan copies to the
        device once a point, tensor by tensor, instead of regenerating."""
        b = self.budget
        where = "the device" if b.device == "cuda" else "host memory"
        snap = "on the device" if self.snapshot == "device" else "in pinned host memory"
        if self.directions != "regenerated":
            dirs = f"held in {'float32' if self.directions == 'float32' else 'the compute dtype'}"
        elif stored == 0:
            dirs = "regenerated per point on the device"
        else:
            read = (
                "read from their files once and held on the device"
                if self.stored_on_device
                else "read from their files once a point (each tensor copied to the device once)"
                if b.device == "cuda"
                else "read from their files once a point"
            )
            dirs = (
                read
                if stored == b.n_directions
                else (
                    f"regenerated per point on the device ({b.n_directions - stored} random), "
                    f"{read} ({stored} stored)"
                )
            )
        host = (
            f", {_gb(self.host_bytes)} of {_gb(b.free_host)} free in host memory"
            if b.device == "cuda"
            else ""
        )
        return (
            f"memory plan: θ₀ snapshot {snap} ({_gb(b.param_bytes)}), {b.n_directions} direction(s) {dirs}; "
            f"needs {_gb(self.device_bytes + b.decode_bytes)} of {_gb(b.free_device)} free on {where}"
            f" (decoding reserve {_gb(b.decode_bytes)}){host}"
        )


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def held_bytes(b: MemoryBudget, directions: str) -> int:
    per = {"regenerated": 0, "float32": 4, "compute": b.compute_bytes}[directions]
    return per * b.param_elements * b.n_directions


def workspace_bytes(b: MemoryBudget, snapshot: str, directions: str = "regenerated") -> int:
    """Per-point temporaries beside the snapshot and any held directions, in float32 tensors of the
    largest perturbed tensor (measured on CPU, ``bench/bench_memory_plan.py``): the sum θ₀ + Σ cₖ·dₖ
    and, when regenerated, each direction's tensor (kept by its one-entry memo while the next is
    made) plus, in 2D, the Gram–Schmidt result: 8 B an element in 1D, 16 B in 2D. Held directions
    need the sum alone at a point, but holding a 2D pair is built tensor by tensor beside its two
    sources: 4 B in 1D, 8 B in 2D (float32; directions held in the compute dtype are cast from
    float32 tensors and are not measured: counted as regenerated). Plus the generator's chunk, and
    for a host snapshot the device copy of that tensor."""
    n = b.n_directions
    if directions == "float32":
        per = 4 * max(1, 2 * (n - 1))
    else:
        per = 4 * (n + 1) + (4 if n >= 2 else 0)
    chunk_pairs = GPU_CHUNK_PAIRS if b.device == "cuda" else CPU_CHUNK_PAIRS
    gen = GENERATOR_PAIR_BYTES * chunk_pairs if n else 0
    staged = b.largest_elements * (b.param_bytes // max(b.param_elements, 1)) if snapshot == "host" else 0
    return per * b.largest_elements + gen + staged


def plan_memory(b: MemoryBudget) -> MemoryPlan:
    """The first plan that fits: snapshot on the device, else pinned on the host (CUDA); directions
    as the user asked (regenerated unless ``keep``). Raises ``MemoryPlanError`` when none fits."""
    directions = b.keep or "regenerated"
    held = held_bytes(b, directions)
    usable = b.free_device * (1 - HEADROOM) - b.decode_bytes
    places = ["device"] + (["host"] if b.device == "cuda" and b.pinned_ok else [])
    for snapshot in places:
        on_device = (
            held + workspace_bytes(b, snapshot, directions) + (b.param_bytes if snapshot == "device" else 0)
        )
        on_host = (b.pinned_bytes or b.param_bytes) if snapshot == "host" else 0
        if b.device == "cpu":
            fits = on_device <= usable  # one memory: free_device is free_host
        else:
            fits = on_device <= usable and on_host <= b.free_host * (1 - HEADROOM)
        if fits:
            # File directions on a GPU: held there when they fit too (each point would otherwise
            # copy every tensor across PCIe, ≈27 GB a 7B float32 direction), else read per point
            keep_stored = 4 * b.param_elements * b.stored if directions == "regenerated" else 0
            if b.device == "cuda" and keep_stored and on_device + keep_stored <= usable:
                return MemoryPlan(snapshot, directions, on_device + keep_stored, on_host, b, True)
            return MemoryPlan(snapshot, directions, on_device, on_host, b)
    need = (
        held + workspace_bytes(b, places[-1], directions) + (b.param_bytes if places[-1] == "device" else 0)
    )
    what = f"{b.n_directions} direction(s) held in {directions} ({_gb(held)})" if held else "the θ₀ snapshot"
    if b.keep:
        hint = "drop --keep-directions: regenerated directions need no memory"
    elif b.device == "cuda" and not b.pinned_ok:
        hint = "free device memory, or use a GPU with more memory"
    else:
        hint = "use bfloat16, fewer prompts per batch (--batch-size), or a device with more free memory"
    raise MemoryPlanError(
        f"not enough memory for this scan: {what} and the per-point workspace need {_gb(need)} "
        f"beside a decoding reserve of {_gb(b.decode_bytes)}, and {_gb(b.free_device)} is free on "
        f"{'the device' if b.device == 'cuda' else 'this machine'}; {hint}"
    )


def decode_reserve(
    layers: int, kv_heads: int, head_dim: int, vocab: int, batch: int, tokens: int, compute_bytes: int
) -> int:
    """KV cache (keys and values of every layer for ``batch`` rows of ``tokens``) plus the float32
    logits of one step: the decoder's memory beyond the weights, an estimate."""
    return 2 * layers * kv_heads * head_dim * batch * tokens * compute_bytes + 4 * batch * vocab * 2


class ReplicaPlanError(MemoryPlanError):
    """Ray replicas sharing a GPU cannot each fit the model and its scan in their share."""


def replica_share(
    free_device: int,
    free_host: int,
    total_device: int,
    own_device: int,
    total_host: int,
    fraction: float,
    node_gpus: float = 1,
) -> tuple[int, int]:
    """What one Ray replica reserving ``fraction`` of a GPU (``--gpus-per-worker``) may plan with:
    its share of the device (``fraction × total``) less what its own process already holds there
    (the loaded model), and its share of the node's host memory for a pinned snapshot (the node
    runs ``node_gpus / fraction`` replicas at most: each gets that part of ``total_host``), never
    more than is free now. Replicas set up at the same moment all see the whole device free:
    planning against the free memory alone put 4 × 7B bf16 replicas at 0.25 (≈164 GB) on a 141 GB
    H200."""
    if not 0 < fraction < 1:
        return free_device, free_host
    device = min(free_device, int(fraction * total_device) - own_device)
    host = min(free_host, int(fraction * total_host / max(node_gpus, 1)))
    return max(device, 0), max(host, 0)


def check_replicas(
    budget: MemoryBudget,
    model_bytes: int,
    total_device: int,
    total_host: int,
    fraction: float,
    workers: int,
    node_gpus: float = 1,
) -> MemoryPlan:
    """Before any Ray actor starts: does one replica, holding ``model_bytes`` of weights on a share
    ``fraction`` of a device of ``total_device`` bytes, fit its scan (``budget``'s sizes; its free
    fields are replaced by the share)? Returns the replica's plan, or raises ``ReplicaPlanError``
    naming the replica count, what one needs and the ``--gpus-per-worker`` that would fit."""

    def share(f: float) -> tuple[int, int]:  # what replica_share leaves a replica, model loaded
        f = min(f, 1.0)
        return max(int(f * total_device) - model_bytes, 0), int(f * total_host / max(node_gpus, 1))

    free_device, free_host = share(fraction)
    try:
        return plan_memory(replace(budget, free_device=free_device, free_host=free_host))
    except MemoryPlanError:
        pass
    fits = None
    for per_gpu in range(int(round(1 / fraction)) - 1, 0, -1):  # fewer replicas per GPU
        dev, host = share(1 / per_gpu)
        try:
            plan_memory(replace(budget, free_device=dev, free_host=host))
        except MemoryPlanError:
            continue
        fits = per_gpu
        break
    snapshot = "host" if budget.pinned_ok else "device"  # the placement that needs least device memory
    need = model_bytes + budget.decode_bytes + held_bytes(budget, budget.keep or "regenerated")
    need += workspace_bytes(budget, snapshot, budget.keep or "regenerated") + (
        budget.param_bytes if snapshot == "device" else 0
    )
    hint = (
        f"use --gpus-per-worker {math.floor(100 / fits) / 100:g} ({fits} per GPU) or fewer --workers"
        if fits
        else "give each replica a GPU of its own (--gpus-per-worker 1) or use a larger GPU"
    )
    raise ReplicaPlanError(
        f"{workers} Ray replicas at {fraction:g} GPU each do not fit: one needs ≈{_gb(need)} (model "
        f"{_gb(model_bytes)}, its scan and decoding reserve) and its share is {_gb(min(fraction, 1) * total_device)} "
        f"of a {_gb(total_device)} GPU; {hint}"
    )


def free_memory(device, gpus_per_worker: float = 0.0, node_gpus: float = 1) -> tuple[int, int]:
    """(free on ``device``, free host memory) in bytes, measured now. On CUDA, the blocks PyTorch's
    caching allocator holds reserved but unused count as free: ``mem_get_info`` counts them as used,
    and a session reused for a second scan (auto range → scan, a family, a study, the dashboard)
    would otherwise plan a 7B 2D scan with 27 GB cached into pinned host memory. On a machine
    without CUDA a 'cuda' device (the fake-CUDA tests) reports host memory. A Ray replica with
    ``gpus_per_worker`` < 1 gets its share only (``replica_share``)."""
    import psutil
    import torch

    host = psutil.virtual_memory().available
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        allocated = torch.cuda.memory_allocated(device)
        cached = torch.cuda.memory_reserved(device) - allocated
        free, total = torch.cuda.mem_get_info(device)
        free = free + max(cached, 0)
        total_host = psutil.virtual_memory().total
        return replica_share(free, host, total, allocated, total_host, gpus_per_worker, node_gpus)
    return host, host


def scan_budget(
    model, params, n_directions: int, batch: int, max_new_tokens: int, keep: Keep, free, stored: int = 0
) -> MemoryBudget:
    """The budget of a scan of a loaded ``model`` perturbing ``params`` ({name: parameter}),
    ``free`` = (free device, free host) bytes (``free_memory``, with an existing snapshot's bytes
    added back by the caller)."""
    import torch

    tensors = list(params.values()) or list(model.parameters())[:1]
    device = tensors[0].device
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", 1)
    head_dim = getattr(cfg, "head_dim", None) or getattr(cfg, "hidden_size", heads) // heads
    compute_bytes = tensors[0].element_size()
    return MemoryBudget(
        param_bytes=sum(t.numel() * t.element_size() for t in params.values()),
        pinned_bytes=sum(pinned_size(t.numel() * t.element_size()) for t in params.values()),
        param_elements=sum(t.numel() for t in params.values()),
        largest_elements=max((t.numel() for t in params.values()), default=0),
        compute_bytes=compute_bytes,
        n_directions=n_directions,
        device=device.type,
        free_device=int(free[0]),
        free_host=int(free[1]),
        decode_bytes=decode_reserve(
            getattr(cfg, "num_hidden_layers", 1),
            getattr(cfg, "num_key_value_heads", None) or heads,
            head_dim,
            getattr(cfg, "vocab_size", 0),
            batch,
            ASSUMED_PROMPT_TOKENS + max_new_tokens,
            compute_bytes,
        ),
        keep=keep,
        pinned_ok=device.type == "cuda" and torch.cuda.is_available(),
        stored=stored,
    )
