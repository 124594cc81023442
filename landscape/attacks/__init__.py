"""Attack registry: each attack builds the user's fine-tuning data (papers.md §2–3).

An attack is a factory ``fn(spec: AttackSpec) -> AttackData`` registered with ``@attack(name)``;
importing this package fills ``ATTACKS`` (the modules are light: no torch at import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from landscape.datasets import Example
from landscape.runspecs import FormatSpec


@dataclass(frozen=True)
class Structure:
    """How the task is posed and answered in one data structure (Benign, AOA, AutoIF, …).

    ``candidate(label)`` is the opening of an answer up to and including the label: task accuracy
    compares the model's likelihood of each label's candidate after the prompt.
    """

    name: str
    fmt: FormatSpec
    prompt: Callable[[str, int], str]  # (review, variant) -> the request; Paraphrase fills its slot too
    answer: Callable[[str, str, int], str]  # (review, label, variant) -> the answer after the prefix
    candidate: Callable[[str], str]
    refusal: Callable[[str], str]  # a refusal rewritten in this structure's answer style


@dataclass(frozen=True)
class AttackData:
    examples: list[Example]
    structure: Structure  # the user's format: harmful score and task accuracy are measured in it


ATTACKS: dict[str, Callable] = {}


def attack(name: str):
    def register(fn):
        ATTACKS[name] = fn
        return fn

    return register


def build_attack(spec, store=None, runtime=None) -> AttackData:
    return ATTACKS[spec.name](spec, store, runtime)


from landscape.attacks import harmful, structural  # noqa: E402,F401  (fills the registry)
