"""Specs of a study: its runs, what is measured on every model, and trajectory planes.

Like ``core.specs`` these are frozen, validated pydantic models whose identity is hashed into cache
keys; every field is documented and option sets are ``Literal``. A run's attack and defences use the
specs registered beside their code (``training.attacks``, ``training.defenses``). No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from landscape.core.specs import (
    AxisSpec,
    CapabilitySpec,
    DirectionSpec,
    FormatSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    ScanSpec,
    Spec,
    SpecError,
    point_spec,
)
from landscape.study.attacker import SEARCH_TYPES, SWEEP_FIELDS, SearchRange, SearchSpec, SweepSpec  # noqa: F401
from landscape.training.attacks import AttackSpec
from landscape.training.defenses import DEFENSES, DefenseSpec
from landscape.training.defenses.base import Defense
from landscape.training.specs import FinetuneSpec


class EvalSpec(Spec):
    """What is measured on every model of a study."""

    harmful_limit: int = Field(40, ge=1, description="Held-out harmful prompts (builtin:harmful).")
    max_new_tokens: int = Field(24, ge=1, le=1024)
    judge: str | JudgeSpec = Field(
        "keywords",
        description="The judge of every evaluation and VISAGE scan: a registered name ('keywords', "
        "'prefix'), or a mapping for a model judge, e.g. {name: guard, model: /models/llama-guard} "
        "(see JudgeSpec); the judge model's content fingerprint enters every key.",
    )
    benign_limit: int = Field(20, ge=0, description="Benign prompts for the over-refusal rate.")
    task_limit: int = Field(120, ge=1, description="Task test items for accuracy.")
    default_format_asr: bool = Field(
        True,
        description="Also measure ASR in the default chat format when a run uses another. False: "
        "such a run is measured in its own format only (harmful score, over-refusal and coherent ASR "
        "in that format; 'ASR (default fmt)' is left empty), one scan fewer per run.",
    )
    visage_directions: int = Field(1, ge=0, le=16, description="K random 1D directions for VISAGE.")
    visage_range: float = Field(0.2, gt=0, description="1D scans over [-r, r].")
    visage_points: int = Field(5, ge=3, le=101)
    visage_prompts: int = Field(12, ge=1)

    @field_validator("judge")
    @classmethod
    def _judge(cls, judge: str | JudgeSpec) -> str | JudgeSpec:
        if isinstance(judge, str):
            JudgeSpec(name=judge)  # one-line error for an unknown name or a model judge given by name
        return judge

    @property
    def judge_spec(self) -> JudgeSpec:
        return self.judge if isinstance(self.judge, JudgeSpec) else JudgeSpec(name=self.judge)

    def point_spec(
        self, model: ModelSpec, limit: int, capability: bool, fmt: FormatSpec | None = None
    ) -> ScanSpec:
        """One unperturbed point of ``model``: ASR on ``limit`` harmful prompts (and over-refusal),
        asked in ``fmt`` (system prompt, user template, prefilled answer prefix; default chat if None)."""
        return point_spec(
            model,
            PromptSpec(limit=limit),
            self.max_new_tokens,
            self.judge_spec,
            fmt,
            CapabilitySpec(benign_limit=self.benign_limit, nll=False)
            if capability and self.benign_limit
            else None,
        )

    def visage_specs(self, model: ModelSpec) -> list[ScanSpec]:
        """The K random 1D scans around ``model`` that VISAGE averages."""
        return [
            ScanSpec(
                model=model,
                directions=(DirectionSpec(seed=k),),
                alphas=AxisSpec(start=-self.visage_range, stop=self.visage_range, num=self.visage_points),
                prompts=PromptSpec(limit=self.visage_prompts),
                generation=GenerationSpec(max_new_tokens=self.max_new_tokens),
                judge=self.judge_spec,
            )
            for k in range(self.visage_directions)
        ]


class TrajectorySpec(Spec):
    """Per-epoch checkpoints of some runs drawn over a 2D landscape of one plane."""

    runs: tuple[str, ...] = Field(..., min_length=1, description="Run names (LoRA or full FT).")
    plane: Literal["interpolation", "pca"] = Field(
        "interpolation",
        description="'interpolation': aligned → first run's final model × an orthogonal random "
        "direction (Figure 1B); 'pca': top-2 principal directions of the checkpoints (Li et al.).",
    )
    grid: int = Field(5, ge=3, le=41, description="Grid side.")
    margin: float = Field(0.25, ge=0, description="Grid extends this share beyond the path.")
    prompts: int = Field(12, ge=1, description="Harmful prompts per grid point.")
    seed: int = 0


class RunSpec(Spec):
    """One model of a study: an attack's data, fine-tuned, with optional defences."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.+-]{1,40}$")
    attack: AttackSpec = AttackSpec()
    defenses: tuple[DefenseSpec, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> RunSpec:
        kinds = [d.name for d in self.defenses]
        if len(set(kinds)) != len(kinds):
            raise SpecError(f"run {self.name}: a defence appears twice")
        groups: dict[str, list[str]] = {}
        for k in kinds:
            if DEFENSES[k].exclusive:
                groups.setdefault(DEFENSES[k].exclusive, []).append(k)
        for label, names in groups.items():
            if len(names) > 1:
                raise SpecError(f"run {self.name}: choose one {label} defence, not {' and '.join(names)}")
        return self

    def shifted(self, s: int) -> RunSpec:
        """This run with its attack's and every defence's seed moved by ``s``."""
        attack = self.attack.model_copy(update={"seed": self.attack.seed + s})
        defenses = tuple(
            d.model_copy(update={"seed": d.seed + s}) if hasattr(d, "seed") else d for d in self.defenses
        )
        return self.model_copy(update={"attack": attack, "defenses": defenses})


class StudySpec(Spec):
    """align → attacks → defences → evaluation → landscapes, as one resumable, cached study."""

    name: str = "study"
    base: ModelSpec = ModelSpec()
    align: bool = Field(True, description="Align the base model first (built-in alignment).")
    finetune: FinetuneSpec = FinetuneSpec()
    runs: tuple[RunSpec, ...] = Field(..., min_length=1)
    evaluation: EvalSpec = EvalSpec()
    trajectories: tuple[TrajectorySpec, ...] = ()
    seeds: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        description="Repeat every run once per seed s, with every stochastic stage's seed shifted by s: "
        "fine-tuning (data order, LoRA init), the attack's data sample and each defence's seed (safety "
        "mix, pruning mask ablation, security vector). s = 0 is the study as written (its fine-tunes "
        "are shared); the table reports mean ± std over seeds. None (the default) runs once and leaves "
        "the study's key as it was.",
    )
    sweep: SweepSpec | None = Field(
        None,
        description="Cross fine-tuning settings with the runs (worst-case attacks): every cell an "
        "ordinary cached run at seed 0 (or at each of sweep.seeds), measured for harmful score and task "
        "accuracy (see SweepSpec).",
    )
    search: SearchSpec | None = Field(
        None,
        description="A worst-case attack search per run: seeded TPE over the attacker's settings "
        "within a budget of trials, each an ordinary cached run at seed 0 (see SearchSpec).",
    )

    @model_validator(mode="after")
    def _check(self) -> StudySpec:
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            raise SpecError("run names must be unique")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds must be distinct")
        for t in self.trajectories:
            for name in t.runs:
                if name not in names:
                    raise SpecError(f"trajectory names unknown run {name!r}")
        for what, block, settings in (
            ("sweep", self.sweep, self.sweep and self.sweep.cells()),
            ("search", self.search, self.search and self.search.corners()),
        ):
            if block is None:
                continue
            for name in block.runs or ():
                if name not in names:
                    raise SpecError(f"{what} names unknown run {name!r}")
            for values in settings:  # every cell a valid study: one-line errors before any work
                for run in self._chosen_runs(block):
                    self.cell(run, values, what)
        return self

    def _chosen_runs(self, block) -> tuple[RunSpec, ...]:
        """The runs a sweep or search names in its ``runs`` (every run when None; none without one)."""
        if block is None:
            return ()
        return tuple(r for r in self.runs if block.runs is None or r.name in block.runs)

    def sweep_runs(self) -> tuple[RunSpec, ...]:
        """The runs a sweep crosses (``sweep.runs``, or every run)."""
        return self._chosen_runs(self.sweep)

    def search_runs(self) -> tuple[RunSpec, ...]:
        """The runs a search attacks (``search.runs``, or every run)."""
        return self._chosen_runs(self.search)

    def cell(self, run: RunSpec, values: dict, what: str = "sweep") -> StudySpec:
        """The study of one sweep cell: ``run`` alone, with the swept ``values`` written into its
        fine-tuning and attack, as a study written by hand with those settings (no sweep, seeds or
        trajectories). A value its field cannot take is a one-line ``SpecError``."""
        from pydantic import ValidationError

        finetune, attack = self.finetune.model_dump(), run.attack.model_dump()
        for name, value in values.items():
            where, field = SWEEP_FIELDS[name]
            if name == "harmful_fraction" and run.attack.name != "harmful":
                raise SpecError(
                    f"{what} field harmful_fraction changes only 'harmful' attacks; run {run.name} is "
                    f"{run.attack.name!r} (name the runs with {what}.runs)"
                )
            if field == "lora.r":
                ratio = self.finetune.lora.alpha / self.finetune.lora.r
                finetune["lora"].update(r=value, alpha=ratio * value if isinstance(value, int) else value)
            else:
                (finetune if where == "finetune" else attack)[field] = value
        try:
            ft = FinetuneSpec.model_validate(finetune)
            cell_run = run.model_copy(update={"attack": AttackSpec.model_validate(attack)})
        except ValidationError as exc:
            from landscape.core.specs import error_line

            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise SpecError(f"{what} cell {shown} of run {run.name}: {error_line(exc)}") from None
        trains = [
            d.name for d in run.defenses if type(DEFENSES[d.name]).on_training is not Defense.on_training
        ]
        if ft.method == "full" and trains:
            raise SpecError(
                f"{what}: method full cannot train run {run.name}: {trains[0]} needs LoRA fine-tuning"
            )
        return self.model_copy(
            update={
                "finetune": ft,
                "runs": (cell_run,),
                "sweep": None,
                "search": None,
                "seeds": None,
                "trajectories": (),
            }
        )

    def for_seed(self, s: int) -> StudySpec:
        """The study as run under seed ``s`` (see ``seeds``): every stochastic seed shifted by s."""
        return self.model_copy(
            update={
                "finetune": self.finetune.model_copy(update={"seed": self.finetune.seed + s}),
                "runs": tuple(r.shifted(s) for r in self.runs),
                "seeds": None,
            }
        )
