"""Defences (papers.md §2–4): one protocol, one registration per method, as peft does per method.

A defence is a ``Defense`` subclass that overrides the hooks its method uses; the others are the
identity, so the study walks every run's defences through the same three hooks and never names one:

- ``on_data(spec, data)``: rewrite the user's fine-tuning data (Paraphrase safety mixing and its
  generic baseline);
- ``on_training(spec, ctx)``: change how the data is learned, by returning a ``FrozenAdapter`` that
  is active and frozen during the user's fine-tuning (security vectors);
- ``on_model(spec, model, ctx)``: edit the fine-tuned model (Antidote), returning ``Defended``.

``@register`` binds (name, spec class, implementation) once: the spec class's ``name`` literal is the
registry key, and ``DefenseSpec`` (the discriminated union a study's YAML is parsed with) is built
from the registry. ``summary(details)`` turns what a hook recorded into the study's one-line note.
Importing this package fills ``DEFENSES`` (no torch at import: heavy imports live in the hooks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Union

from pydantic import Field

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


from landscape.training.defenses import antidote, mixing, security  # noqa: E402,F401  (fills the registry)

DefenseSpec = Annotated[
    Union[tuple(d.spec for d in DEFENSES.values())],  # noqa: UP007  (built from the registry)
    Field(discriminator="name"),
]
