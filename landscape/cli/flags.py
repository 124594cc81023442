"""Scan flags → a ScanSpec, in one place.

``SCAN_FIELDS`` says which dotted ScanSpec field each flag sets. Flags the user gave override the
YAML spec's fields; the other flags' defaults fill only what the YAML spec lacks (``merge_dotted``);
the result is validated once. Directions are the one part built by hand (``scan_directions``): the
scan kind decides how many there are and of what kind.
"""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.options import parse_label_map
from landscape.core.specs import DirectionSpec, ModelSpec, ScanSpec, second_seed

# flag → the ScanSpec field it sets; a two-value flag (START STOP) sets two fields
SCAN_FIELDS: dict[str, str | tuple[str, str]] = {
    "model": "model.source",
    "adapter": "model.adapter",
    "dtype": "model.dtype",
    "alpha_range": ("alphas.start", "alphas.stop"),
    "points": "alphas.num",
    "prompts": "prompts.source",
    "column": "prompts.column",
    "limit": "prompts.limit",
    "system_prompt": "system_prompt",
    "judge": "judge.name",
    "judge_model": "judge.model",
    "label_map": "judge.label_map",
    "judge_max_tokens": "judge.max_new_tokens",
    "max_new_tokens": "generation.max_new_tokens",
    "no_early_stop": "generation.early_stop",
    "full_responses": "generation.early_stop",  # either flag turns it off (part of the key)
    "incoherence_window": "generation.incoherence_window",
    "no_orthogonalize": "orthogonalize",
    "benign_limit": "capability.benign_limit",  # only with --capability
}
BETA_FIELDS: dict[str, str | tuple[str, str]] = {  # only for a scan with two directions
    "beta_range": ("betas.start", "betas.stop"),
    "beta_points": "betas.num",
}
NEGATED = ("no_early_stop", "full_responses", "no_orthogonalize")  # the flag sets its field to False
DIRECTION_FLAGS = ("seed", "seed2", "norm", "no_embeddings", "target")


def merge_dotted(base: dict, overrides: dict, *, fill: bool = False) -> dict:
    """A copy of ``base`` with every dotted field of ``overrides`` set: ``{"generation.max_new_tokens":
    8}`` sets ``base["generation"]["max_new_tokens"]``, making missing (or None) parents mappings.
    ``fill=False``: the overrides win (a non-mapping parent is replaced). ``fill=True``: they are
    defaults, set only where ``base`` lacks the field (a non-mapping parent is left for validation
    to report). ``base`` is left unchanged."""
    import copy

    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for name in parents:
            child = node.get(name)
            if child is None or (not fill and not isinstance(child, dict)):
                child = node[name] = {}
            if not isinstance(child, dict):
                break
            node = child
        else:
            if not (fill and leaf in node):
                node[leaf] = copy.deepcopy(value)
    return out


def read_spec_file(path: str) -> dict:
    """The mapping of a YAML scan spec (validated later, together with the flags)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise click.UsageError(f"spec file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{file} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise click.UsageError(f"{file} must hold a mapping of scan fields")
    return data


def flag_values(kind: str, o: dict, device: str) -> dict:
    """Each flag's value as its field takes it: negations applied, defaults that depend on the
    scan kind (axes) or the device (dtype) resolved."""
    v = dict(o)
    for name in NEGATED:
        v[name] = not o[name]
    v["label_map"] = parse_label_map(o["label_map"])
    interpolate = kind == "interpolate"
    if o["dtype"] == "auto":
        # an interpolation direction is not normalised: a fine-tune that moves weights by ~1% is
        # a staircase in bf16 between t = 0 and 1 (relative step error 0.67 at t = 0.25), so it
        # runs in float32 on CUDA too; random directions in bf16 are checked per grid (perturb)
        v["dtype"] = "bfloat16" if device.startswith("cuda") and not interpolate else "float32"
    v["alpha_range"] = o["alpha_range"] or ((-0.25, 1.25) if interpolate else (-0.5, 0.5))
    v["points"] = o["points"] or (13 if interpolate else 21)  # 13: step 0.125, t = 0 and 1 on the grid
    v["beta_range"] = o["beta_range"] or (-0.5, 0.5)
    v["beta_points"] = o["beta_points"] or 21
    return v


def _dotted(table: dict, values: dict, names) -> dict:
    out = {}
    for name in names:
        fields = table[name]
        if isinstance(fields, str):
            out[fields] = values[name]
        else:
            out.update(zip(fields, values[name], strict=True))
    return out


def _merge(spec: dict, table: dict, values: dict, given: set[str], names) -> dict:
    """Given flags override ``spec``'s fields; the other flags fill only the fields it lacks."""
    spec = merge_dotted(spec, _dotted(table, values, [n for n in names if n in given]))
    return merge_dotted(spec, _dotted(table, values, [n for n in names if n not in given]), fill=True)


def scan_directions(kind: str, o: dict, dtype: str) -> list[dict]:
    """1d: one random direction; 2d: two (the second seeded ``--seed2`` or ``second_seed``);
    interpolate: θ_a → ``--target``, plus a random beta direction when ``--beta-range`` is given."""
    random_kw = {"norm": o["norm"], "include_embeddings": not o["no_embeddings"]}
    seed2 = o["seed2"] if o["seed2"] is not None else second_seed(o["seed"])
    if kind == "interpolate":
        if not o.get("target"):
            raise click.UsageError("interpolate needs --target MODEL (θ_b; --model is θ_a)")
        target = ModelSpec(source=o["target"], dtype=dtype)
        first = DirectionSpec(kind="interpolation", norm="none", target=target)
        dirs = (first,) if not o["beta_range"] else (first, DirectionSpec(seed=seed2, **random_kw))
    elif kind == "2d":
        dirs = (DirectionSpec(seed=o["seed"], **random_kw), DirectionSpec(seed=seed2, **random_kw))
    else:
        dirs = (DirectionSpec(seed=o["seed"], **random_kw),)
    return [d.model_dump() for d in dirs]


def _not_applicable(kind: str, o: dict) -> dict[str, str]:
    """Flag → why it does not apply to this ``kind`` of scan with these other flags."""
    beta = kind == "2d" or (kind == "interpolate" and o.get("beta_range"))
    out = {}
    if not beta:
        why = "needs a second direction (scan 2d, or interpolate with --beta-range)"
        out.update(beta_points=why, seed2=why, no_orthogonalize=why)
        if kind == "1d":
            out["beta_range"] = "applies to scan 2d and interpolate"
    if kind != "interpolate":
        out["target"] = "applies to scan interpolate only (θ_b)"
    elif not beta:
        why = "applies to random directions; this interpolation has none (add --beta-range)"
        out.update(seed=why, norm=why, no_embeddings=why, n_directions=why)
    if not o.get("capability"):
        out["benign_limit"] = "applies with --capability"
    if not o.get("auto_range"):
        out["probe_prompts"] = "applies with --auto-range"
    return out


def build_scan_spec(kind: str, o: dict, given: set[str], device: str) -> ScanSpec:
    """Flags ``o`` (``given``: those the user gave) over an optional YAML spec → one ScanSpec.

    A given flag that cannot change this kind of scan is refused (one line), never silently
    ignored: ``--beta-range`` on a 1D scan, ``--target`` outside interpolate, and so on."""
    for name, why in _not_applicable(kind, o).items():
        if name in given:
            flag = "--directions" if name == "n_directions" else "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} does not apply to scan {kind}: it {why}")
    spec = read_spec_file(o["spec_file"]) if o["spec_file"] else {}
    values = flag_values(kind, o, device)
    names = [n for n in SCAN_FIELDS if n != "benign_limit" or o["capability"]]
    spec = _merge(spec, SCAN_FIELDS, values, given, names)
    if given & set(DIRECTION_FLAGS) or "directions" not in spec:
        spec["directions"] = scan_directions(kind, o, values["dtype"])
    dirs = spec["directions"]
    if isinstance(dirs, list | tuple) and len(dirs) == 2:
        spec = _merge(spec, BETA_FIELDS, values, given, BETA_FIELDS)
    return ScanSpec.model_validate(spec)
