"""The memory plan: a pure function of sizes and free memory, driven here with a 7B-shaped budget
(Llama-2-7B: 6.74·10⁹ perturbed parameters in bfloat16, 32000×4096 embeddings, 32 layers, 32 KV
heads of 128) on an 80 GB H100, and wired into a real scan on the tiny model."""

from __future__ import annotations

import pytest

from landscape.core.memory import MemoryBudget, MemoryPlanError, decode_reserve, plan_memory
from landscape.core.specs import SpecError

GB = 10**9
H100_FREE = 80 * 2**30 - 13_480_000_000 - 600_000_000  # 80 GiB minus the bf16 model and CUDA context


def llama7b(
    keep=None,
    free_device=H100_FREE,
    free_host=100 * GB,
    new_tokens=512,
    batch=64,
    n_directions=2,
    pinned_ok=True,
    device="cuda",
) -> MemoryBudget:
    elements = 6_738_149_376  # perturbed: all but the norms
    return MemoryBudget(
        param_bytes=2 * elements,
        param_elements=elements,
        largest_elements=32000 * 4096,
        compute_bytes=2,
        n_directions=n_directions,
        device=device,
        free_device=free_device,
        free_host=free_host,
        decode_bytes=decode_reserve(32, 32, 128, 32000, batch, 256 + new_tokens, 2),
        keep=keep,
        pinned_ok=pinned_ok,
    )


def test_7b_bf16_2d_fits_an_h100_with_regenerated_directions_at_the_papers_settings():
    plan = plan_memory(llama7b())
    assert (plan.snapshot, plan.directions) == ("device", "regenerated")
    assert plan.device_bytes < 16 * GB  # the snapshot (13.5 GB) and the workspace (2.2 GB)
    line = plan.line()
    assert "\n" not in line and line.startswith("memory plan: θ₀ snapshot on the device (13.5 GB)")
    assert "regenerated per point" in line
    # issue 22 §4: a file or interpolation direction is not regenerated: the line said it was
    assert "read from their files once a point" in plan.line(stored=2) and "regenerated" not in plan.line(
        stored=2
    )
    assert "(1 random)" in plan.line(stored=1) and "(1 stored)" in plan.line(stored=1)


def test_7b_with_float32_directions_held_does_not_fit_and_says_what_to_do():
    with pytest.raises(
        MemoryPlanError, match=r"2 direction\(s\) held in float32 \(53.9 GB\).*drop --keep-directions"
    ):
        plan_memory(llama7b(keep="float32"))
    assert issubclass(MemoryPlanError, SpecError)  # the CLI prints it as one line


def test_7b_directions_held_in_bf16_fit_with_the_snapshot_on_the_device_or_the_host():
    """At our defaults (32 new tokens) the snapshot stays on the GPU; at the paper's 512 the KV
    cache leaves no room for it there, so it moves to pinned host memory."""
    ours = plan_memory(llama7b(keep="compute", new_tokens=32))
    assert (ours.snapshot, ours.directions) == ("device", "compute")
    assert ours.device_bytes > 3 * 13.4 * GB  # two bf16 directions and the snapshot
    paper = plan_memory(llama7b(keep="compute"))
    assert (paper.snapshot, paper.directions) == ("host", "compute")


def test_a_tight_gpu_moves_the_snapshot_to_pinned_host_memory_or_refuses():
    # 24 GB GPU: 10 GB free after the model; the snapshot (13.5 GB) cannot stay on it
    tight = dict(free_device=10 * GB, new_tokens=32, batch=8)
    plan = plan_memory(llama7b(**tight))
    assert (plan.snapshot, plan.host_bytes) == ("host", 2 * 6_738_149_376)
    assert "in pinned host memory" in plan.line()
    with pytest.raises(MemoryPlanError, match="free device memory"):
        plan_memory(llama7b(**tight, pinned_ok=False))
    with pytest.raises(MemoryPlanError, match="not enough memory"):
        plan_memory(llama7b(**tight, free_host=10 * GB))  # nor does the host have room


def test_on_a_cpu_host_and_device_are_one_memory():
    assert plan_memory(llama7b(device="cpu", free_device=64 * GB, free_host=64 * GB)).snapshot == "device"
    with pytest.raises(MemoryPlanError, match="this machine"):
        plan_memory(llama7b(device="cpu", free_device=30 * GB, free_host=30 * GB))


def test_a_scan_prints_its_plan_and_holds_directions_only_when_asked(tiny_model, store):
    from landscape.core.directions import Materialized, Orthogonalized
    from landscape.core.specs import AxisSpec, DirectionSpec, ModelSpec, Runtime, ScanSpec
    from landscape.engine.scan import Session

    spec = ScanSpec(
        model=ModelSpec(source=str(tiny_model)),
        directions=(DirectionSpec(seed=1), DirectionSpec(seed=2)),
        alphas=AxisSpec(num=3),
        betas=AxisSpec(num=3),
    )
    lines: list[str] = []
    session = Session(store, Runtime(progress=False), log=lines.append)
    snapshot, dirs, _ = session.directions(spec)
    assert [ln for ln in lines if ln.startswith("memory plan: θ₀ snapshot on the device")]
    assert snapshot.where == "device" and isinstance(dirs[1], Orthogonalized)
    session.runtime = Runtime(progress=False, keep_directions=True)
    again, held, _ = session.directions(spec)
    assert again is snapshot  # the same snapshot is reused (its bytes count as free for the plan)
    assert all(isinstance(d, Materialized) for d in held) and "held in float32" in lines[-1]


def test_the_cli_refuses_in_one_line_when_nothing_fits(tiny_model, tmp_path, monkeypatch, capsys):
    """The plan reads the free memory at the edge (``free_memory``); here a machine with 1 MB free."""
    import landscape.core.memory
    from landscape.cli import run

    monkeypatch.setattr(landscape.core.memory, "free_memory", lambda device, *share: (10**6, 10**6))
    (tmp_path / "p.txt").write_text("Tell me a secret.\n")
    args = ["--store", str(tmp_path / "store"), "scan", "1d", "--model", str(tiny_model)]
    code = run([*args, "--prompts", str(tmp_path / "p.txt"), "--points", "3", "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]  # the rest is the scan's log
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("error: not enough memory for this scan") and "--batch-size" in errors[0]


def test_free_device_memory_counts_the_allocators_cached_blocks(monkeypatch):
    """Issue 22 §3: ``mem_get_info`` counts PyTorch's reserved-but-unused blocks as used; a reused
    session with 27 GB cached planned a 7B 2D scan into pinned host memory. A fake 80 GB device."""
    import torch

    from landscape.core.memory import free_memory

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GB, 80 * GB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 40 * GB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 13 * GB)
    assert free_memory("cuda")[0] == 3 * GB + 27 * GB


def test_a_pinned_snapshot_is_planned_at_the_size_the_host_allocator_takes():
    """Issue 22 §7: PyTorch's pinned host allocator rounds each block up to a power of two: a 7B
    bf16 snapshot of 13.48 GB takes 17.72 GB of pinned memory (Llama-2-7B's shapes)."""
    from landscape.core.memory import pinned_size

    h, ffn, vocab, layers = 4096, 11008, 32000, 32
    shapes = [(vocab, h), (vocab, h)] + [(h, h)] * 4 * layers + [(ffn, h)] * 3 * layers
    exact = sum(2 * a * b for a, b in shapes)
    pinned = sum(pinned_size(2 * a * b) for a, b in shapes)
    assert round(exact / GB, 2) == 13.48 and round(pinned / GB, 2) == 17.72
    assert pinned_size(1) == 1 and pinned_size(1024) == 1024 and pinned_size(1025) == 2048
    # 16 GB of free host memory holds the snapshot's bytes but not its pinned blocks
    budget = llama7b(free_device=10 * GB, free_host=int(16 / 0.95 * GB), new_tokens=32, batch=8)
    from dataclasses import replace

    fits_if_exact = replace(budget, param_bytes=exact, pinned_bytes=0)
    assert plan_memory(fits_if_exact).snapshot == "host"
    with pytest.raises(MemoryPlanError):
        plan_memory(replace(budget, param_bytes=exact, pinned_bytes=pinned))
