"""Defence registry (papers.md §2–4). Each defence acts at one phase of the protocol:

- ``data``: rewrites the user's fine-tuning data (Paraphrase safety mixing and its generic baseline);
- ``training``: changes how the data is learned (security vectors);
- ``post``: edits the fine-tuned model (Antidote).

``@defense(name, phase)`` registers a factory; importing this package fills ``DEFENSES`` (no torch at
import: heavy imports live inside the functions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field


@dataclass(frozen=True)
class Defense:
    name: str
    phase: str  # data | training | post
    apply: Callable


DEFENSES: dict[str, Defense] = {}


def defense(name: str, phase: str):
    def register(fn):
        DEFENSES[name] = Defense(name, phase, fn)
        return fn

    return register


from landscape.training.defenses import antidote, mixing, security  # noqa: E402,F401  (fills the registry)
from landscape.training.defenses.antidote import AntidoteSpec  # noqa: E402
from landscape.training.defenses.mixing import MixSpec  # noqa: E402
from landscape.training.defenses.security import SecurityVectorSpec  # noqa: E402

DefenseSpec = Annotated[AntidoteSpec | MixSpec | SecurityVectorSpec, Field(discriminator="name")]
