"""What the commands share: the CLI context object, device auto-detection and the scan options."""

from __future__ import annotations

import click

from landscape.core.format import plural
from landscape.core.specs import SYSTEM_PRESETS, Runtime

DEFAULT_STORE = "~/.cache/safety-landscape"


class Ctx:
    """The global options (store, device, batch size, quiet), as the library's plain arguments."""

    def __init__(self, store_dir: str, device: str, batch_size: int, quiet: bool, create: bool = True):
        self.store_dir, self.device, self.batch_size, self.quiet = store_dir, device, batch_size, quiet
        self.create = create  # False for commands that only read: a path with no store is an error
        self._store = None

    @property
    def store(self):
        from cache import Store

        if self._store is None:
            self._store = Store(self.store_dir, create=self.create)
        return self._store

    def runtime(self, keep_directions: bool = False, **workers) -> Runtime:
        """``workers``: the Ray flags (``workers``, ``ray_address``, ``gpus_per_worker``)."""
        return Runtime(
            device=self.device,
            batch_size=self.batch_size,
            keep_directions=keep_directions,
            progress=not self.quiet,
            **workers,
        )

    def log(self, msg: str) -> None:
        if not self.quiet:
            click.echo(msg, err=True)


def auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device_name(device: str) -> str:
    """``--device`` as written: cpu, cuda, cuda:N or auto (no torch needed to say a name is wrong)."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise click.BadParameter(
            f"{device!r} is not a device: use cpu, cuda, cuda:N or auto", param_hint="--device"
        )
    return device


def check_device_available(device: str) -> str:
    """A CUDA device that this machine has, or a one-line error (before any record is written)."""
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = plural(count, "CUDA device") if count else "no CUDA device"
            raise click.UsageError(f"--device {device}: this machine has {have}")
    return device


def given_flags(ctx: click.Context, names) -> set[str]:
    """The parameters among ``names`` the user gave (on the command line or by environment)."""
    out = set()
    for name in names:
        src = ctx.get_parameter_source(name)
        if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP"):
            out.add(name)
    return out


JUDGE_MODEL_OPTIONS = [
    click.option("--judge-model", default=None, help="guard/classifier: a local model directory."),
    click.option(
        "--label-map",
        default=None,
        help="classifier: label → harmful/safe, e.g. LABEL_1=harmful,LABEL_0=safe (or JSON).",
    ),
    click.option(
        "--judge-max-tokens",
        default=8,
        show_default=True,
        type=click.IntRange(1, 64),
        help="guard: verdict tokens.",
    ),
]


def parse_label_map(text: str | None) -> dict[str, str] | None:
    """``LABEL_1=harmful,LABEL_0=safe`` or a JSON object → a mapping (None stays None)."""
    import json

    if text is None:
        return None
    if text.lstrip().startswith("{"):
        try:
            out = json.loads(text)
        except json.JSONDecodeError:
            raise click.UsageError(f"--label-map is not valid JSON: {text!r}") from None
    else:
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise click.UsageError(f"--label-map takes LABEL=harmful|safe pairs: {text!r}")
        out = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(out, dict):
        raise click.UsageError("--label-map must map labels to harmful or safe")
    return out


RAY_OPTIONS = [  # scans and studies
    click.option(
        "--workers",
        default=None,
        type=click.IntRange(1, 1024),
        help="N Ray workers: a scan's points (and its auto-range probes) on N actors (each loads the "
        "model once), a study's "
        "fine-tunes and evaluations N tasks at a time; without it, in this process.",
    ),
    click.option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        default=None,
        help="With --workers: the Ray cluster (auto or HOST:PORT; env RAY_ADDRESS) [a local Ray].",
    ),
    click.option(
        "--gpus-per-worker",
        default=0.0,
        show_default=True,
        type=click.FloatRange(0, 8),
        help="With --workers: GPUs each actor reserves (0.25: four replicas per GPU; 0: CPU actors).",
    ),
]


def ray_options(fn):
    """``--workers``, ``--ray-address``, ``--gpus-per-worker``."""
    for opt in reversed(RAY_OPTIONS):
        fn = opt(fn)
    return fn


def ray_flags(ctx: click.Context, workers, ray_address, gpus_per_worker) -> dict:
    """The Runtime fields of the Ray flags. They need --workers (RAY_ADDRESS alone is ignored)."""
    src = ctx.get_parameter_source("ray_address")
    if workers is None and (gpus_per_worker or (ray_address and src.name == "COMMANDLINE")):
        raise click.UsageError("--ray-address and --gpus-per-worker need --workers N")
    return {"workers": workers, "ray_address": ray_address, "gpus_per_worker": gpus_per_worker}


SCAN_OPTIONS = [
    click.option(
        "--spec",
        "spec_file",
        type=click.Path(dir_okay=False),
        help="YAML scan spec; flags you give override it.",
    ),
    click.option(
        "--model",
        default="aligned",
        show_default=True,
        help="smollm2-135m-instruct, aligned, a stored model by the name `list` shows ('aligned b46521'), an HF directory or a .gguf file.",
    ),
    click.option(
        "--adapter",
        default=None,
        help="peft LoRA adapter merged on top: a directory, or a stored run by name ('fine-tuned 8791ca epoch 3').",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["auto", "float32", "bfloat16"]),
        default="auto",
        show_default=True,
        help="auto: bfloat16 on CUDA (float32 for interpolate), float32 on CPU; a bf16 grid whose smallest step bf16 rounds away is refused.",
    ),
    click.option("--seed", default=0, show_default=True, help="Seed of the first random direction."),
    click.option("--seed2", default=None, type=int, help="Seed of the second direction [seed+1000]."),
    click.option(
        "--norm",
        type=click.Choice(["layer", "filter", "none"]),
        default="layer",
        show_default=True,
        help="Scale each random direction to the weights' norm per layer (the paper), per filter, or not.",
    ),
    click.option("--no-embeddings", is_flag=True, help="Leave embeddings and lm_head unperturbed."),
    click.option("--no-orthogonalize", is_flag=True, help="Keep the 2nd direction as drawn."),
    click.option(
        "--range",
        "alpha_range",
        nargs=2,
        type=float,
        default=None,
        help="Alpha axis START STOP.  [default: -0.5 0.5; -0.25 1.25 for interpolate]",
    ),
    click.option(
        "--points",
        default=None,
        type=click.IntRange(1, 401),
        help="Alpha grid points.  [default: 21; 13 for interpolate (t = 0 and 1 on the grid)]",
    ),
    click.option(
        "--beta-range",
        nargs=2,
        type=float,
        default=None,
        help="Beta axis START STOP (2d, or interpolate with a random β).  [default: -0.5 0.5]",
    ),
    click.option(
        "--beta-points", default=None, type=click.IntRange(1, 401), help="Beta grid points.  [default: 21]"
    ),
    click.option("--auto-range", is_flag=True, help="Bisect for the basin edges and span them."),
    click.option(
        "--probe-prompts",
        default=None,
        type=click.IntRange(1),
        help="Prompts per auto-range probe.  [default: the scan's own]",
    ),
    click.option(
        "--prompts",
        default="builtin:harmful",
        show_default=True,
        help="builtin:harmful (113 requests), builtin:benign, advbench (AdvBench's 520 goals, the paper's set; it scans the first 80) or a .csv/.jsonl/.txt file.",
    ),
    click.option(
        "--column",
        default=None,
        help="CSV column / JSONL field with the prompt.  [default: goal, else prompt]",
    ),
    click.option(
        "--limit", default=None, type=click.IntRange(1), help="First N prompts only.  [default: all]"
    ),
    click.option(
        "--system-prompt",
        default="default",
        show_default=True,
        help=f"Preset ({', '.join(SYSTEM_PRESETS)}) or custom text.",
    ),
    click.option(
        "--judge",
        default="keywords",
        show_default=True,
        help="keywords (paper), prefix, guard or classifier.",
    ),
    *JUDGE_MODEL_OPTIONS,
    click.option(
        "--max-new-tokens",
        default=32,
        show_default=True,
        type=click.IntRange(1, 4096),
        help="Greedy decoding budget per response (the paper judges 512).",
    ),
    click.option("--no-early-stop", is_flag=True, help="Always generate max-new-tokens."),
    click.option(
        "--full-responses",
        is_flag=True,
        help="Early stopping off, so every response can be rejudged later (`landscape rejudge`).",
    ),
    click.option(
        "--incoherence-window",
        default=16,
        show_default=True,
        type=click.IntRange(1, 4096),
        help="Judge incoherence on the first N new tokens (early stopping never cuts them).",
    ),
    click.option("--capability", is_flag=True, help="Also record benign over-refusal and reference NLL."),
    click.option(
        "--benign-limit",
        default=16,
        show_default=True,
        type=click.IntRange(0),
        help="With --capability: benign prompts asked at every point.",
    ),
    click.option(
        "--directions",
        "n_directions",
        default=1,
        show_default=True,
        type=click.IntRange(1, 50),
        help="K random directions (seeds seed..seed+K-1).",
    ),
    click.option("--keep-directions", is_flag=True, help="Hold directions in memory (faster, more RAM)."),
    *RAY_OPTIONS,
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
]


def scan_options(fn):
    """Every scan option (``scan`` and ``estimate`` take the same), in this order in --help."""
    for opt in reversed(SCAN_OPTIONS):
        fn = opt(fn)
    return fn


def old_spelling(old: str, new: str, **kw):
    """A hidden option keeping ``old`` (a flag renamed to ``new``) working for a release; the
    command reads it with ``renamed``."""
    return click.option(old, "old_" + old.lstrip("-").replace("-", "_"), hidden=True, default=None, **kw)


def renamed(value, old_value, old: str, new: str):
    """``new``'s value, or the hidden ``old`` spelling's when that was given (with a one-line note)."""
    if old_value is None:
        return value
    click.echo(f"note: {old} is now {new} (the old spelling goes in the next release)", err=True)
    return old_value
