"""Directions and perturbation on tiny models: norms, orthogonality, bit-exact restore."""

from __future__ import annotations

import pytest
import torch

from landscape.directions import (
    Materialized,
    Orthogonalized,
    RandomDirection,
    cosine,
    dot,
    interpolation_direction,
    orthogonalize,
    random_direction,
)
from landscape.models import load_model, perturbable_parameters
from landscape.perturb import NonFiniteError, Snapshot, perturbed
from landscape.specs import ModelSpec


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


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_perturb_then_restore_is_bit_exact(tiny_model, dtype):
    lm = load_model(ModelSpec(source=str(tiny_model), dtype=dtype))
    params = perturbable_parameters(lm.model)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    snap = Snapshot(params)
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
        with perturbed(snap, d, [1e39]):
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
