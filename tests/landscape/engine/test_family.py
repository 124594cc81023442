"""A family of scans: K random directions of one spec, optionally auto-ranged each, one Session."""

from __future__ import annotations

import numpy as np

from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    second_seed,
)
from landscape.engine.autorange import AutoRangeSpec
from landscape.engine.family import family_specs, scan_family

RT = Runtime(progress=False)


def _spec(model, prompts_file, **kw) -> ScanSpec:
    base = dict(
        model=ModelSpec(source=str(model)),
        prompts=PromptSpec(source=str(prompts_file), limit=2),
        generation=GenerationSpec(max_new_tokens=4),
        alphas=AxisSpec(start=-0.5, stop=0.5, num=3),
    )
    return ScanSpec(**(base | kw))


def test_members_move_only_random_seeds(tiny_model):
    two = ScanSpec(
        directions=(DirectionSpec(seed=3), DirectionSpec(seed=second_seed(3))),
        betas=AxisSpec(num=3),
    )
    assert [[d.seed for d in s.directions] for s in family_specs(two, 3)] == [
        [3, 1003],
        [4, 1004],
        [5, 1005],
    ]
    interp = ScanSpec(
        directions=(
            DirectionSpec(kind="interpolation", norm="none", target=ModelSpec(source=str(tiny_model))),
        )
    )
    assert family_specs(interp, 2) == [interp, interp]


def test_scan_family_scans_k_directions_on_one_grid(store, tiny_model, prompts_file):
    spec = _spec(tiny_model, prompts_file)
    results = scan_family(spec, 2, store, RT, log=lambda m: None)
    assert [r.spec.directions[0].seed for r in results] == [0, 1]
    assert len({r.key for r in results}) == 2
    assert all(r.computed == 3 and r.spec.alphas == spec.alphas for r in results)
    again = scan_family(spec, 2, store, RT, log=lambda m: None)
    assert [r.key for r in again] == [r.key for r in results] and not any(r.computed for r in again)


def test_scan_family_auto_ranges_each_direction(store, tiny_model, prompts_file):
    spec = _spec(tiny_model, prompts_file, alphas=AxisSpec(num=3))
    lines = []
    cfg = AutoRangeSpec(bisect_steps=1, max_coef=0.2, probe_prompts=1)
    results = scan_family(spec, 2, store, RT, cfg, log=lines.append)
    assert sum(line.startswith("auto range for direction set") for line in lines) == 2
    assert sum("basin edges" in line for line in lines) == 2
    for r in results:
        alphas = np.asarray(r.spec.alphas.values())
        assert len(alphas) % 2 == 1 and np.allclose(alphas, -alphas[::-1])  # centred on θ₀
