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

from typing import Annotated, Union

from pydantic import Field

from landscape.training.defenses import antidote, mixing, security  # noqa: F401  (fills the registry)
from landscape.training.defenses.base import (  # noqa: F401  (the package's API)
    DEFENSES,
    Defended,
    Defense,
    DefenseContext,
    FrozenAdapter,
    register,
)

DefenseSpec = Annotated[
    Union[tuple(d.spec for d in DEFENSES.values())],  # noqa: UP007  (built from the registry)
    Field(discriminator="name"),
]
