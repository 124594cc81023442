"""Directions and perturbation on tiny models: norms, orthogonality, bit-exact restore."""

from __future__ import annotations

import pytest
import torch

from landscape.core.directions import (
    Materialized,
    Orthogonalized,
    RandomDirection,
    cosine,
    dot,
    interpolation_direction,
    orthogonalize,
    random_direction,
)
from landscape.core.models import load_model, perturbable_parameters
from landscape.core.perturb import NonFiniteError, Snapshot, perturbed
from landscape.core.specs import ModelSpec


@pytest.fixture(scope="module")
def lm(tiny_model):
    return load_model(ModelSpec(source=str(tiny_model)))


def _weights(lm):
    return {n: p.detach().clone() for n, p in perturbable_parameters(lm.model).items()}


def test_perturbable_parameters_skip_norms_and_count_tied_once(lm):
    names = list(perturbable_parameters(lm.model))
    assert not any("norm" in n for n in names)
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names  # tied
    without = perturbable_parameters(lm.model, include_embeddings=False)
    assert "model.embed_tokens.weight" not in without


def test_layer_normalisation_matches_each_tensor_norm(lm):
    w = _weights(lm)
    d = random_direction(w, seed=3, norm="layer")
    for n in w:
        assert d[n].norm() == pytest.approx(float(w[n].norm()), rel=1e-5)


def test_filter_normalisation_matches_each_row(lm):
    w = _weights(lm)
    d = random_direction(w, seed=3, norm="filter")
    for n in w:
        assert torch.allclose(d[n].norm(dim=1), w[n].norm(dim=1), rtol=1e-4)


def test_no_normalisation_is_standard_normal(lm):
    w = _weights(lm)
    d = random_direction(w, seed=3, norm="none")
    flat = torch.cat([t.flatten() for t in d.values()])
    assert abs(float(flat.mean())) < 0.01 and float(flat.std()) == pytest.approx(1.0, abs=0.01)


def test_directions_are_regenerated_from_seed_and_name(lm):
    w = _weights(lm)
    a, b, c = (random_direction(w, s, "layer") for s in (1, 1, 2))
    assert all(torch.equal(a[n], b[n]) for n in w)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    lazy = RandomDirection(w, 1, "layer")
    assert all(torch.equal(lazy.tensor(n), a[n]) for n in w)


def test_gram_schmidt_orthogonalises_over_the_whole_model(lm):
    w = _weights(lm)
    d1, d2 = random_direction(w, 1, "layer"), random_direction(w, 2, "layer")
    d2o = orthogonalize(d2, d1)
    assert abs(cosine(d1, d2o)) < 1e-6
    lazy = Orthogonalized(RandomDirection(w, 2, "layer"), RandomDirection(w, 1, "layer"))
    assert lazy.cosine_before == pytest.approx(cosine(d1, d2), abs=1e-9)
    assert all(torch.allclose(lazy.tensor(n), d2o[n], atol=1e-6) for n in w)
    assert abs(dot(Materialized(lazy)._d, d1)) < 1e-3


@pytest.mark.parametrize(
    ("dtype", "where"), [("float32", "device"), ("bfloat16", "device"), ("bfloat16", "host")]
)
def test_perturb_then_restore_is_bit_exact(tiny_model, dtype, where):
    lm = load_model(ModelSpec(source=str(tiny_model), dtype=dtype))
    params = perturbable_parameters(lm.model)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    snap = Snapshot(params, where)
    dirs = [RandomDirection(snap.weights, 1, "layer"), RandomDirection(snap.weights, 2, "layer")]
    for coeffs in ([0.3, -0.7], [1e-3, 2.5], [0.1, 0.1]):
        with perturbed(snap, dirs, coeffs):
            changed = lm.model.model.layers[0].mlp.up_proj.weight
            assert not torch.equal(changed, before["model.layers.0.mlp.up_proj.weight"])
    for n, p in lm.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_restore_happens_on_error_and_on_non_finite(lm):
    params = perturbable_parameters(lm.model)
    before = {n: p.detach().clone() for n, p in params.items()}
    snap = Snapshot(params)
    d = [RandomDirection(snap.weights, 1, "layer")]
    with pytest.raises(RuntimeError):
        with perturbed(snap, d, [0.5]):
            raise RuntimeError("boom")
    with pytest.raises(NonFiniteError):
        with perturbed(snap, d, [1e39]):  # beyond float32 itself
            pass
    with pytest.raises(NonFiniteError, match="non-finite weights in"):
        with perturbed(snap, [RandomDirection(snap.weights, 1, "none")], [3e38]):  # 3e38·N(0,1) overflows
            pass
    assert all(torch.equal(p, before[n]) for n, p in params.items())


def test_perturbation_is_theta0_plus_alpha_d(lm):
    params = perturbable_parameters(lm.model)
    snap = Snapshot(params)
    d = RandomDirection(snap.weights, 5, "layer")
    with perturbed(snap, [d], [0.25]):
        for n, p in params.items():
            assert torch.allclose(p, snap.weights[n] + 0.25 * d.tensor(n), atol=1e-6)


def test_interpolation_direction_lands_on_target(tiny_model, tiny_model_b):
    a = load_model(ModelSpec(source=str(tiny_model)))
    b = load_model(ModelSpec(source=str(tiny_model_b)))
    ta, tb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    d = interpolation_direction(ta, tb)
    for n in ta:
        assert torch.allclose(ta[n] + d[n], tb[n], atol=1e-6)
    with pytest.raises(ValueError):
        interpolation_direction(ta, {k: v for k, v in tb.items() if "layers.1" not in k})


def _rel_dot(a, b) -> float:
    """|⟨a, b⟩| / (‖a‖‖b‖) over the whole model (a missing tensor is 0)."""
    return abs(dot(a, b)) / (dot(a, a) * dot(b, b)) ** 0.5


def _mixed_pair(lm, kind: str, tmp_path):
    """Two directions over different parameter sets: (d1, d2, lazy d1, lazy d2)."""
    from safetensors.torch import save_file

    from landscape.core.directions import StoredDirection

    named = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    g = torch.Generator().manual_seed(7)
    if kind == "interpolation-vs-random":
        # θ_b − θ₀ moves every tensor, norms and embeddings included; the random direction moves
        # the perturbable tensors only, without embeddings (as `include_embeddings: false` does).
        weights = {n: p.detach() for n, p in perturbable_parameters(lm.model, False).items()}
        d2 = random_direction(weights, 2, "layer")
        theta_b = {n: t + 0.05 * torch.randn(t.shape, generator=g) for n, t in named.items()}
        theta_b = {n: t + 0.3 * d2[n] if n in d2 else t for n, t in theta_b.items()}  # correlated
        d1 = interpolation_direction(named, theta_b)
        assert set(d2) < set(d1) and any("norm" in n for n in set(d1) - set(d2))
        lazy2 = RandomDirection(weights, 2, "layer")
    else:  # two file directions whose names partly overlap
        names = list(named)
        d1 = {n: torch.randn(named[n].shape, generator=g) for n in names[: 2 * len(names) // 3]}
        d2 = {n: torch.randn(named[n].shape, generator=g) for n in names[len(names) // 3 :]}
        d2 = {n: t + 0.5 * d1[n] if n in d1 else t for n, t in d2.items()}  # correlated
        save_file({n: t.contiguous() for n, t in d2.items()}, str(tmp_path / "d2.safetensors"))
        lazy2 = StoredDirection(tmp_path / "d2.safetensors")
        assert set(d1) - set(d2) and set(d2) - set(d1) and set(d1) & set(d2)
    save_file({n: t.contiguous() for n, t in d1.items()}, str(tmp_path / "d1.safetensors"))
    return d1, d2, StoredDirection(tmp_path / "d1.safetensors"), lazy2


@pytest.mark.parametrize("kind", ["interpolation-vs-random", "files-partly-overlapping"])
def test_gram_schmidt_over_different_parameter_sets_is_orthogonal_over_the_whole_model(lm, kind, tmp_path):
    """d₂ moves only its own tensors, and ⟨d₂⊥, d₁⟩ = 0 with a missing tensor counted as 0."""
    d1, d2, lazy1, lazy2 = _mixed_pair(lm, kind, tmp_path)
    assert _rel_dot(d1, d2) > 1e-3  # there is something to remove
    d2o = orthogonalize(d2, d1)
    assert set(d2o) == set(d2) and all(torch.equal(d2o[n], d2[n]) for n in set(d2) - set(d1))
    assert _rel_dot(d1, d2o) < 1e-6
    lazy = Orthogonalized(lazy2, lazy1)
    assert lazy.cosine_before == pytest.approx(cosine(d1, d2), rel=1e-9)
    assert all(torch.allclose(lazy.tensor(n), d2o[n], atol=1e-6) for n in d2)
    assert _rel_dot(lazy1, lazy) < 1e-6  # dot reads lazy directions too
    assert abs(Orthogonalized(lazy, lazy1).cosine_before) < 1e-6  # what a scan records as cosine_after


@pytest.mark.parametrize("kind", ["interpolation-vs-random", "files-partly-overlapping"])
def test_orthogonalized_one_pass_sums_are_dots(lm, kind, tmp_path):
    """Orthogonalized fuses dot's sums into one pass; the coefficient is dot's to the bit and the
    cosine dot's up to summation order (it adds against's own tensors last)."""
    _, _, lazy1, lazy2 = _mixed_pair(lm, kind, tmp_path)
    lazy = Orthogonalized(lazy2, lazy1)
    against_on_base = {n: lazy1.tensor(n) for n in lazy2.names if n in set(lazy1.names)}
    assert lazy.coef == dot(lazy2, lazy1) / dot(against_on_base, against_on_base)
    assert lazy.cosine_before == pytest.approx(cosine(lazy2, lazy1), rel=1e-12)
    # cosine_after from the same sums = the second pass scans used to make (to rounding)
    two_pass = Orthogonalized(lazy, lazy1).cosine_before
    assert abs(lazy.cosine_after - two_pass) < 1e-7 and abs(lazy.cosine_before) > 1e-3


def test_cosine_after_from_the_first_pass_equals_a_second_pass(lm):
    w = _weights(lm)
    lazy = Orthogonalized(RandomDirection(w, 2, "filter"), RandomDirection(w, 1, "filter"))
    two_pass = Orthogonalized(lazy, RandomDirection(w, 1, "filter")).cosine_before
    assert abs(lazy.cosine_after - two_pass) < 1e-7


def test_scan_records_whole_model_cosines_for_interpolation_and_random(tiny_model, tiny_model_b, store):
    """Session.directions on an interpolation (all tensors) and a random direction without
    embeddings: the recorded cosine after Gram–Schmidt is 0 over the whole model."""
    from landscape.core.specs import AxisSpec, DirectionSpec, Runtime, ScanSpec
    from landscape.engine.scan import Session

    spec = ScanSpec(
        model=ModelSpec(source=str(tiny_model)),
        directions=(
            DirectionSpec(kind="interpolation", target=ModelSpec(source=str(tiny_model_b))),
            DirectionSpec(seed=2, include_embeddings=False),
        ),
        alphas=AxisSpec(start=0, stop=1, num=2),
        betas=AxisSpec(start=-0.5, stop=0.5, num=2),
    )
    _, (d1, d2), info = Session(store, Runtime(progress=False), log=str).directions(spec)
    assert abs(info["cosine_before"]) > 1e-5  # random directions are nearly orthogonal already
    assert abs(info["cosine_after"]) < 1e-6 and _rel_dot(d1, d2) < 1e-6
