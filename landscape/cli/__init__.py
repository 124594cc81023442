"""Command line: ``landscape`` / ``python -m landscape``.

The CLI only builds specs (from flags and/or a YAML file) and calls the same public functions a
notebook would (``align_model``, ``scan_grid``, ``auto_range``, ``estimate_scan``). User errors end
in one line on stderr and exit status 2, never a traceback; finished points are already stored, so
nothing computed is lost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from landscape import __version__
from landscape.core.specs import (
    SYSTEM_PRESETS,
    AlignSpec,
    AxisSpec,
    CapabilitySpec,
    DirectionSpec,
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    second_seed,
)
from landscape.core.visage import scan_summary, summarize
from landscape.study.pipeline import PRESETS as STUDY_PRESETS
from landscape.study.report import (
    family_visage,
    landscape_text,
    read_asr_csv,
    scan_list_text,
    summary_text,
    visage_table,
)

DEFAULT_STORE = "~/.cache/safety-landscape"


class Ctx:
    def __init__(self, store_dir: str, device: str, batch_size: int, quiet: bool):
        self.store_dir, self.device, self.batch_size, self.quiet = store_dir, device, batch_size, quiet
        self._store = None

    @property
    def store(self):
        from cache import Store

        if self._store is None:
            self._store = Store(self.store_dir)
        return self._store

    def runtime(self, keep_directions: bool = False) -> Runtime:
        return Runtime(
            device=self.device,
            batch_size=self.batch_size,
            keep_directions=keep_directions,
            progress=not self.quiet,
        )

    def log(self, msg: str) -> None:
        if not self.quiet:
            click.echo(msg, err=True)


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="landscape")
@click.option(
    "--store",
    "store_dir",
    envvar="SAFETY_LANDSCAPE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="Result store directory (env SAFETY_LANDSCAPE_STORE).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 4096))
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or log lines.")
@click.pass_context
def main(ctx, store_dir, device, batch_size, quiet):
    """Safety Landscape: safety basins, VISAGE and defences for language models."""
    if device == "auto" and ctx.invoked_subcommand in {"align", "scan", "estimate", "demo", "study"}:
        device = _auto_device()
    ctx.obj = Ctx(store_dir, "cpu" if device == "auto" else device, batch_size, quiet)


# -- scan options --------------------------------------------------------------------------------


def scan_options(fn):
    options = [
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
            help="smollm2-135m-instruct, aligned, an HF directory or a .gguf file.",
        ),
        click.option("--adapter", default=None, help="peft LoRA adapter directory merged on top."),
        click.option(
            "--dtype",
            type=click.Choice(["auto", "float32", "bfloat16"]),
            default="auto",
            show_default=True,
            help="auto: bfloat16 on CUDA, float32 on CPU.",
        ),
        click.option("--seed", default=0, show_default=True, help="Seed of the first random direction."),
        click.option("--seed2", default=None, type=int, help="Seed of the second direction [seed+1000]."),
        click.option(
            "--norm", type=click.Choice(["layer", "filter", "none"]), default="layer", show_default=True
        ),
        click.option("--no-embeddings", is_flag=True, help="Leave embeddings and lm_head unperturbed."),
        click.option("--no-orthogonalize", is_flag=True, help="Keep the 2nd direction as drawn."),
        click.option(
            "--range", "alpha_range", nargs=2, type=float, default=None, help="Alpha axis START STOP."
        ),
        click.option("--points", default=None, type=click.IntRange(1, 401), help="Alpha grid points."),
        click.option("--beta-range", nargs=2, type=float, default=None, help="Beta axis START STOP."),
        click.option("--beta-points", default=None, type=click.IntRange(1, 401)),
        click.option("--auto-range", is_flag=True, help="Bisect for the basin edges and span them."),
        click.option(
            "--probe-prompts", default=None, type=click.IntRange(1), help="Prompts per auto-range probe."
        ),
        click.option(
            "--prompts",
            default="builtin:harmful",
            show_default=True,
            help="builtin:harmful, builtin:benign or a .csv/.jsonl/.txt file.",
        ),
        click.option("--column", default=None, help="CSV column / JSONL field with the prompt."),
        click.option("--limit", default=None, type=click.IntRange(1), help="First N prompts only."),
        click.option(
            "--system-prompt",
            default="default",
            show_default=True,
            help=f"Preset ({', '.join(SYSTEM_PRESETS)}) or custom text.",
        ),
        click.option("--judge", default="keywords", show_default=True, help="keywords (paper) or prefix."),
        click.option("--max-new-tokens", default=32, show_default=True, type=click.IntRange(1, 4096)),
        click.option("--no-early-stop", is_flag=True, help="Always generate max-new-tokens."),
        click.option(
            "--incoherence-window",
            default=16,
            show_default=True,
            type=click.IntRange(1, 4096),
            help="Judge incoherence on the first N new tokens (early stopping never cuts them).",
        ),
        click.option("--capability", is_flag=True, help="Also record benign over-refusal and reference NLL."),
        click.option("--benign-limit", default=16, show_default=True, type=click.IntRange(0)),
        click.option(
            "--directions",
            "n_directions",
            default=1,
            show_default=True,
            type=click.IntRange(1, 50),
            help="K random directions (seeds seed..seed+K-1).",
        ),
        click.option("--keep-directions", is_flag=True, help="Hold directions in memory (faster, more RAM)."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _given(ctx, name: str) -> bool:
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def build_scan_spec(ctx, kind: str, o: dict, device: str) -> ScanSpec:
    """Flags (and an optional YAML base) → ScanSpec. Only flags the user gave override the file."""
    base: dict = {}
    if o["spec_file"]:
        import yaml

        path = Path(o["spec_file"])
        if not path.is_file():
            raise click.UsageError(f"spec file not found: {path}")
        try:
            base = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise click.UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(base, dict):
            raise click.UsageError(f"{path} must hold a mapping of scan fields")
        base = ScanSpec.model_validate(base).model_dump()
    use = (lambda n: _given(ctx, n)) if base else (lambda n: True)
    dtype = o["dtype"]
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    spec = dict(base)
    if use("model") or use("adapter") or use("dtype") or "model" not in spec:
        spec["model"] = ModelSpec(source=o["model"], adapter=o["adapter"], dtype=dtype)
    random_kw = {"norm": o["norm"], "include_embeddings": not o["no_embeddings"]}
    seed2 = o["seed2"] if o["seed2"] is not None else second_seed(o["seed"])
    if kind == "interpolate":
        if not o.get("target"):
            raise click.UsageError("interpolate needs --target MODEL (θ_b; --model is θ_a)")
        first = DirectionSpec(
            kind="interpolation", norm="none", target=ModelSpec(source=o["target"], dtype=dtype)
        )
        dirs = (first,) if not o["beta_range"] else (first, DirectionSpec(seed=seed2, **random_kw))
    elif kind == "2d":
        dirs = (DirectionSpec(seed=o["seed"], **random_kw), DirectionSpec(seed=seed2, **random_kw))
    else:
        dirs = (DirectionSpec(seed=o["seed"], **random_kw),)
    if not base or any(use(n) for n in ("seed", "seed2", "norm", "no_embeddings", "target")):
        spec["directions"] = dirs
    default_range = (-0.25, 1.25) if kind == "interpolate" else (-0.5, 0.5)
    default_points = 16 if kind == "interpolate" else 21

    def axis(current, rng_flag: str, num_flag: str, rng_default, num_default) -> AxisSpec:
        """Flags given override the file's axis field by field; the rest come from the file."""
        cur = (
            dict(current)
            if current
            else {"start": rng_default[0], "stop": rng_default[1], "num": num_default}
        )
        if use(rng_flag) and o[rng_flag]:
            cur["start"], cur["stop"] = o[rng_flag]
        if use(num_flag) and o[num_flag]:
            cur["num"] = o[num_flag]
        return AxisSpec(**cur)

    spec["alphas"] = axis(spec.get("alphas"), "alpha_range", "points", default_range, default_points)
    if len(spec["directions"]) == 2:
        spec["betas"] = axis(spec.get("betas"), "beta_range", "beta_points", (-0.5, 0.5), 21)
    prompts = dict(spec["prompts"]) if spec.get("prompts") else {}
    for field, flag in (("source", "prompts"), ("column", "column"), ("limit", "limit")):
        if use(flag) or field not in prompts:
            prompts[field] = o[flag]
    spec["prompts"] = PromptSpec(**prompts)
    if not base or use("system_prompt"):
        spec["system_prompt"] = o["system_prompt"]
    if not base or use("judge"):
        spec["judge"] = JudgeSpec(name=o["judge"])
    gen = dict(spec["generation"]) if spec.get("generation") else {}
    if use("max_new_tokens") or "max_new_tokens" not in gen:
        gen["max_new_tokens"] = o["max_new_tokens"]
    if use("no_early_stop") or "early_stop" not in gen:
        gen["early_stop"] = not o["no_early_stop"]
    if use("incoherence_window") or "incoherence_window" not in gen:
        gen["incoherence_window"] = o["incoherence_window"]
    spec["generation"] = GenerationSpec(**gen)
    if o["capability"]:
        spec["capability"] = CapabilitySpec(benign_limit=o["benign_limit"])
    if not base or use("no_orthogonalize"):
        spec["orthogonalize"] = not o["no_orthogonalize"]
    return ScanSpec.model_validate(spec)


def run_scans(c: Ctx, spec: ScanSpec, o: dict):
    """Auto-range (optional) and K seeds of ``spec``; returns the list of ScanResults."""
    from landscape.engine.autorange import AutoRangeSpec
    from landscape.engine.family import scan_family

    auto = AutoRangeSpec(probe_prompts=o["probe_prompts"]) if o["auto_range"] else None
    runtime = c.runtime(o["keep_directions"])
    return scan_family(spec, o["n_directions"], c.store, runtime, auto, c.log)


def _print_results(results, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"key": r.key, "kind": r.spec.kind, "summary": r.summary, "computed": r.computed}
                    for r in results
                ],
                indent=2,
            )
        )
        return
    for r in results:
        click.echo(
            f"\nscan {r.key[:12]}  ({r.spec.kind}, {'computed ' + str(r.computed) + ' points' if r.computed else 'from the store'})"
        )
        click.echo(landscape_text(r.grid))
        click.echo(summary_text(r.summary))
    if len(results) > 1:
        click.echo("\n" + family_visage([r.summary for r in results]))


def scan_command(fn):
    """The arguments shared by ``scan`` and ``estimate``."""
    fn = click.pass_context(scan_options(fn))
    fn = click.option("--target", default=None, help="interpolate: θ_b (the model at alpha = 1).")(fn)
    fn = click.argument("kind", type=click.Choice(["1d", "2d", "interpolate"]))(fn)
    return main.command()(fn)


@scan_command
def scan(ctx, kind, **o):
    """Scan the safety landscape along 1 or 2 directions (or an interpolation)."""
    c: Ctx = ctx.obj
    spec = build_scan_spec(ctx, kind, o, c.device)
    _print_results(run_scans(c, spec, o), o["as_json"])


@scan_command
def estimate(ctx, kind, **o):
    """Cost of a scan: points × prompts × tokens, timed on one real (stored) point."""
    from landscape.core.format import format_duration
    from landscape.engine.scan import estimate_scan

    c: Ctx = ctx.obj
    spec = build_scan_spec(ctx, kind, o, c.device)
    est = estimate_scan(spec, c.store, c.runtime(o["keep_directions"]), c.log)
    if o["as_json"]:
        click.echo(json.dumps(est, indent=2))
        return
    click.echo(
        f"scan {est['key'][:12]}: {est['points']} points ({est['missing']} to compute) × {est['prompts']} prompts × ≤{est['max_new_tokens']} tokens"
    )
    click.echo(f"token budget: ≤{est['max_tokens']:,} new tokens")
    if est["seconds_per_point"] is not None:
        click.echo(
            f"measured {est['seconds_per_point']:.1f} s/point → about {format_duration(est['estimated_s'])} for the rest"
        )
    else:
        click.echo("everything is in the store already")


@main.command()
@click.option("--epochs", default=AlignSpec().epochs, show_default=True, type=click.IntRange(1, 50))
@click.option("--lr", default=AlignSpec().learning_rate, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True)
@click.option("--base", default="smollm2-135m-instruct", show_default=True, help="Model to align.")
@click.option("--eval/--no-eval", "do_eval", default=True, help="Measure ASR and over-refusal after.")
@click.option(
    "--eval-prompts",
    default="builtin:harmful",
    show_default=True,
    help="Harmful set for the check (e.g. AdvBench CSV).",
)
@click.option("--eval-limit", default=80, show_default=True, type=click.IntRange(1))
@click.pass_context
def align(ctx, epochs, lr, seed, base, do_eval, eval_prompts, eval_limit):
    """Safety-align a model by SFT on built-in refusals + self-distilled benign answers."""
    from landscape.study.report import evaluate_models
    from landscape.training.align import align_model

    c: Ctx = ctx.obj
    spec = AlignSpec(base=ModelSpec(source=base), epochs=epochs, learning_rate=lr, seed=seed)
    rec = align_model(spec, c.store, c.runtime(), c.log)
    how = "from the store" if rec["cached"] else f"in {rec['elapsed_s']:.0f} s"
    click.echo(f"aligned model {rec['key'][:12]} ({how}): {rec['path']}")
    if do_eval:
        click.echo(
            evaluate_models(c.store, c.runtime(), c.log, [base, rec["path"]], eval_prompts, eval_limit)
        )


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--asr", default=None, help="A 1D ASR curve in percent, e.g. 100,60,0,10,100.")
@click.option(
    "--csv", "csv_file", type=click.Path(dir_okay=False), default=None, help="A 2D ASR grid (rows = alpha)."
)
@click.option("--json", "as_json", is_flag=True)
def visage(keys, asr, csv_file, as_json):
    """VISAGE (paper and reference definitions) of stored scans or of numbers you give."""
    c: Ctx = click.get_current_context().obj
    if asr is None and csv_file is None and not keys:
        raise click.UsageError("give scan keys, --asr or --csv")
    rows = []
    if asr is not None:
        try:
            curve = np.array([float(v) for v in asr.split(",")])
        except ValueError:
            raise click.UsageError("--asr takes comma-separated numbers, e.g. 100,60,0,10,100") from None
        # A curve given by hand is taken as a 1D random scan on a grid centred at its middle value.
        rows.append(("--asr", curve, summarize(np.linspace(-1, 1, len(curve)), None, curve, kind="1d")))
    if csv_file is not None:
        grid = read_asr_csv(Path(csv_file))
        axes = (np.arange(n) - n // 2 for n in grid.shape)
        rows.append((Path(csv_file).name, grid, summarize(*axes, grid, kind="2d")))
    for key in keys:
        full = c.store.resolve_scan_key(key)
        asr_grid = c.store.scan_grid(full, fields=("asr_pct",)).values["asr_pct"]
        rows.append((full[:12], asr_grid, scan_summary(c.store.scan_record(full), asr_grid)))
    click.echo(visage_table(rows, as_json))


@main.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json):
    """Every scan in the store with status and summary metrics."""
    c: Ctx = click.get_current_context().obj
    from landscape.engine.scan import read_summary

    scans = [dict(s, summary=read_summary(c.store, s["key"], s)) for s in c.store.list_scans()]
    if as_json:
        click.echo(json.dumps(scans, indent=2, default=str))
    else:
        click.echo(scan_list_text(scans, c.store.root))


@main.command()
@click.argument("key")
@click.option("--point", default=None, help="Show one point's responses: I or I,J.")
@click.option("--json", "as_json", is_flag=True)
def show(key, point, as_json):
    """One scan: its spec, grid and summary, or one point's responses."""
    from landscape.study.report import point_text, scan_text

    c: Ctx = click.get_current_context().obj
    full = c.store.resolve_scan_key(key)
    if point is not None:
        try:
            ij = [int(v) for v in point.split(",")]
        except ValueError:
            raise click.UsageError("--point takes I or I,J (grid indices)") from None
        click.echo(point_text(c.store, full, ij[0], ij[1] if len(ij) > 1 else 0, as_json))
    else:
        click.echo(scan_text(c.store, full, as_json))


@main.command()
@click.option(
    "--prompts",
    "n_prompts",
    default=32,
    show_default=True,
    type=click.IntRange(4),
    help="Harmful prompts per point.",
)
@click.option(
    "--points",
    default=9,
    show_default=True,
    type=click.IntRange(3, 101),
    help="1D grid points per direction (made odd, centred on θ₀).",
)
@click.option(
    "--directions",
    default=3,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Random 1D directions (seeds 0..K-1) that VISAGE's mean ± std is taken over.",
)
@click.option("--grid2d", default=5, show_default=True, type=click.IntRange(3, 41), help="2D grid side.")
@click.option(
    "--prompts2d", default=12, show_default=True, type=click.IntRange(4), help="Prompts per 2D point."
)
@click.pass_context
def demo(ctx, n_prompts, points, directions, grid2d, prompts2d):
    """Align if needed → auto range → 1D scans along K directions → coarse 2D scan → VISAGE table."""
    from landscape.study.demo import run_demo

    c: Ctx = ctx.obj
    run_demo(
        c.store,
        c.runtime(),
        c.log,
        click.echo,
        n_prompts=n_prompts,
        points=points,
        grid2d=grid2d,
        prompts2d=prompts2d,
        directions=directions,
    )


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--preset", default=None, help=f"A built-in study instead of a file: {', '.join(STUDY_PRESETS)}."
)
@click.option("--markdown", is_flag=True, help="Print only the comparison table (markdown).")
@click.option(
    "--keep-directions/--regenerate-directions",
    default=True,
    show_default=True,
    help="Hold each random direction in memory during a scan (one model-sized copy).",
)
@click.pass_context
def study(ctx, file, preset, markdown, keep_directions):
    """align → attacks → defences → evaluation → landscapes, resumable; prints the comparison."""
    from landscape.study.pipeline import load_study, run_study, study_markdown

    c: Ctx = ctx.obj
    if (file is None) == (preset is None):
        raise click.UsageError(f"give a study YAML file or --preset ({', '.join(STUDY_PRESETS)})")
    dtype = "bfloat16" if c.device.startswith("cuda") else "float32"
    spec = load_study(file, preset, default_dtype=dtype)
    record = run_study(spec, c.store, c.runtime(keep_directions), c.log)
    if not markdown:
        click.echo(
            f"study {record['key'][:12]} complete in {record['elapsed_s'] / 60:.1f} min (store: {c.store.root})"
        )
    click.echo(study_markdown(record))


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def export(ctx, args):
    """Export a scan's figure (PNG/SVG/PDF/HTML) or data (CSV/JSON): `landscape export --help`.

    The figures come from the dashboard's builders, run as a separate process so the engine never
    imports plotly.
    """
    import subprocess

    cmd = [sys.executable, "-m", "dashboard.export", "--store", ctx.obj.store_dir, *args]
    raise click.exceptions.Exit(subprocess.run(cmd).returncode)


def run(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit 2."""
    import warnings

    # transformers' own deprecation notices (peft triggers them) are not the user's problem
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    from pydantic import ValidationError

    from cache import StoreError
    from landscape.core.specs import SpecError

    try:
        code = main.main(args=argv, prog_name="landscape", standalone_mode=False)
        if isinstance(code, int):  # click returns Exit codes instead of raising when not standalone
            return code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return 2
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        click.echo(f"error: {where + ': ' if where else ''}{msg}", err=True)
        return 2
    except (SpecError, StoreError) as exc:  # NonFiniteError and ModelError are SpecErrors
        click.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted: finished points are in the store; rerun to resume", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run())
