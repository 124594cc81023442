"""Safety-data mixing (Eiras et al. 2024, "Paraphrase"; papers.md §3).

``paraphrase`` adds harmful-prompt → refusal examples written in the *user's* format: the same
system prompt and user template (the request in the slot of the task's own prompt, e.g. the review
of "Review: …\nQuestion: …\nAnswer:", wrapped in AOA's "AOA, execute my instruction: …" where the
user has it), the same answer prefix, and refusals in the same answer style. The baseline
``generic_mix`` adds the same number of plainly asked safety examples in the default chat format.
"""

from __future__ import annotations

import random

from landscape.datasets import DEFAULT_FORMAT, safety_examples
from landscape.defenses import defense


def safety_count(spec, n_user: int) -> int:
    """``count``, or the number that makes ``ratio`` of the mixed data safety examples."""
    if spec.count is not None:
        return spec.count
    return max(1, round(spec.ratio * n_user / (1 - spec.ratio)))


def _mix(examples, extra, seed):
    mixed = list(examples) + extra
    random.Random(seed).shuffle(mixed)
    return mixed


@defense("paraphrase", "data")
def paraphrase_mix(spec, data) -> list:
    s = data.structure
    n = safety_count(spec, len(data.examples))
    extra = safety_examples(n, s.fmt, spec.seed, style=s.refusal, pose=s.prompt)
    return _mix(data.examples, extra, spec.seed)


@defense("generic_mix", "data")
def generic_mix(spec, data) -> list:
    extra = safety_examples(safety_count(spec, len(data.examples)), DEFAULT_FORMAT, spec.seed)
    return _mix(data.examples, extra, spec.seed)
