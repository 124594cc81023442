"""Security vectors (Zhou et al. 2023; papers.md §4): make harmful behaviour unlearnable.

``train_security_vector`` fits a LoRA adapter θ_s on a small harmful set with the backbone frozen,
so that with θ_s active the model already answers harmfully (its harmful loss is near zero);
optionally a KL term on benign prompts keeps θ_s from changing benign behaviour. During the user's
fine-tuning (``finetune(..., security=record)``) θ_s is active and frozen, so harmful samples give
almost no gradient to the task adapter; at inference only the task adapter is loaded. The stored
fine-tuning record carries the harmful loss with θ_s on vs off.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cache import Store
from landscape.core.artifacts import cached_artifact
from landscape.core.models import load_model, model_fingerprint, save_adapter
from landscape.core.prompts import builtin_benign, format_chat
from landscape.core.specs import FormatSpec, ModelSpec, Runtime, Spec, spec_hash
from landscape.training.data import examples_fingerprint, harmful_examples, render_all
from landscape.training.defenses.base import Defense, DefenseContext, register
from landscape.training.finetune import check_targets, lora_config, train_loop
from landscape.training.results import FrozenAdapter
from landscape.training.specs import LoraSpec


class SecurityVectorSpec(Spec):
    """Security vectors (papers.md §4): a frozen, active harmful LoRA during the user's training."""

    name: Literal["security_vectors"] = "security_vectors"
    lora: LoraSpec = LoraSpec()
    epochs: int = Field(3, ge=1, le=100)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    n_harmful: int = Field(30, ge=1, description="Harmful samples the vector is trained on.")
    kl_weight: float = Field(0.0, ge=0, description="KL to the backbone on benign prompts.")
    seed: int = 0


def _kl_term(model, tokenizer, weight: float, device):
    """KL(backbone ‖ backbone + θ_s) of next-token distributions on benign prompts, per step."""
    import torch

    prompts = [format_chat(tokenizer, p) for p in builtin_benign("train")]
    enc = tokenizer(prompts, return_tensors="pt", padding=True)  # left padding: last token aligned
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)

    def extra(step: int):
        rows = [(step * 4 + k) % len(prompts) for k in range(4)]
        with torch.no_grad(), model.disable_adapter():
            ref = model(input_ids=ids[rows], attention_mask=mask[rows]).logits[:, -8:].float()
        cur = model(input_ids=ids[rows], attention_mask=mask[rows]).logits[:, -8:].float()
        kl = torch.nn.functional.kl_div(
            cur.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="none"
        )
        return weight * kl.sum(-1).mean()

    return extra


def train_security_vector(
    theta0: ModelSpec, spec: SecurityVectorSpec, fmt: FormatSpec, store: Store, runtime: Runtime, log=print
) -> dict:
    """The security adapter for ``theta0`` (trained once, then served from the store)."""
    from peft import get_peft_model

    examples = harmful_examples("realign", spec.n_harmful, fmt, spec.seed)
    data_fp = examples_fingerprint(examples)
    identity = {
        "base": model_fingerprint(theta0, store),
        "dtype": theta0.dtype,
        "spec": spec.model_dump(mode="json"),
    }
    key = spec_hash("security-vector", dict(identity, data=data_fp))

    def build(staging) -> dict:
        lm = load_model(theta0, runtime.device, store)
        check_targets(lm.model, spec.lora.targets)
        import torch

        torch.manual_seed(spec.seed)
        model = get_peft_model(lm.model, lora_config(spec.lora))
        log(f"training the security vector on {len(examples)} harmful samples (backbone frozen)")
        extra = _kl_term(model, lm.tokenizer, spec.kl_weight, runtime.device) if spec.kl_weight else None
        losses = train_loop(
            model,
            render_all(lm.tokenizer, examples),
            epochs=spec.epochs,
            lr=spec.learning_rate,
            batch_size=8,
            max_length=256,
            seed=spec.seed,
            pad_id=lm.tokenizer.pad_token_id,
            extra_loss=extra,
            desc="security vector",
            progress=runtime.progress,
        )
        save_adapter(model, staging)
        return {"spec": spec.model_dump(mode="json"), **losses}

    art = cached_artifact(store, "security", key, build)
    return dict(art.record, key=key, path=str(art.path))


@register
class SecurityVectors(Defense):
    """Training-time: the security adapter is active and frozen while the task adapter learns."""

    spec = SecurityVectorSpec

    def on_training(self, spec: SecurityVectorSpec, ctx: DefenseContext) -> FrozenAdapter:
        rec = train_security_vector(ctx.theta0, spec, ctx.fmt, ctx.store, ctx.runtime, ctx.log)
        return FrozenAdapter(rec["key"], rec["path"], {"adapter_key": rec["key"]})

    def summary(self, details: dict) -> str | None:
        d = details.get("frozen_adapter_diagnostic")
        if not d:
            return None
        return (
            f"harmful loss with the security vector on {d['harmful_loss_vector_on']:.3f}, "
            f"off {d['harmful_loss_vector_off']:.3f}"
        )
