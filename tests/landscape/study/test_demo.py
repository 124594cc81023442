"""The demo's VISAGE report: mean ± std over K directions on one centred grid (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from cache import ScanGrid
from landscape.core.grid import symmetric_axis
from landscape.core.specs import AxisSpec, Runtime
from landscape.core.stats import VisageInterval
from landscape.core.uncertainty import visage_interval
from landscape.core.visage import summarize
from landscape.engine.family import family_specs
from landscape.engine.scan import ScanResult
from landscape.study.demo import demo_specs, visage_table
from landscape.training.results import AlignResult


def _result(spec, asr, key: str) -> ScanResult:
    alphas = np.asarray(spec.alphas.values())
    betas = None if spec.betas is None else np.asarray(spec.betas.values())
    grid = ScanGrid(key=key, alphas=alphas, betas=betas, values={"asr_pct": np.asarray(asr, dtype=float)})
    return ScanResult(key, spec, grid, summarize(alphas, betas, asr, kind=spec.kind), 0, {})


def test_directions_share_one_grid_centred_on_theta0():
    one, _ = demo_specs(32, 9, 5, 12, "float32")
    start, stop, num = symmetric_axis(0.2, 9)
    one = one.model_copy(update={"alphas": AxisSpec(start=start, stop=stop, num=num)})
    specs = family_specs(one, 3)
    assert [s.directions[0].seed for s in specs] == [0, 1, 2]
    assert all(s.alphas == one.alphas and s.prompts == one.prompts for s in specs)  # never fewer prompts
    alphas = np.asarray(one.alphas.values())
    assert len(alphas) % 2 == 1 and abs(alphas[len(alphas) // 2]) < 1e-12


def test_visage_table_reports_mean_and_spread_over_directions():
    one, two = demo_specs(32, 9, 3, 12, "float32")
    start, stop, num = symmetric_axis(0.2, 9)
    one = one.model_copy(update={"alphas": AxisSpec(start=start, stop=stop, num=num)})
    two = two.model_copy(
        update={
            "alphas": AxisSpec(start=-0.2, stop=0.2, num=3),
            "betas": AxisSpec(start=-0.2, stop=0.2, num=3),
        }
    )
    curves = [
        [100, 100, 50, 0, 0, 0, 50, 100, 100],
        [100, 100, 100, 20, 0, 20, 100, 100, 100],
        [100, 60, 30, 0, 0, 0, 0, 40, 100],
    ]
    one_d = [
        _result(s, c, f"{k}" * 12) for k, (s, c) in enumerate(zip(family_specs(one, 3), curves, strict=True))
    ]
    two_d = _result(two, np.array([[100, 100, 100], [100, 0, 100], [100, 100, 100]]), "f" * 12)
    ci = VisageInterval(60.0, 55.5, 71.25, 1000, 0)
    table = visage_table(one_d, two_d, ci_1d=ci).splitlines()
    paper = [r.summary["visage"] for r in one_d]
    assert "95% CI" in table[0] and "[55.50, 71.25]" in table[1] and "—" in table[2]
    ref = [r.summary["visage_reference"] for r in one_d]
    assert table[1].startswith("1D, 3 directions")
    assert f"{np.mean(paper):.2f} ± {np.std(paper, ddof=1):.2f}" in table[1]
    assert f"{np.mean(ref):.2f} ± {np.std(ref, ddof=1):.2f}" in table[1]
    assert "— (2D scan)" in table[2] and "100.00" in table[2]


def test_visage_table_shows_why_the_reference_is_missing():
    one, two = demo_specs(32, 4, 3, 12, "float32")  # an even grid has no centre point
    one = one.model_copy(update={"alphas": AxisSpec(start=-0.2, stop=0.2, num=4)})
    two = two.model_copy(
        update={
            "alphas": AxisSpec(start=-0.2, stop=0.2, num=3),
            "betas": AxisSpec(start=-0.2, stop=0.2, num=3),
        }
    )
    one_d = [_result(s, [100, 0, 0, 100], f"{k}" * 12) for k, s in enumerate(family_specs(one, 3))]
    two_d = _result(two, np.zeros((3, 3)), "f" * 12)
    row = visage_table(one_d, two_d).splitlines()[1]
    assert "— (grid not centred on θ₀)" in row and "100.00 ± 0.00" in row
    assert pytest.approx(100.0) == one_d[0].summary["visage"]


def test_demo_runs_end_to_end_on_a_tiny_model(tmp_path, tiny_model, monkeypatch, capsys):
    """The whole pipeline (alignment and the before/after table stubbed): K directions on one grid,
    then the closing table with mean ± std."""
    from cache import Store
    from landscape.study import demo

    specs = demo.demo_specs

    def tiny_specs(*args):
        one, two = specs(*args)
        model = one.model.model_copy(update={"source": str(tiny_model)})
        short = one.generation.model_copy(update={"max_new_tokens": 4})
        return (
            one.model_copy(update={"model": model, "generation": short}),
            two.model_copy(update={"model": model, "generation": short}),
        )

    monkeypatch.setattr(demo, "demo_specs", tiny_specs)
    stored = AlignResult("0" * 64, "unused", cached=True, elapsed_s=0.0, epoch_losses=[], record={})
    monkeypatch.setattr(demo, "align_model", lambda *a: stored)
    monkeypatch.setattr(demo, "evaluate_models", lambda *a, **k: "(stubbed)")
    lines = []
    with Store(tmp_path / "store") as store:
        demo.run_demo(
            store,
            Runtime(progress=False),
            lambda m: None,
            lines.append,
            n_prompts=4,
            points=5,
            grid2d=3,
            prompts2d=4,
            directions=3,
        )
    out = "\n".join(lines)
    assert not capsys.readouterr().out  # everything went through ``out``
    row = next(line for line in out.splitlines() if line.startswith("1D, 3 directions"))
    assert row.count("±") == 2 or "— (" in row  # paper ± and reference ± (or why it is undefined)
    assert "seed 0" in out and "seed 2" in out
    with Store(tmp_path / "store") as store:  # the 1D interval resamples prompts across the 3 directions
        keys = [k.removeprefix("scan:") for k in store.keys("scan:")]
        one_d = [k for k in keys if store.scan_record(k)["kind"] == "1d"]
        ci = visage_interval(store, one_d)
    assert f"[{ci.lo:.2f}, {ci.hi:.2f}]" in row and "B = 1000, seed 0" in out
