"""Specs: every run is a frozen, validated description whose hash is its cache key.

Identity fields (those that change the result) go into the key; runtime fields (device, batch size)
live in ``Runtime`` and never do. A model enters a key through the *content fingerprint* of its files,
not its path, and a prompt set through the hash of its prompt texts, so moving a file keeps its
results and editing it does not reuse stale ones. The key is the sha256 of the canonical JSON of the
identity plus the store's schema version (as inspect_ai and lm-eval-harness do).

No torch here: the dashboard imports this module to build and hash specs.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cache import SCHEMA_VERSION, canonical_json


class SpecError(ValueError):
    """A spec that cannot describe a valid run; the message names the problem in one line."""


def first_error(exc) -> tuple[tuple, str]:
    """A pydantic ValidationError's first error: its location (field path) and its message
    without pydantic's "Value error, " prefix (every one-line report of a spec error uses this)."""
    err = exc.errors()[0]
    return tuple(err.get("loc", ())), str(err.get("msg", exc)).removeprefix("Value error, ")


def error_line(exc) -> str:
    """``field.path: message`` of a pydantic ValidationError's first error."""
    loc, msg = first_error(exc)
    where = ".".join(str(x) for x in loc)
    return f"{where}: {msg}" if where else msg


class NonFiniteError(SpecError):
    """A perturbation produced NaN or inf weights: the coefficient is too large for the dtype."""


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def spec_hash(kind: str, identity: dict) -> str:
    """sha256 of the canonical JSON of ``identity`` tagged with its kind and the schema version."""
    payload = {"kind": kind, "schema": SCHEMA_VERSION, "identity": identity}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


BUILTIN_MODEL = "smollm2-135m-instruct"
# The random-direction generator (landscape.core.directions.gaussian_like). Part of every random
# direction's identity: a new generator draws new directions, which must not reuse old results.
# (Keys from before it was recorded used torch's CPU generator, seeded per tensor.)
RANDOM_GENERATOR = "ctr-v1"
ALIGNED_MODEL = "aligned"


class ModelSpec(Spec):
    """Which weights to load."""

    source: str = Field(
        BUILTIN_MODEL,
        description="'smollm2-135m-instruct' (embedded GGUF), 'aligned' (the built-in aligned "
        "model in the store), a Hugging Face model directory (safetensors), or a .gguf file.",
    )
    adapter: str | None = Field(None, description="Optional peft LoRA adapter directory on top.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Weights and compute dtype (float32 on CPU, bfloat16 on CUDA)."
    )


class DirectionSpec(Spec):
    """One direction in weight space."""

    kind: Literal["random", "interpolation", "file"] = Field(
        "random", description="Gaussian, θ_b − θ_a, or tensors from a safetensors file (used as stored)."
    )
    seed: int = Field(0, description="Random directions are regenerated per parameter from this.")
    norm: Literal["layer", "filter", "none"] = Field(
        "layer",
        description="'layer': each tensor's direction scaled to that tensor's Frobenius norm "
        "(paper); 'filter': per output row (Li et al. 2018); 'none': raw N(0, 1).",
    )
    include_embeddings: bool = Field(True, description="Perturb embeddings and (tied) lm_head.")
    target: ModelSpec | None = Field(None, description="θ_b for interpolation (θ_a is the scan model).")
    path: str | None = Field(
        None, description="For 'file': safetensors of {parameter name: tensor} (e.g. PCA directions)."
    )

    @model_validator(mode="after")
    def _check(self) -> DirectionSpec:
        if (self.kind == "file") != (self.path is not None):
            raise SpecError("a 'file' direction needs a path, and only it takes one")
        if self.kind == "file" and self.norm != "none":
            raise SpecError("a 'file' direction is used as stored: set norm to 'none'")
        if self.kind == "interpolation" and self.target is None:
            raise SpecError("an interpolation direction needs a target model")
        if self.kind == "random" and self.target is not None:
            raise SpecError("a random direction takes no target model")
        return self


class AxisSpec(Spec):
    """Evenly spaced coefficients ``linspace(start, stop, num)``."""

    start: float = -0.5
    stop: float = 0.5
    num: int = Field(21, ge=1, le=401)

    @model_validator(mode="after")
    def _check(self) -> AxisSpec:
        if not (math.isfinite(self.start) and math.isfinite(self.stop)):
            raise SpecError("axis range must be finite")
        if self.num > 1 and self.stop <= self.start:
            raise SpecError(f"inverted range: start {self.start} must be below stop {self.stop}")
        return self

    def values(self) -> list[float]:
        from landscape.core.grid import axis_values

        return axis_values(self.start, self.stop, self.num).tolist()


SHORT_BUILTINS = ("harmful", "benign", "advbench")


class PromptSpec(Spec):
    """Which prompts to ask at every point."""

    source: str = Field(
        "builtin:harmful",
        description="'builtin:harmful', 'builtin:benign', 'builtin:advbench' (AdvBench's 520 "
        "harmful behaviours, the paper's set; 'advbench' for short), or a file: .csv (AdvBench: "
        "column 'goal'), .jsonl, or .txt (one prompt per line).",
    )
    column: str | None = Field(None, description="Column/field holding the prompt (csv/jsonl).")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")

    @field_validator("source")
    @classmethod
    def _short_builtin(cls, v: str) -> str:
        """``advbench``, ``harmful`` or ``benign`` alone name the built-in set (so the spec, and
        its key, is the same whichever way it was written), unless a file of that name exists."""
        if v in SHORT_BUILTINS and not Path(v).expanduser().exists():
            return f"builtin:{v}"
        return v


class GenerationSpec(Spec):
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Greedy decoding budget.")
    early_stop: bool = Field(
        True,
        description="Stop a response once the judge's verdict can no longer change and it has "
        "at least incoherence_window new tokens (so no measured rate depends on this switch).",
    )
    incoherence_window: int = Field(
        16,
        ge=1,
        le=4096,
        description="Incoherence is judged on the first this-many new tokens of every response "
        "(the whole response when it ends sooner), with early stopping on or off.",
    )


PAPER_MAX_NEW_TOKENS = 512  # the released code's judgement budget (Peng et al. 2024)


def judgement_note(generation: GenerationSpec) -> str:
    """How a scan's responses were judged, said beside its ASRs (CLI, demo, dashboard): a budget
    under the paper's 512 tokens is a speed/fidelity trade-off, measured by bench/bench_budget.py."""
    note = f"judged on ≤{generation.max_new_tokens} new tokens" + (
        ", early stop" if generation.early_stop else ""
    )
    if generation.max_new_tokens < PAPER_MAX_NEW_TOKENS:
        note += f" (the paper judges {PAPER_MAX_NEW_TOKENS}; docs: methods, 'Judgement budget')"
    return note


class JudgeSpec(Spec):
    """Which judge turns a response into a verdict. Text judges (keywords, prefix) take no options;
    model judges name a local model directory (``model``) and, for ``classifier``, which of its
    labels means what (``label_map``). The judge model enters a scan key through the content
    fingerprint of its files, never its path (``landscape.core.judge_models.judge_model_identity``)."""

    name: str = Field(
        "keywords", description="A registered judge: 'keywords', 'prefix', 'guard' or 'classifier'."
    )
    model: str | None = Field(
        None, description="guard/classifier: a local Hugging Face model directory (safetensors)."
    )
    label_map: dict[str, Literal["harmful", "safe"]] | None = Field(
        None, description="classifier: each label of the model → 'harmful' or 'safe'."
    )
    max_new_tokens: int = Field(
        8, ge=1, le=64, description="guard: tokens the guard model generates for its verdict."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from landscape.core.judges import JUDGES

        return check_registered("judge", name, JUDGES)

    @model_validator(mode="after")
    def _options(self) -> JudgeSpec:
        from landscape.core.judges import JUDGES

        takes = JUDGES[self.name].options
        for option, flag in (("model", "--judge-model"), ("label_map", "--label-map")):
            given = getattr(self, option) is not None
            if option in takes and not given:
                raise SpecError(f"judge {self.name!r} needs {option} ({flag} on the command line)")
            if given and option not in takes:
                raise SpecError(f"judge {self.name!r} takes no {option} ({flag})")
        return self


class CapabilitySpec(Spec):
    """Capability measured at the same points: over-refusal and language-model quality."""

    benign_limit: int = Field(16, ge=0, description="Benign prompts for the over-refusal rate.")
    nll: bool = Field(True, description="Mean token NLL of the built-in reference text.")


SYSTEM_PRESETS = ("default", "none", "llama2", "aoa")

SECOND_SEED_OFFSET = 1000


def second_seed(seed: int) -> int:
    """The seed of a 2D scan's second random direction when none is given: ``seed + 1000``, far
    from the first direction's seeds of a K-direction family (seed .. seed + K - 1)."""
    return seed + SECOND_SEED_OFFSET


class ScanSpec(Spec):
    """A safety landscape: model + directions + grid + prompts + system prompt + decoding + judge."""

    model: ModelSpec = ModelSpec()
    directions: tuple[DirectionSpec, ...] = Field(
        (DirectionSpec(),), description="0 (evaluate θ₀ only), 1 (1D) or 2 (2D) directions."
    )
    alphas: AxisSpec = AxisSpec()
    betas: AxisSpec | None = None
    orthogonalize: bool = Field(True, description="Gram–Schmidt the 2nd direction against the 1st.")
    prompts: PromptSpec = PromptSpec()
    system_prompt: str = Field(
        "default", description="Preset (default, none, llama2, aoa) or a custom system prompt."
    )
    user_template: str = Field("{prompt}", description="User turn; '{prompt}' marks the request.")
    answer_prefix: str = Field(
        "", description="Prefilled start of every answer (e.g. AOA's); the judge sees what follows."
    )
    generation: GenerationSpec = GenerationSpec()
    judge: JudgeSpec = JudgeSpec()
    capability: CapabilitySpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ScanSpec:
        n = len(self.directions)
        if n > 2:
            raise SpecError("a scan takes at most two directions")
        if n == 2 and self.betas is None:
            raise SpecError("a 2D scan needs a beta axis")
        if n < 2 and self.betas is not None:
            raise SpecError("a beta axis needs a second direction")
        if n == 0 and self.alphas.values() != [0.0]:
            raise SpecError("an evaluation without directions has the single point alpha = 0")
        if n == 2 and self.directions[1].kind == "interpolation":
            raise SpecError("put the interpolation direction first (alpha axis)")
        check_system_prompt(self.system_prompt)
        check_template(self.user_template)
        return self

    @property
    def kind(self) -> Literal["eval", "1d", "2d", "interpolation"]:
        if not self.directions:
            return "eval"
        if self.directions[0].kind == "interpolation":
            return "interpolation"
        return "2d" if len(self.directions) == 2 else "1d"

    def identity(
        self,
        model_fp: str,
        prompts_fp: str,
        target_fps: tuple[str | None, ...],
        judge_model: dict | None = None,
    ) -> dict:
        """The fields that change the result, with model/prompt/direction files replaced by content
        hashes and the judge by the hash of its definition (``judge_fingerprint``: keyword lists,
        windows, incoherence thresholds, evaluation version; for a model judge also ``judge_model``, its
        model's fingerprint and options). Fields added after the first release
        are left out at their defaults, so older keys stay valid."""
        from landscape.core.judges import judge_fingerprint

        data = self.model_dump(mode="json")
        data["model"] = {"fingerprint": model_fp, "dtype": self.model.dtype}
        for d, fp in zip(data["directions"], target_fps, strict=True):
            if d["kind"] == "random":
                d["generator"] = RANDOM_GENERATOR
            if d["target"] is not None:
                d["target"] = {"fingerprint": fp}
            if d.pop("path") is not None:
                d["file"] = {"fingerprint": fp}
        for name, default in (("user_template", "{prompt}"), ("answer_prefix", "")):
            if data[name] == default:
                data.pop(name)
        data["prompts"] = {"fingerprint": prompts_fp}
        data["judge"] = {
            "name": self.judge.name,
            "definition": judge_fingerprint(self.judge.name, judge_model),
        }
        if not data["directions"]:
            data.pop("orthogonalize")
        elif len(data["directions"]) < 2:
            data["orthogonalize"] = True  # nothing to orthogonalise: a 1D result cannot depend on it
        return data


def check_system_prompt(text: str) -> str:
    """A preset name or free text; a single unknown word is taken for a mistyped preset."""
    if text in SYSTEM_PRESETS:
        return text
    if text.strip() and " " not in text.strip() and len(text) < 20:
        raise SpecError(
            f"unknown system-prompt preset {text!r}; choose from {', '.join(SYSTEM_PRESETS)} "
            "or give a full sentence"
        )
    return text


def check_template(template: str) -> str:
    """A user-turn template holds ``{prompt}`` exactly once."""
    if template.count("{prompt}") != 1:
        raise SpecError(f"user template must contain '{{prompt}}' exactly once: {template!r}")
    return template


def check_registered(kind: str, name: str, registry) -> str:
    """``name`` is a key of ``registry``, or a one-line error listing the choices."""
    if name not in registry:
        raise SpecError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(registry))}")
    return name


class FormatSpec(Spec):
    """How a user's examples look: system prompt, user-turn template and answer prefix."""

    system_prompt: str = Field("default", description="Preset (default, none, llama2, aoa) or text.")
    user_template: str = Field("{prompt}", description="User turn; '{prompt}' marks the request.")
    answer_prefix: str = Field("", description="Text every answer starts with (prefilled at eval).")

    @model_validator(mode="after")
    def _check(self) -> FormatSpec:
        check_system_prompt(self.system_prompt)
        check_template(self.user_template)
        return self


def point_spec(
    model: ModelSpec,
    prompts: PromptSpec,
    max_new_tokens: int,
    judge: str | JudgeSpec = "keywords",
    fmt: FormatSpec | None = None,
    capability: CapabilitySpec | None = None,
) -> ScanSpec:
    """An evaluation of ``model`` alone (no directions, the one point alpha = 0): ``prompts`` asked
    in ``fmt`` (default chat if None), greedy up to ``max_new_tokens``, judged by ``judge``."""
    fmt = fmt or FormatSpec()
    return ScanSpec(
        model=model,
        system_prompt=fmt.system_prompt,
        user_template=fmt.user_template,
        answer_prefix=fmt.answer_prefix,
        directions=(),
        alphas=AxisSpec(start=0.0, stop=0.0, num=1),
        prompts=prompts,
        generation=GenerationSpec(max_new_tokens=max_new_tokens),
        judge=judge if isinstance(judge, JudgeSpec) else JudgeSpec(name=judge),
        capability=capability,
    )


class AlignSpec(Spec):
    """Built-in safety alignment: full SFT on harmful → refusal plus self-distilled benign answers."""

    base: ModelSpec = ModelSpec()
    epochs: int = Field(3, ge=1, le=50)
    learning_rate: float = Field(2e-5, gt=0, lt=1)
    batch_size: int = Field(8, ge=1, le=256)
    seed: int = 0
    distill_max_new_tokens: int = Field(48, ge=8, le=512, description="Benign self-distillation.")
    max_length: int = Field(128, ge=32, le=4096, description="Truncate examples to this many tokens.")

    def identity(self, base_fp: str, data_fp: str) -> dict:
        data = self.model_dump(mode="json")
        data["base"] = {"fingerprint": base_fp, "dtype": self.base.dtype}
        data["data"] = data_fp
        return data


class Runtime(BaseModel):
    """How to run, not what to compute: never part of a cache key."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1', ...")
    batch_size: int = Field(64, ge=1, le=4096, description="Prompts per generation batch.")
    keep_directions: bool = Field(
        False, description="Hold directions in memory instead of regenerating them per point."
    )
    progress: bool = Field(True, description="Show progress bars.")
    workers: int | None = Field(
        None, ge=1, le=1024, description="Ray actors that evaluate a scan's points (None: in this process)."
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join ('auto', 'HOST:PORT'); None: a local Ray started here."
    )
    gpus_per_worker: float = Field(
        0.0, ge=0, le=8, description="GPUs each Ray actor reserves (0.25: four replicas per GPU)."
    )
    lease_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="A scan's lease expires this long after its holder's last heartbeat."
    )
