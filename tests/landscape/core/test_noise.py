"""The counter-based Gaussian generator behind random directions (``gaussian_like``).

Its definition is device-free: pure-Python integers (``_reference``) give the same numbers the
tensor code gives, so any device whose int64 ops wrap like these (CPU and CUDA both do) draws the
same direction. Statistical tolerances are derived from the sample size ``n``.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from landscape.core.directions import gaussian_like, tensor_key
from landscape.core.specs import RANDOM_GENERATOR, DirectionSpec, ScanSpec

M64 = (1 << 64) - 1


def _splitmix64(state: int) -> int:
    """splitmix64's output for a state, in unbounded Python integers (Steele et al. 2014)."""
    z = state & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _reference(name: str, n: int, seed: int) -> list[float]:
    """``gaussian_like``'s definition in float64 Python: pair p hashes key + (p+1)·γ."""
    key = int.from_bytes(hashlib.sha256(f"{RANDOM_GENERATOR}:{seed}:{name}".encode()).digest()[:8], "little")
    pairs = (n + 1) // 2
    out = [0.0] * (2 * pairs)
    for p in range(pairs):
        z = _splitmix64(key + (p + 1) * 0x9E3779B97F4A7C15)
        top, low = z >> 40, z & 0xFFFFFFFF  # read as signed 24- and 32-bit integers
        u = ((top - (1 << 24) if top >> 23 else top) + 2**23 + 1) / 2**24  # (0, 1]
        angle = (low - (1 << 32) if low >> 31 else low) * 2 * math.pi / 2**32  # [−π, π)
        r = math.sqrt(-2 * math.log(u))
        out[p], out[pairs + p] = r * math.cos(angle), r * math.sin(angle)
    return out[:n]


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_matches_the_device_free_definition(n):
    """The int64 tensor ops (wrapping products, masked shifts) are exactly splitmix64."""
    got = gaussian_like("model.layers.0.mlp.up_proj.weight", (n,), seed=3)
    ref = torch.tensor(_reference("model.layers.0.mlp.up_proj.weight", n, seed=3), dtype=torch.float64)
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_key_is_the_signed_sha256_of_generator_seed_and_name():
    k = tensor_key(5, "w")
    digest = hashlib.sha256(f"{RANDOM_GENERATOR}:5:w".encode()).digest()[:8]
    assert k % (1 << 64) == int.from_bytes(digest, "little") and -(1 << 63) <= k < (1 << 63)


def test_deterministic_and_chunking_never_changes_a_number():
    shape = (37, 29)  # odd element count: the last pair's sine is dropped
    ref = gaussian_like("w", shape, seed=1)
    assert ref.shape == shape and ref.dtype == torch.float32
    assert torch.equal(ref, gaussian_like("w", shape, seed=1))
    for chunk in (1, 5, 64, 536, 1 << 20):
        assert torch.equal(gaussian_like("w", shape, seed=1, chunk_pairs=chunk), ref), chunk
    assert gaussian_like("w", (), seed=1).shape == () and gaussian_like("w", (0, 3), seed=1).numel() == 0


def _ks_statistic(x: torch.Tensor) -> float:
    """Kolmogorov–Smirnov distance between the sample and N(0, 1)."""
    xs = x.double().sort().values
    n = len(xs)
    cdf = torch.special.ndtr(xs)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max())


N = 1 << 18


@pytest.mark.parametrize(("name", "seed"), [("a", 0), ("model.embed_tokens.weight", 7)])
def test_standard_normal(name, seed):
    x = gaussian_like(name, (N,), seed).double()
    sd_mean, sd_var = 1 / math.sqrt(N), math.sqrt(2 / N)
    assert abs(float(x.mean())) < 5 * sd_mean
    assert abs(float(x.var()) - 1) < 5 * sd_var
    assert abs(float((x**4).mean()) - 3) < 5 * math.sqrt(96 / N)  # kurtosis (Var x⁴ = 96)
    assert _ks_statistic(x) < 1.95 / math.sqrt(N)  # KS critical value at α = 0.001
    # neighbours, and the cosine and sine halves of the same pairs, are uncorrelated
    for a, b in ((x[:-1], x[1:]), (x[: N // 2], x[N // 2 :])):
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 5 / math.sqrt(len(a))


def test_no_correlation_between_names_or_seeds():
    base = gaussian_like("w", (N,), 0).double()
    others = [gaussian_like("v", (N,), 0), gaussian_like("w", (N,), 1), gaussian_like("w", (N,), 1000)]
    for o in others:
        assert abs(float(torch.corrcoef(torch.stack([base, o.double()]))[0, 1])) < 5 / math.sqrt(N)
    # a shape change of the same tensor is a new draw, not a prefix (the layout depends on n)
    assert not torch.equal(gaussian_like("w", (N - 2,), 0), base[: N - 2].float())


def test_generator_version_is_in_every_random_directions_identity_and_no_device_is():
    """Old directions (torch's CPU generator) are different directions: their keys must not be
    reused. The device is not in the identity: the same spec reads the same results everywhere."""
    spec = ScanSpec(directions=(DirectionSpec(seed=1), DirectionSpec(seed=2)), betas=ScanSpec().alphas)
    ident = spec.identity("fp", "pp", (None, None))
    assert [d["generator"] for d in ident["directions"]] == [RANDOM_GENERATOR] * 2
    assert "device" not in str(ident)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cpu_and_cuda_draw_the_same_direction():
    cpu = gaussian_like("model.embed_tokens.weight", (4099, 77), 3)
    gpu = gaussian_like("model.embed_tokens.weight", (4099, 77), 3, "cuda")
    assert torch.allclose(cpu, gpu.cpu(), rtol=1e-5, atol=1e-5)
