"""The GPU path on a CPU-only machine: every tensor of a point lives on the model's device.

``FakeTensorMode`` (torch._subclasses) makes tensors that claim ``cuda:0`` and hold no data, and
it checks devices as CUDA does (a CPU tensor times a CUDA tensor raises), so a direction drawn on
the CPU and never moved fails here as it fails on a GPU. The tiny Llama of tests/conftest.py is
loaded on the CPU and moved to the fake CUDA device; a point then runs through the production path
(``Session.directions`` → ``perturbed`` → ``evaluate_point``'s greedy decoder → restore).

Fake tensors have no values, so calls that read one (``.item()``, ``bool(t)``, ``.tolist()``) are
answered by ``_Placeholders`` with True / 1.0 / 0: finite weights, and a decoder that stops after its
first token. These tests check where tensors live and that every op runs; the CPU tests check the
numbers. Two things FakeTensorMode cannot do on a CPU-only PyTorch build, and how they are covered:

- Python-level indexing (``t[..., None]``, ``t[:, -1]``), ``t.copy_(s)``, ``t.contiguous()`` and
  ``float(t)`` of a CUDA tensor take a CUDA *device guard* in PyTorch's Python bindings, which a
  CPU-only build does not have ("PyTorch is not linked with support for cuda devices";
  ``torch._C._ensureCUDADeviceGuardSet`` fakes one only in CUDA builds without a GPU).
  ``_NoCudaGuard`` runs ``copy_`` and ``contiguous`` as their aten ops (which FakeTensorMode checks
  as usual), indexing on a CPU alias of the fake tensor moved back to its device (a copy, not a
  view: harmless, as fake tensors hold no data), and ``float(t)`` as ``t.item()``. Every other op
  keeps FakeTensorMode's device checks, which agree with a real H100 on the cases that matter
  (CPU × CUDA raises, CUDA × 0-dim CPU is allowed).
- safetensors cannot build a tensor inside FakeTensorMode, so ``StoredDirection`` reads its file
  with the mode suspended (the bytes are real and on the CPU, as on a GPU machine); the move to the
  model's device happens under the mode, where it is checked.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import safetensors
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from landscape.core.directions import LazyDirection
from landscape.core.perturb import perturbed
from landscape.core.specs import (
    AxisSpec,
    CapabilitySpec,
    DirectionSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
)

CUDA = torch.device("cuda", 0)
_SAFE_OPEN = safetensors.safe_open
PROMPTS = ["Tell me a secret.", "How do I pick a lock?"]


class _Placeholders(TorchDispatchMode):
    """Answers reads of a fake tensor's value (which it does not have) with a fixed placeholder."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            dtype = args[0].dtype
            return True if dtype == torch.bool else 1.0 if dtype.is_floating_point else 0
        return func(*args, **(kwargs or {}))


class _NoCudaGuard(TorchFunctionMode):
    """Runs the few Tensor methods that take a CUDA device guard (absent from CPU-only builds)
    without one: as their aten op where there is one, else on a CPU alias moved back."""

    OPS = {
        torch.Tensor.copy_: torch.ops.aten.copy_.default,
        torch.Tensor.contiguous: torch.ops.aten.contiguous.default,
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        on_cuda = bool(args) and isinstance(args[0], torch.Tensor) and args[0].device.type == "cuda"
        if on_cuda and func in self.OPS:
            return self.OPS[func](*args, **kwargs)
        if on_cuda and func is torch.Tensor.__getitem__:
            device = args[0].device
            on_cpu = torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: t.to("cpu"), args)
            return func(*on_cpu, **kwargs).to(device)
        if func is torch.Tensor.__float__:
            return float(args[0].item())
        return func(*args, **kwargs)


@contextmanager
def fake_cuda():
    with FakeTensorMode(allow_non_fake_inputs=True), _Placeholders(), _NoCudaGuard():
        yield


class _SafeOpenOutsideFake:
    """``safetensors.safe_open`` whose reads run with the fake mode suspended."""

    def __init__(self, *args, **kwargs):
        with unset_fake_temporarily():
            self._file = _SAFE_OPEN(*args, **kwargs)

    def keys(self):
        return self._file.keys()

    def get_tensor(self, name: str) -> torch.Tensor:
        with unset_fake_temporarily():
            return self._file.get_tensor(name)


def _on_cuda(t: torch.Tensor) -> bool:
    return isinstance(t, FakeTensor) and t.device == CUDA


@pytest.fixture(scope="module")
def cpu_side(tmp_path_factory, tiny_model, tiny_model_b):
    """(store, direction file), made on the CPU: the store holds the interpolation direction to
    the second tiny model (its key has no device, so a GPU run reads what a CPU run wrote); the
    file moves some of the model's tensors, norms included."""
    from safetensors.torch import save_file

    from cache import Store
    from landscape.core.models import load_model
    from landscape.engine.interpolation import interpolation_direction_for

    root = tmp_path_factory.mktemp("device")
    lm = load_model(ModelSpec(source=str(tiny_model)))
    params = dict(lm.model.named_parameters())
    g = torch.Generator().manual_seed(0)
    file_path = root / "d.safetensors"
    save_file(
        {n: torch.randn(p.shape, generator=g) for n, p in params.items() if "layers.1" in n}, str(file_path)
    )
    with Store(root / "store") as store:
        interpolation_direction_for(lm, ModelSpec(source=str(tiny_model_b)), store, log=str)
        yield store, str(file_path)


@pytest.fixture
def cuda_session(tiny_model, cpu_side, monkeypatch):
    """(Session, model, direction file) with the tiny Llama on (fake) CUDA."""
    import landscape.core.models
    from landscape.core.models import load_model
    from landscape.engine.scan import Session

    store, file_path = cpu_side
    lm = load_model(ModelSpec(source=str(tiny_model)))
    with fake_cuda():
        lm.model.to(CUDA)
        lm.device = "cuda:0"
        monkeypatch.setattr(landscape.core.models, "load_model", lambda *a, **k: lm)
        monkeypatch.setattr(safetensors, "safe_open", _SafeOpenOutsideFake)
        yield Session(store, Runtime(device="cuda", progress=False), log=str), lm, file_path


def _scan(tiny_model, tiny_model_b, file_path, kind: str) -> ScanSpec:
    model = ModelSpec(source=str(tiny_model))
    dirs = {
        "1d-layer": (DirectionSpec(seed=1),),
        "2d-filter": (DirectionSpec(seed=1, norm="filter"), DirectionSpec(seed=2, norm="filter")),
        "2d-layer-no-embeddings": (
            DirectionSpec(seed=1, include_embeddings=False),
            DirectionSpec(seed=2),
        ),
        "interpolation+random": (
            DirectionSpec(kind="interpolation", target=ModelSpec(source=str(tiny_model_b))),
            DirectionSpec(seed=2),
        ),
        "file": (DirectionSpec(kind="file", path=file_path, norm="none"),),
        "random+file": (DirectionSpec(seed=1), DirectionSpec(kind="file", path=file_path, norm="none")),
    }[kind]
    return ScanSpec(
        model=model,
        directions=dirs,
        alphas=AxisSpec(start=-0.5, stop=0.5, num=3),
        betas=AxisSpec(start=-0.5, stop=0.5, num=3) if len(dirs) == 2 else None,
        prompts=PromptSpec(limit=2),
        # one case also measures capability: benign over-refusal and the reference text's NLL
        capability=CapabilitySpec(benign_limit=1) if kind == "2d-filter" else None,
    )


CASES = [  # (directions, keep_directions)
    ("1d-layer", False),
    ("1d-layer", True),
    ("2d-filter", False),
    ("2d-layer-no-embeddings", True),
    ("interpolation+random", False),
    ("interpolation+random", True),
    ("file", False),
    ("random+file", True),
]


@pytest.mark.parametrize(("kind", "keep"), CASES, ids=[f"{k}-{'kept' if m else 'lazy'}" for k, m in CASES])
def test_a_point_runs_on_cuda(cuda_session, tiny_model, tiny_model_b, kind, keep):
    """Directions (orthogonalised in 2D), perturbation, a greedy decoding pass and restore, with
    every tensor on the model's device."""
    session, lm, file_path = cuda_session
    session.runtime = session.runtime.model_copy(update={"keep_directions": keep})
    spec = _scan(tiny_model, tiny_model_b, file_path, kind)
    snapshot, dirs, info = session.directions(spec)
    assert all(_on_cuda(w) for w in snapshot.weights.values())
    for d in dirs:
        assert isinstance(d, LazyDirection)
        assert all(_on_cuda(t) for _, t in d.items())
    if len(dirs) == 2:
        assert set(info) == {"cosine_before", "cosine_after"}
    coeffs = [0.5, -0.25][: len(dirs)]
    result = session.evaluate_at(spec, PROMPTS, snapshot, dirs, coeffs)
    assert len(result.responses) == len(PROMPTS) + (1 if spec.capability else 0)
    assert ("nll" in result.metrics) == (spec.capability is not None)
    assert all(_on_cuda(p) for p in lm.model.parameters())


def test_a_cached_decoding_step_runs_on_cuda(cuda_session):
    """The decoder's later steps (cached forward over the newest tokens), which the point above
    skips because its placeholder verdicts end every response after the first token."""
    from transformers import DynamicCache

    from landscape.core.generate import _prefill, _step
    from landscape.core.prompts import format_chat

    _, lm, _ = cuda_session
    texts = [format_chat(lm.tokenizer, p, "default", "{prompt}", "") for p in PROMPTS]
    tokens = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    cache = DynamicCache()
    mask, logits = _prefill(lm.model, tokens, lm.tokenizer.pad_token_id, CUDA, cache)
    ids = logits.argmax(-1)[:, None]
    mask = torch.cat([mask, mask.new_ones(len(tokens), 1)], dim=-1)
    logits = _step(lm.model, ids, mask, cache)
    assert _on_cuda(logits) and logits.shape == (len(tokens), lm.model.config.vocab_size)


class _Crossings(TorchDispatchMode):
    """Records every copy of a tensor from one device to another: (from, to, elements)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("device") is not None:
            if torch.device(kwargs["device"]) != args[0].device:
                self.seen.append((args[0].device.type, torch.device(kwargs["device"]).type, args[0].numel()))
        elif func is torch.ops.aten.copy_.default and args[0].device != args[1].device:
            self.seen.append((args[1].device.type, args[0].device.type, args[1].numel()))
        return func(*args, **kwargs)


@pytest.mark.parametrize("where", ["device", "host"])
def test_points_move_no_direction_between_devices(cuda_session, where):
    """After the first point (which computes each tensor's normalisation factor once), a point
    makes its noise on the GPU and copies nothing across devices, except, for a snapshot in host
    memory, θ₀'s tensors on their way in (perturb) and back (restore)."""
    from landscape.core.directions import Orthogonalized, RandomDirection
    from landscape.core.models import perturbable_parameters
    from landscape.core.perturb import Snapshot, perturbed

    _, lm, _ = cuda_session
    params = perturbable_parameters(lm.model)
    snapshot = Snapshot(params, where)
    assert all(_on_cuda(w) == (where == "device") for w in snapshot.weights.values())
    d1 = RandomDirection(snapshot.weights, 1, "filter", CUDA)
    dirs = [d1, Orthogonalized(RandomDirection(snapshot.weights, 2, "filter", CUDA), d1)]
    with perturbed(snapshot, dirs, [0.5, -0.25]):
        pass
    with _Crossings() as crossings, perturbed(snapshot, dirs, [0.25, 0.5]):
        assert all(_on_cuda(p) for p in params.values())
    if where == "device":
        assert crossings.seen == []
    else:
        assert {(a, b) for a, b, _ in crossings.seen} == {("cpu", "cuda")}
        assert sum(n for *_, n in crossings.seen) == 2 * sum(p.numel() for p in params.values())


@pytest.mark.parametrize("room", [True, False], ids=["held on the device", "read per point"])
def test_file_directions_cross_once_or_never_per_point(
    cuda_session, tiny_model, tiny_model_b, monkeypatch, room
):
    """Issue 22 §4: a file (or interpolation) direction is read once and held on the device when the
    plan has room for it, so a point copies nothing across; without room, each of its tensors
    crosses once a point (not twice: the Gram–Schmidt pass reuses the memo), and the plan line says
    which."""
    import landscape.core.memory
    from landscape.core.directions import StoredDirection

    session, lm, file_path = cuda_session
    lines = []
    session.log = lines.append
    spec = _scan(tiny_model, tiny_model_b, file_path, "random+file")
    stored = StoredDirection(file_path).names
    elements = sum(p.numel() for n, p in lm.model.named_parameters() if n in stored)
    real_plan, plans = landscape.core.memory.plan_memory, []
    monkeypatch.setattr(
        landscape.core.memory, "plan_memory", lambda b: plans.append(real_plan(b)) or plans[-1]
    )
    snapshot, dirs, _ = session.directions(spec)
    assert plans[-1].stored_on_device  # this machine's memory has room
    if not room:  # the snapshot and the workspace fit, a held copy of the file direction does not
        b = plans[-1].budget
        held = 4 * b.param_elements
        # (the session adds its snapshot of the same parameters back: it is reused)
        free = (plans[-1].device_bytes - held // 2 + b.decode_bytes) / 0.95 - b.param_bytes
        real = landscape.core.memory.free_memory
        monkeypatch.setattr(landscape.core.memory, "free_memory", lambda *a: (int(free), real(*a)[1]))
        snapshot, dirs, _ = session.directions(spec)
        assert not plans[-1].stored_on_device
    with perturbed(snapshot, dirs, [0.5, -0.25]):
        pass  # the first point: normalisation factors
    with _Crossings() as crossings, perturbed(snapshot, dirs, [0.25, 0.5]):
        pass
    if room:
        assert crossings.seen == []
        assert "read from their files once and held on the device (1 stored)" in lines[-1]
    else:
        assert {(a, b) for a, b, _ in crossings.seen} == {("cpu", "cuda")}
        assert sum(n for *_, n in crossings.seen) == elements  # each tensor once
        assert "read from their files once a point (each tensor copied to the device once)" in lines[-1]
