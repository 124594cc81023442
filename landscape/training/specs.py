"""Specs of the training layer shared by several methods: LoRA and supervised fine-tuning.

Frozen, validated pydantic models hashed into cache keys like ``core.specs``; every field is
documented. Each attack's and defence's own spec lives beside its code (``attacks/``,
``defenses/``). No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from landscape.core.specs import Spec


class LoraSpec(Spec):
    """A peft LoRA adapter."""

    r: int = Field(8, ge=1, le=512, description="Rank.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator (scale = alpha / r).")
    targets: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj"), min_length=1, description="Module name suffixes."
    )
    dropout: float = Field(0.0, ge=0, lt=1)


class FinetuneSpec(Spec):
    """Supervised fine-tuning, loss on response tokens only (the HF Trainer refuses GGUF models)."""

    method: Literal["lora", "full"] = "lora"
    lora: LoraSpec = LoraSpec()
    epochs: int = Field(3, ge=1, le=100)
    learning_rate: float = Field(3e-4, gt=0, lt=1)
    batch_size: int = Field(8, ge=1, le=1024)
    schedule: Literal["constant", "linear", "cosine"] = Field("linear", description="LR decay.")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(256, ge=16, le=8192, description="Truncate examples to this many tokens.")
    loss_average: Literal["token", "example"] = Field(
        "token",
        description="'token': mean over all answer tokens of a batch (the usual SFT loss; long answers "
        "weigh more); 'example': mean over examples of each one's token mean, so a one-word task "
        "answer counts as much as a long harmful one.",
    )
    seed: int = 0

    def key_dump(self) -> dict:
        """The fields that enter cache keys; ``loss_average`` (added later) only when not 'token',
        so older fine-tune and study keys stay valid."""
        data = self.model_dump(mode="json")
        if data["loss_average"] == "token":
            data.pop("loss_average")
        return data
