"""The attacker's settings a study varies: a sweep's grid (``SweepSpec``) and a worst-case search's
space (``SearchSpec``). Frozen, validated pydantic specs like ``study.specs`` (which uses them);
each field a sweep or search may vary is named once in ``SWEEP_FIELDS`` (where it goes) and
``SEARCH_TYPES`` (its type). No torch here.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from landscape.core.specs import Spec, SpecError

# What a sweep may vary: its name in a study's ``sweep.over`` → (the spec it changes, the field).
SWEEP_FIELDS: dict[str, tuple[str, str]] = {
    "learning_rate": ("finetune", "learning_rate"),
    "epochs": ("finetune", "epochs"),
    "lora_r": ("finetune", "lora.r"),
    "method": ("finetune", "method"),
    "n": ("attack", "n"),
    "harmful_fraction": ("attack", "harmful_fraction"),
}


class SweepSpec(Spec):
    """The attacker's fine-tuning settings crossed with the study's runs (its defences).

    Every cell is one run fine-tuned with the study's settings except the swept fields: the same
    cached fine-tune, defence and evaluation a study written by hand with those settings would make
    (same keys), so a resumed sweep computes only what is missing and cells shared with the study
    (or another sweep) are computed once."""

    over: tuple[tuple[str, tuple[float | int | str, ...]], ...] = Field(
        ...,
        min_length=1,
        description="Fields and their values, crossed: {learning_rate: [1.0e-4, 1.0e-3], epochs: [1, 3]}. "
        "learning_rate, epochs, lora_r (the LoRA rank, alpha/r kept), method (lora or full) change the "
        "fine-tuning; n (training samples) and harmful_fraction (harmful attacks only) the attack's data.",
    )
    runs: tuple[str, ...] | None = Field(
        None, min_length=1, description="The study's runs to sweep (each its defences); None: every run."
    )
    visage: bool = Field(False, description="Also measure VISAGE on every cell (the study's evaluation).")
    seeds: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        description="Run every cell once per seed s, shifted as the study's own seeds are (fine-tuning, "
        "the attack's sample, each defence's seed); a cell then reports its mean over seeds and the "
        "sweep's claims use the paired bootstrap over prompts and seeds. None: seed 0 only (the "
        "sweep's key is unchanged).",
    )

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise SpecError("sweep seeds must be distinct")
        return seeds

    @field_validator("over", mode="before")
    @classmethod
    def _mapping(cls, over):
        if isinstance(over, dict):
            return tuple((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in over.items())
        return over

    @field_validator("over")
    @classmethod
    def _fields(cls, over):
        seen = set()
        for name, values in over:
            if name not in SWEEP_FIELDS:
                raise SpecError(f"sweep field {name!r} is unknown; choose from {', '.join(SWEEP_FIELDS)}")
            if name in seen:
                raise SpecError(f"sweep field {name!r} appears twice")
            seen.add(name)
            if not values:
                raise SpecError(f"sweep field {name!r} has no values")
            if len(set(values)) != len(values):
                raise SpecError(f"sweep field {name!r} repeats a value")
        return over

    def cells(self) -> list[dict]:
        """Every combination of the swept values, in the order written (the first field slowest)."""
        from itertools import product

        names = [name for name, _ in self.over]
        return [dict(zip(names, combo, strict=True)) for combo in product(*(v for _, v in self.over))]


# The type of each field a search may vary (``method`` takes choices only).
SEARCH_TYPES: dict[str, type] = {
    "learning_rate": float,
    "epochs": int,
    "lora_r": int,
    "method": str,
    "n": int,
    "harmful_fraction": float,
}


class SearchRange(Spec):
    """One field's range in a worst-case search: [low, high] (log-uniform with ``log``), or choices."""

    low: float | None = None
    high: float | None = None
    log: bool = Field(False, description="Sample log-uniformly (learning rates).")
    choices: tuple[float | int | str, ...] | None = Field(
        None, description="A finite set instead of a range."
    )

    @model_validator(mode="after")
    def _check(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise SpecError("give a range (low, high) or choices, not both")
            if not self.choices:
                raise SpecError("choices is empty")
            return self
        if self.low is None or self.high is None:
            raise SpecError("a range needs low and high (or give choices)")
        if not self.low < self.high:
            raise SpecError(f"the range [{self.low:g}, {self.high:g}] is empty (low must be below high)")
        if self.log and self.low <= 0:
            raise SpecError("a log range needs low > 0")
        return self


class SearchSpec(Spec):
    """A worst-case attack search: per run (defence), the attacker's settings that maximise the
    harmful score, by seeded TPE (Optuna) within a budget of trials, optionally keeping task
    accuracy at or above a floor (the stealthy attacker). Every trial is a sweep cell (the same
    cached run a hand-written study makes); see ``study.search``."""

    space: tuple[tuple[str, SearchRange], ...] = Field(
        ...,
        min_length=1,
        description="Fields and ranges: {learning_rate: {low: 1.0e-5, high: 1.0e-2, log: true}, "
        "epochs: {low: 1, high: 4}, lora_r: {choices: [2, 8]}}; the fields of a sweep.",
    )
    trials: int = Field(8, description="The budget: trials per run.")
    seed: int = Field(0, description="The sampler's seed; trial t is proposed with seed·10007 + t.")
    startup: int | None = Field(
        None,
        ge=1,
        description="Random trials before TPE models the history (default: a third of the budget, at least 2).",
    )
    batch: int = Field(
        1,
        ge=1,
        le=64,
        description="Trials proposed together from the same history; with --workers a batch's trials "
        "run at once on Ray (part of the search's identity, so results do not depend on workers).",
    )
    task_floor: float | None = Field(
        None, ge=0, le=100, description="Keep only attacks whose task accuracy is at least this (percent)."
    )
    runs: tuple[str, ...] | None = Field(
        None, min_length=1, description="The runs to attack; None: every run."
    )

    @field_validator("space", mode="before")
    @classmethod
    def _mapping(cls, space):
        from pydantic import ValidationError

        from landscape.core.specs import error_line

        items = space.items() if isinstance(space, dict) else space
        out = []
        for name, rng in items:  # each range checked here, so its error names its field
            try:
                out.append((name, rng if isinstance(rng, SearchRange) else SearchRange.model_validate(rng)))
            except ValidationError as exc:
                raise SpecError(f"search field {name!r}: {error_line(exc)}") from None
        return tuple(out)

    @field_validator("space")
    @classmethod
    def _fields(cls, space):
        names = [name for name, _ in space]
        for name, rng in space:
            if name not in SEARCH_TYPES:
                raise SpecError(f"search field {name!r} is unknown; choose from {', '.join(SEARCH_TYPES)}")
            kind = SEARCH_TYPES[name]
            if rng.choices is None and kind is str:
                raise SpecError(f"search field {name!r} takes choices, not a range")
            if (
                rng.choices is None
                and kind is int
                and not (float(rng.low).is_integer() and float(rng.high).is_integer())
            ):
                raise SpecError(f"search field {name!r} takes whole numbers")
        if len(set(names)) != len(names):
            raise SpecError("a search field appears twice")
        return space

    @field_validator("trials")
    @classmethod
    def _budget(cls, trials: int) -> int:
        if trials < 1:
            raise SpecError(f"search trials is the budget and must be at least 1, not {trials}")
        if trials > 10_000:
            raise SpecError("search trials above 10000 are refused")
        return trials

    @property
    def startup_trials(self) -> int:
        return self.startup if self.startup is not None else max(2, self.trials // 3)

    def corners(self) -> list[dict]:
        """Each field at each end of its range (or each choice), the others at their low end: the
        values a study checks before any trial so a bad range is an error, not a failed trial."""

        def ends(name, rng):
            if rng.choices is not None:
                return list(rng.choices)
            cast = SEARCH_TYPES[name]
            return [cast(rng.low), cast(rng.high)]

        base = {name: ends(name, rng)[0] for name, rng in self.space}
        return [dict(base, **{name: v}) for name, rng in self.space for v in ends(name, rng)]
