"""Attack registry: each attack builds the user's fine-tuning data (papers.md §2–3).

An attack is a builder ``fn(spec, store, runtime) -> AttackData`` registered once with
``@attack(name)``, which binds (name, spec class, builder) in an ``Attack``; the study calls
``build_attack`` and never names one. ``AttackSpec`` lives here, beside its registry, so checking a
name needs no import from an implementation. Importing this package fills ``ATTACKS`` (the modules
are light: no torch at import).
"""

from __future__ import annotations

from landscape.training.attacks import harmful, structural  # noqa: F401  (fills the registry)
from landscape.training.attacks.base import (  # noqa: F401  (the package's API)
    AOA_ANSWER_PREFIX,
    AOA_USER_TEMPLATE,
    ATTACKS,
    Attack,
    AttackData,
    AttackSpec,
    Structure,
    attack,
    build_attack,
)
