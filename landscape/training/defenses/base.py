"""The defence protocol and registry; the package's ``__init__`` imports every method so the registry is full.

Methods import from here (never from the package), so registering one closes no import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from cache import Store
from landscape.core.specs import FormatSpec, ModelSpec, Runtime, Spec
from landscape.training.results import FrozenAdapter


@dataclass(frozen=True)
class DefenseContext:
    """What a training-time or post-hoc defence may use: the run's θ₀ and format, store and runtime."""

    theta0: ModelSpec
    fmt: FormatSpec
    store: Store
    runtime: Runtime
    log: Callable[[str], None] = print


@dataclass(frozen=True)
class Defended:
    """A post-hoc defence's output: the defended model (a store artifact) and what it did."""

    model: ModelSpec
    key: str
    details: dict = field(default_factory=dict)


class Defense:
    """Base of every defence: each hook defaults to "this defence does nothing here"."""

    name: ClassVar[str]
    spec: ClassVar[type[Spec]]
    exclusive: ClassVar[str | None] = None  # defences sharing this label cannot be combined in a run

    def on_data(self, spec, data) -> list:
        """The fine-tuning examples after this defence (``data`` is the attack's ``AttackData``)."""
        return list(data.examples)

    def on_training(self, spec, ctx: DefenseContext) -> FrozenAdapter | None:
        return None

    def on_model(self, spec, model: ModelSpec, ctx: DefenseContext) -> Defended | None:
        return None

    def summary(self, details: dict) -> str | None:
        """One line for the study's notes from the details its hooks recorded (None: nothing to say)."""
        return None


DEFENSES: dict[str, Defense] = {}


def register(cls: type[Defense]) -> type[Defense]:
    """Class decorator: registers one instance under the spec's ``name`` literal."""
    name = cls.spec.model_fields["name"].default
    if name in DEFENSES:
        raise ValueError(f"defence {name!r} is registered twice")
    cls.name = name
    DEFENSES[name] = cls()
    return cls
