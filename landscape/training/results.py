"""Typed results of the training layer, instead of dicts read by string keys.

Each wraps the record stored with the artifact (``record``, JSON, unchanged on disk so older stores
keep working) and exposes the fields callers use as attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FrozenAdapter:
    """A LoRA adapter kept active and frozen while the user's task adapter trains (security vectors).

    ``key`` enters the fine-tune's cache key; ``details`` is what the study records about it."""

    key: str
    path: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FinetuneResult:
    """One fine-tuning run: where its per-epoch checkpoints are and how training went."""

    key: str
    path: str
    checkpoints: tuple[str, ...]  # one directory per epoch; the last is the final model
    method: str  # lora | full
    examples: int
    kinds: dict
    epoch_losses: list
    elapsed_s: float
    frozen_adapter_diagnostic: dict  # harmful loss with the frozen adapter on vs off ({} without one)
    record: dict

    @classmethod
    def from_record(cls, record: dict, key: str, path) -> FinetuneResult:
        return cls(
            key=key,
            path=str(path),
            checkpoints=tuple(str(path) + "/" + c for c in record["checkpoint_dirs"]),
            method=record["spec"]["method"],
            examples=record["examples"],
            kinds=record["kinds"],
            epoch_losses=record["epoch_losses"],
            elapsed_s=record["elapsed_s"],
            frozen_adapter_diagnostic=record.get("security_diagnostic") or {},
            record=record,
        )


@dataclass(frozen=True)
class AlignResult:
    """The built-in alignment: the aligned model's directory and whether it came from the store."""

    key: str
    path: str
    cached: bool
    elapsed_s: float
    epoch_losses: list
    record: dict

    @classmethod
    def from_artifact(cls, art) -> AlignResult:
        r = art.record
        return cls(art.key, str(art.path), art.cached, r["elapsed_s"], r["epoch_losses"], r)
