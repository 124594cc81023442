"""Issue 22 §1: bf16 weights cannot hold a step smaller than half their ulp. The check measures it
on a sample and refuses such a grid in one line; float32 is never refused."""

from __future__ import annotations

import pytest
import torch

from landscape.core.directions import Materialized, RandomDirection
from landscape.core.perturb import (
    STEP_ERROR_MAX,
    Snapshot,
    StepResolutionError,
    check_step_resolution,
    step_error,
)
from landscape.core.specs import NonFiniteError


def _layer(dtype=torch.bfloat16, n=2048):
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter((torch.randn(n, n, generator=g) * 0.02).to(dtype))
    return {"layer.weight": w}


def test_step_error_matches_what_perturbed_applies_on_a_2048_square_bf16_weight():
    """The issue's measurement, reproduced: α = 0.001 leaves ≈78% of elements unchanged (relative
    error ≈0.8); 0.01 ≈0.17; 0.05 ≈0.03. The sampled figure equals the full tensor's."""
    params = _layer()
    snap = Snapshot(params)
    d = RandomDirection(snap.weights, seed=0, norm="layer")
    full = {}
    for c in (0.001, 0.01, 0.05):
        w0 = snap.weights["layer.weight"].float()
        want = c * d.tensor("layer.weight")
        got = (w0 + want).to(torch.bfloat16).float() - w0
        full[c] = float((got - want).norm() / want.norm())
        err, same = step_error(snap, d, c, torch.bfloat16)
        assert abs(err - full[c]) < 0.02 * max(full[c], 0.1), (c, err, full[c])
    assert 0.7 < step_error(snap, d, 0.001, torch.bfloat16)[1] < 0.85
    assert 0.7 < full[0.001] < 0.9 and 0.1 < full[0.01] < 0.25 and full[0.05] < 0.05


def test_a_bf16_grid_with_too_small_a_step_is_refused_and_float32_never():
    snap = Snapshot(_layer())
    d = RandomDirection(snap.weights, seed=0, norm="layer")
    try:
        check_step_resolution(snap, [d], [0.001], torch.bfloat16)
    except StepResolutionError as exc:
        msg = str(exc)
    else:
        raise AssertionError("not refused")
    assert "\n" not in msg and "--dtype float32" in msg and "0.001" in msg
    ((c, err, same),) = check_step_resolution(snap, [d], [0.05], torch.bfloat16)
    assert c == 0.05 and err < STEP_ERROR_MAX
    snap32 = Snapshot(_layer(torch.float32))
    d32 = RandomDirection(snap32.weights, seed=0, norm="layer")
    assert check_step_resolution(snap32, [d32], [1e-6], torch.float32) == []


def test_a_bf16_scan_on_a_tiny_model_refuses_a_small_step_before_any_point(
    tmp_path, tiny_model, prompts_file
):
    from cache import Store
    from landscape.core.specs import AxisSpec, GenerationSpec, ModelSpec, PromptSpec, Runtime, ScanSpec
    from landscape.engine.scan import scan_grid

    def spec(half):
        return ScanSpec(
            model=ModelSpec(source=str(tiny_model), dtype="bfloat16"),
            alphas=AxisSpec(start=-half, stop=half, num=3),
            prompts=PromptSpec(source=str(prompts_file), limit=1),
            generation=GenerationSpec(max_new_tokens=2),
        )

    with Store(tmp_path / "s") as store:
        try:
            scan_grid(spec(0.0005), store, Runtime(progress=False), log=lambda m: None)
        except StepResolutionError as exc:
            assert "--dtype float32" in str(exc)
        else:
            raise AssertionError("a bf16 step of 0.0005 was scanned")
        assert store.list_scans() == []  # nothing written
        res = scan_grid(spec(0.5), store, Runtime(progress=False, batch_size=7), log=lambda m: None)
        assert res.record["step_check"][0]["coeff"] == 0.5
        assert res.record["step_check"][0]["relative_error"] < STEP_ERROR_MAX
        # issue 22 §8: bf16 tokens can depend on the batch; each point says which it was decoded at
        assert store.point(res.key, 0, 0)["provenance"]["batch_size"] == 1  # min(7, one prompt)


def test_a_point_checks_finiteness_with_one_sync_not_two_per_tensor(monkeypatch):
    """Issue 22 §6: two ``.item()`` per tensor (582 syncs a 7B point) and two float64 copies; now
    the finiteness of every tensor is checked on the device and read once per point."""
    from landscape.core.perturb import perturbed

    model = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(6)]).to(torch.bfloat16)
    params = dict(model.named_parameters())
    snap = Snapshot(params)
    d = RandomDirection(snap.weights, seed=0, norm="layer")
    reads = []
    for attr in ("item", "__bool__", "tolist"):
        real = getattr(torch.Tensor, attr)

        def counted(self, *a, _real=real, _attr=attr, **k):
            reads.append(_attr)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, counted)
    with perturbed(snap, [d], [0.5]):
        pass
    assert len(params) == 12 and len(reads) == 1, reads
    big = Materialized(d)
    big._d["3.weight"] = torch.full_like(big._d["3.weight"], 1e5)
    with pytest.raises(NonFiniteError, match=r"non-finite weights in 3.weight"):
        with perturbed(snap, [big], [1e34]):  # 1e39 in float32: inf
            pass
    with pytest.raises(NonFiniteError, match=r"overflow torch.bfloat16 in 3.weight"):
        with perturbed(snap, [big], [3.4e33]):  # 3.4e38: finite in float32, beyond bf16
            pass
    assert all(torch.equal(p, snap.weights[n]) for n, p in params.items())  # restored


def test_file_directions_are_read_once_a_point(tmp_path):
    """Issue 22 §4: a 2D point over two file directions read d₁ twice (once for itself, once to
    orthogonalise d₂): every read a host→device copy. Now each tensor of each file is read once."""
    from safetensors.torch import save_file

    from landscape.core.directions import Orthogonalized, StoredDirection
    from landscape.core.perturb import perturbed

    model = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(3)])
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(0)
    for k in (1, 2):
        save_file(
            {n: torch.randn(p.shape, generator=g) for n, p in params.items()}, tmp_path / f"d{k}.safetensors"
        )
    d1, d2 = (StoredDirection(tmp_path / f"d{k}.safetensors") for k in (1, 2))
    d2 = Orthogonalized(d2, d1)
    reads = []
    for d in (d1, d2.base):
        real = d._file

        class Counting:
            def __init__(self, f, tag):
                self.f, self.tag = f, tag

            def get_tensor(self, name):
                reads.append((self.tag, name))
                return self.f.get_tensor(name)

            def keys(self):
                return self.f.keys()

        d._file = Counting(real, "d1" if d is d1 else "d2")
    snap = Snapshot(params)
    with perturbed(snap, [d1, d2], [0.1, 0.2]):
        pass
    assert sorted(reads) == sorted([(t, n) for t in ("d1", "d2") for n in params]), reads


def test_auto_range_refuses_a_probe_bf16_cannot_hold(tmp_path, tiny_model, prompts_file):
    """The rest of issue 22 §1: auto range bisects a narrow basin down to start / 2**steps; a probe
    there was measured on weights that had not moved. Each probe is now checked before it is
    measured (the in-process search; the Ray search checks in its actors the same way)."""
    from cache import Store
    from landscape.core.specs import AxisSpec, GenerationSpec, ModelSpec, PromptSpec, Runtime, ScanSpec
    from landscape.engine.autorange import AutoRangeSpec, auto_range

    spec = ScanSpec(
        model=ModelSpec(source=str(tiny_model), dtype="bfloat16"),
        alphas=AxisSpec(start=-0.5, stop=0.5, num=3),
        prompts=PromptSpec(source=str(prompts_file), limit=1),
        generation=GenerationSpec(max_new_tokens=2),
    )
    lines = []
    with Store(tmp_path / "s") as store:
        with pytest.raises(
            StepResolutionError, match=r"^auto range: bfloat16 weights cannot hold the step α = 0.0005"
        ):
            auto_range(spec, store, Runtime(progress=False), AutoRangeSpec(start=0.0005), log=lines.append)
        assert not [ln for ln in lines if "probe direction" in ln]  # refused before it was measured
        res = auto_range(
            spec, store, Runtime(progress=False), AutoRangeSpec(start=0.4, bisect_steps=1), log=str
        )
        assert res.edges and res.probes > 0  # steps bf16 can hold are probed as before
