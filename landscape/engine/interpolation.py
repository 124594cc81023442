"""Interpolation directions d = θ_b − θ_a between two models of one architecture, stored.

Unlike a random direction, θ_b − θ_a cannot be regenerated from a seed, so it is computed once
(loading θ_b beside θ_a for the moment), written as safetensors into the store under the key of
(fingerprint a, fingerprint b, dtype), and read back tensor by tensor onto the model's device
(the key has no device: a direction computed on the CPU serves a GPU run). All parameters take part,
norm weights included, so that α = 1 lands exactly on θ_b.
"""

from __future__ import annotations

from cache import Store
from landscape.core.artifacts import cached_artifact
from landscape.core.directions import StoredDirection, interpolation_direction
from landscape.core.models import ModelError, load_model, model_fingerprint
from landscape.core.specs import ModelSpec, spec_hash


def interpolation_key(fp_a: str, fp_b: str, dtype: str) -> str:
    return spec_hash("interpolation", {"a": fp_a, "b": fp_b, "dtype": dtype})


def interpolation_direction_for(lm, target: ModelSpec, store: Store, log=print) -> StoredDirection:
    """θ_target − θ_lm as a stored direction, computing and saving it on first use."""
    from safetensors.torch import save_file

    target = target.model_copy(update={"dtype": lm.spec.dtype})
    fp_b = model_fingerprint(target, store)
    key = interpolation_key(lm.fingerprint, fp_b, lm.spec.dtype)

    def build(staging) -> dict:
        log(f"computing interpolation direction {lm.spec.source} -> {target.source}")
        other = load_model(target, lm.device, store)
        theta_a = dict(lm.model.named_parameters())
        theta_b = dict(other.model.named_parameters())
        try:
            d = interpolation_direction(theta_a, theta_b)
        except ValueError as exc:
            raise ModelError(f"cannot interpolate between these models: {exc}") from None
        del other, theta_b
        save_file({n: t.contiguous().cpu() for n, t in d.items()}, str(staging / "direction.safetensors"))
        return {"a": lm.fingerprint, "b": fp_b}

    art = cached_artifact(store, "directions", key, build)
    return StoredDirection(art.path / "direction.safetensors", next(lm.model.parameters()).device)
