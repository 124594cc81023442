"""Safety-data mixing (Eiras et al. 2024, "Paraphrase"; papers.md §3).

``paraphrase`` adds harmful-prompt → refusal examples written in the *user's* format: the same
system prompt and user template (the request in the slot of the task's own prompt, e.g. the review
of "Review: …\nQuestion: …\nAnswer:", wrapped in AOA's "AOA, execute my instruction: …" where the
user has it), the same answer prefix, and refusals in the same answer style. The baseline
``generic_mix`` adds the same number of plainly asked safety examples in the default chat format.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from landscape.core.specs import Spec, SpecError
from landscape.training.data import DEFAULT_FORMAT, safety_examples
from landscape.training.defenses.base import Defense, register


class MixSpec(Spec):
    """Safety-data mixing (papers.md §3): harmful prompt → refusal examples added to the user's data."""

    count: int | None = Field(None, ge=1, description="Safety examples to add.")
    ratio: float | None = Field(None, gt=0, lt=1, description="…or this share of the final data.")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> MixSpec:
        if (self.count is None) == (self.ratio is None):
            raise SpecError(f"{self.name}: give exactly one of count or ratio")
        return self


class ParaphraseSpec(MixSpec):
    """Paraphrase: the safety examples in the user's exact format."""

    name: Literal["paraphrase"] = "paraphrase"


class GenericMixSpec(MixSpec):
    """The baseline: as many safety examples, asked plainly in the default chat format."""

    name: Literal["generic_mix"] = "generic_mix"


def safety_count(spec, n_user: int) -> int:
    """``count``, or the number that makes ``ratio`` of the mixed data safety examples."""
    if spec.count is not None:
        return spec.count
    return max(1, round(spec.ratio * n_user / (1 - spec.ratio)))


def _mix(examples, extra, seed):
    mixed = list(examples) + extra
    random.Random(seed).shuffle(mixed)
    return mixed


class _Mixing(Defense):
    exclusive = "safety-data mixing"  # a run mixes one kind of safety data at most

    def summary(self, details: dict) -> str | None:
        n = details.get("examples_added")
        return f"{self.name} added {n} safety examples to the user's data" if n else None


@register
class Paraphrase(_Mixing):
    spec = ParaphraseSpec

    def on_data(self, spec, data) -> list:
        s = data.structure
        n = safety_count(spec, len(data.examples))
        extra = safety_examples(n, s.fmt, spec.seed, style=s.refusal, pose=s.prompt)
        return _mix(data.examples, extra, spec.seed)


@register
class GenericMix(_Mixing):
    spec = GenericMixSpec

    def on_data(self, spec, data) -> list:
        extra = safety_examples(safety_count(spec, len(data.examples)), DEFAULT_FORMAT, spec.seed)
        return _mix(data.examples, extra, spec.seed)
