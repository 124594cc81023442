"""The dashboard's scans as ``landscape scan`` command lines, and their cost before they start.

The Run page turns its widgets into the flags a user would type (``scan_args``); ``scan_spec`` parses
them with the CLI's own click command and ``landscape.cli.flags.build_scan_spec``, so the key the
page shows is the key the job computes, and no spec building is repeated here. ``timing_history``
reads the whole-point times (``point_s``) that stored points carry, to say how long a scan will take
without loading a model in the server.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import NamedTuple

from cache import Store
from landscape.core.format import format_duration
from landscape.core.specs import ScanSpec, error_line


@dataclass(frozen=True)
class ScanChoice:
    """What the Run page asks for; every field maps onto one ``landscape scan`` flag."""

    kind: str = "1d"  # 1d, 2d or interpolate
    model: str = "aligned"
    target: str | None = None  # interpolate: θ_b
    dtype: str = "float32"  # explicit, so the key does not depend on the job's device
    seed: int = 0
    norm: str = "layer"
    directions: int = 1
    auto_range: bool = False
    alpha_range: tuple[float, float] = (-0.2, 0.2)
    points: int = 7
    prompts: str = "builtin:harmful"
    limit: int = 16
    system_prompt: str = "default"
    judge: str = "keywords"
    judge_model: str | None = None
    label_map: str | None = None
    max_new_tokens: int = 32
    full_responses: bool = False
    capability: bool = False


def scan_args(c: ScanChoice) -> list[str]:
    """``scan KIND --flag value …``: the arguments after ``landscape --store S -q``."""
    args = ["scan", c.kind, "--model", c.model, "--dtype", c.dtype]
    if c.kind == "interpolate":
        args += ["--target", c.target or ""]
    else:
        args += ["--seed", str(c.seed), "--norm", c.norm]
    args += ["--range", repr(float(c.alpha_range[0])), repr(float(c.alpha_range[1]))]
    args += ["--points", str(c.points)]
    if c.kind == "2d":  # a square grid: β spans what α spans
        args += ["--beta-range", repr(float(c.alpha_range[0])), repr(float(c.alpha_range[1]))]
        args += ["--beta-points", str(c.points)]
    args += ["--prompts", c.prompts, "--limit", str(c.limit), "--system-prompt", c.system_prompt]
    args += ["--judge", c.judge]
    if c.judge in ("guard", "classifier") and c.judge_model:
        args += ["--judge-model", c.judge_model]
    if c.judge == "classifier" and c.label_map:
        args += ["--label-map", c.label_map]
    args += ["--max-new-tokens", str(c.max_new_tokens)]
    if c.directions > 1:
        args += ["--directions", str(c.directions)]
    for flag, on in (
        ("--auto-range", c.auto_range),
        ("--full-responses", c.full_responses),
        ("--capability", c.capability),
    ):
        if on:
            args.append(flag)
    return args


FULL_TOKENS = 512  # the paper's decoding budget for reading what the model says


def point_args(
    spec_file: str, spec: ScanSpec, alpha: float, beta: float | None, max_new_tokens: int
) -> list[str]:
    """``scan KIND --spec FILE`` with the grid reduced to the one point (α, β) (each axis ``START =
    STOP``, one point), no early stop and ``max_new_tokens``: the rest of the scan comes from
    ``spec_file`` (``spec`` as YAML)."""
    kind = {"2d": "2d", "interpolation": "interpolate"}.get(spec.kind, "1d")
    args = [
        "scan",
        kind,
        "--spec",
        spec_file,
        "--range",
        repr(float(alpha)),
        repr(float(alpha)),
        "--points",
        "1",
    ]
    if spec.betas is not None:
        b = repr(float(beta if beta is not None else 0.0))
        args += ["--beta-range", b, b, "--beta-points", "1"]
    return [*args, "--full-responses", "--max-new-tokens", str(int(max_new_tokens))]


class ParsedScan(NamedTuple):
    spec: ScanSpec  # the first member, on the requested grid (auto range moves the axes later)
    members: list[ScanSpec]  # the K directions' specs
    auto_range: bool


def scan_spec(args: list[str]) -> ParsedScan:
    """Parse ``scan KIND …`` exactly as ``landscape scan`` does (click, then ``build_scan_spec``).
    Raises click's ``ClickException`` or pydantic's ``ValidationError`` on a bad command."""
    from landscape.cli.flags import build_scan_spec
    from landscape.cli.options import given_flags
    from landscape.cli.scan import scan
    from landscape.engine.family import family_specs

    if args[:1] != ["scan"]:
        raise ValueError("not a scan command")
    ctx = scan.make_context("scan", list(args[1:]))
    o = dict(ctx.params)
    kind = o.pop("kind")
    spec = build_scan_spec(kind, o, given_flags(ctx, o), "cpu")  # --dtype is always given
    return ParsedScan(spec, family_specs(spec, o["n_directions"]), o["auto_range"])


class Estimate(NamedTuple):
    points: int
    prompts: int
    max_tokens: int  # points × prompts × max new tokens: the token budget's upper bound
    s_per_point: float | None  # median whole-point time of similar stored scans, scaled to prompts
    timed_points: int
    timed_scans: int
    startup_s: float | None = None  # median start-up of this store's finished jobs (model load, …)
    startup_jobs: int = 0

    @property
    def total_s(self) -> float | None:
        """Start-up plus every point, or None without a per-point history."""
        if self.s_per_point is None:
            return None
        return (self.startup_s or 0.0) + self.s_per_point * self.points


def estimate_text(est: Estimate, key: str, tokens: int, auto_range: bool) -> str:
    """What a scan costs, said with where each number comes from."""
    line = f"scan {key[:12]}: {est.points} points × {est.prompts} prompts × ≤{tokens} tokens"
    line += f" = ≤{est.max_tokens:,} new tokens"
    if est.s_per_point is None:
        line += " · no timing history for this model and budget in this store yet: no time estimate"
    else:
        startup = (
            f" + {est.startup_s:.0f} s start-up (median of {est.startup_jobs} finished jobs)"
            if est.startup_s is not None
            else " + start-up (model load; no finished job to time it yet)"
        )
        line += (
            f" · about {format_duration(est.total_s)}: {est.points} × {est.s_per_point:.1f} s/point "
            f"(median of {est.timed_points} timed points in {est.timed_scans} completed scans){startup}"
        )
    return line + (" · plus auto-range probes; the grid moves to the basin" if auto_range else "")


def timing_history(store: Store, spec: ScanSpec) -> tuple[float | None, int, int]:
    """Median seconds per prompt of a whole point (``point_s / n_prompts``) over completed scans of
    the same model at the same max new tokens, early stopping and judge: (s/prompt, points, scans)."""
    per_prompt, scans = [], 0
    for rec in store.list_scans():
        other = rec.get("spec") or {}
        gen, judge = other.get("generation") or {}, other.get("judge") or {}
        same = (
            rec.get("status") == "complete"
            and (other.get("model") or {}).get("source") == spec.model.source
            and gen.get("max_new_tokens") == spec.generation.max_new_tokens
            and gen.get("early_stop", True) == spec.generation.early_stop
            and judge.get("name", "keywords") == spec.judge.name
        )
        n = rec.get("n_prompts")
        if not same or not isinstance(n, int) or n < 1:
            continue
        times = store.scan_grid(rec["key"], ("point_s",), rec).values["point_s"]
        found = [float(t) / n for t in times.ravel() if t == t]  # NaN: not timed
        if found:
            per_prompt += found
            scans += 1
    if not per_prompt:
        return None, 0, 0
    return statistics.median(per_prompt), len(per_prompt), scans


def estimate(
    store: Store, parsed: ParsedScan, n_prompts: int, startup: tuple[float | None, int] = (None, 0)
) -> Estimate:
    """Points × prompts × tokens of the K scans, and the expected time from the store's history;
    ``startup``: (median seconds, jobs) a scan job spends outside its points (``jobs.startup_history``)."""
    spec = parsed.spec
    grid = spec.alphas.num * (spec.betas.num if spec.betas is not None else 1)
    points = grid * len(parsed.members)
    per_prompt, timed, scans = timing_history(store, spec)
    startup_s, startup_jobs = startup
    return Estimate(
        points=points,
        prompts=n_prompts,
        max_tokens=points * n_prompts * spec.generation.max_new_tokens,
        s_per_point=None if per_prompt is None else per_prompt * n_prompts,
        timed_points=timed,
        timed_scans=scans,
        startup_s=startup_s,
        startup_jobs=startup_jobs,
    )


def one_line(exc: Exception) -> str:
    """An error as the CLI prints it: pydantic's first error with its field, else the first line."""
    if callable(getattr(exc, "errors", None)):
        try:
            return error_line(exc)
        except (IndexError, TypeError, AttributeError):
            pass
    text = getattr(exc, "format_message", lambda: str(exc))()
    return (text.splitlines() or [type(exc).__name__])[0]


def spec_paths(spec) -> list[str]:
    """Every file or directory a spec (a study, a scan, any nested spec) names for a job to read:
    model sources and adapters, attack data, direction files, prompt files and judge models. An
    uploaded study is launched only when each of these passes ``Settings.model_allowed``."""
    from pydantic import BaseModel

    from landscape.core.specs import DirectionSpec, JudgeSpec, ModelSpec, PromptSpec
    from landscape.training.attacks import AttackSpec

    found: list[str | None] = []

    def walk(value) -> None:
        if isinstance(value, BaseModel):
            if isinstance(value, ModelSpec):
                found.extend((value.source, value.adapter))
            elif isinstance(value, AttackSpec):
                found.append(value.data)
            elif isinstance(value, DirectionSpec):
                found.append(value.path)
            elif isinstance(value, PromptSpec) and not value.source.startswith("builtin:"):
                found.append(value.source)
            elif isinstance(value, JudgeSpec):
                found.append(value.model)
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(spec)
    return [p for p in found if p]
