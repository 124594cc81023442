"""Command line: ``landscape`` / ``python -m landscape``.

The CLI only builds specs (from flags and/or a YAML file, ``cli.flags``) and calls the same public
functions a notebook would (``align_model``, ``scan_family``, ``estimate_scan``, ``run_study``).
One module per command group: ``scan`` (scan, estimate), ``store`` (list, show, visage, export),
``train`` (align), ``study`` (study, demo), ``judge`` (rejudge, agree); shared options in ``options``. User errors end in one
line on stderr and exit status 2, never a traceback; finished points are already stored, so
nothing computed is lost.
"""

from __future__ import annotations

import sys

import click

from landscape import __version__
from landscape.cli import judge, scan, store, study, train
from landscape.cli.options import (
    DEFAULT_STORE,
    Ctx,
    auto_device,
    check_device_available,
    check_device_name,
)

__all__ = ["Ctx", "main", "run"]

# the commands that load a model: only they pay for detecting the device (importing torch)
NEEDS_DEVICE = {"align", "scan", "estimate", "demo", "study", "attack-search", "rejudge"}
# the commands that only read a store: on a path holding none they say so and create nothing
READING = {"list", "show", "visage", "export", "agree", "rejudge"}


# the group's options that take a value, and its flags: either may also follow the command's name
GLOBAL_VALUES = ("--store", "--device", "--batch-size")
GLOBAL_FLAGS = ("-q", "--quiet")


def hoist_global_options(args: list[str]) -> list[str]:
    """``landscape list --store S`` as ``landscape --store S list``: the global options written
    after the command's name move before it (up to a ``--``), so they work in either place."""
    i = 0
    while i < len(args) and args[i].startswith("-"):  # the group's own options, then the command
        i += 2 if args[i] in GLOBAL_VALUES else 1
    if i >= len(args):
        return args
    head, cmd, rest, moved, j = args[:i], args[i], [], [], i + 1
    while j < len(args):
        a = args[j]
        if a == "--":
            rest += args[j:]
            break
        if a in GLOBAL_VALUES:  # with its value
            if j + 1 == len(args):
                raise click.UsageError(f"option {a} requires a value")
            moved += args[j : j + 2]
            j += 2
            continue
        if a in GLOBAL_FLAGS or a.split("=", 1)[0] in GLOBAL_VALUES and "=" in a:
            moved.append(a)
        else:
            rest.append(a)
        j += 1
    return head + moved + [cmd] + rest


class LandscapeGroup(click.Group):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_options(list(args)))


@click.group(
    cls=LandscapeGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="The global options may also follow the command (landscape list --store S). "
    "Documentation: docs/ in the repository (make docs), CLI reference docs/reference/cli.md.",
)
@click.version_option(__version__, prog_name="landscape")
@click.option(
    "--store",
    "store_dir",
    envvar="SAFETY_LANDSCAPE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="Result store directory (env SAFETY_LANDSCAPE_STORE).",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=lambda ctx, param, value: check_device_name(value),
    help="cpu, cuda, cuda:N or auto (CUDA when available).",
)
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Prompts generated together per forward pass.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or log lines.")
@click.pass_context
def main(ctx, store_dir, device, batch_size, quiet):
    """Safety Landscape: safety basins, VISAGE and defences for language models."""
    if ctx.invoked_subcommand in NEEDS_DEVICE:  # checked before anything is written
        device = auto_device() if device == "auto" else check_device_available(device)
    create = ctx.invoked_subcommand not in READING
    ctx.obj = Ctx(store_dir, "cpu" if device == "auto" else device, batch_size, quiet, create)


for command in (
    scan.scan,
    scan.estimate,
    train.align,
    store.visage,
    store.list_cmd,
    store.show,
    study.demo,
    study.study,
    study.attack_search,
    store.export,
    judge.rejudge,
    judge.agree,
):
    main.add_command(command)


def run(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit 2. Run as a dashboard job
    (``SAFETY_LANDSCAPE_JOB_EXIT`` set), SIGTERM (Cancel) stops it like Ctrl-C, and its exit status
    and time are written to that file so the dashboard tells finished, cancelled and failed apart."""
    import json
    import os
    import signal
    import time

    exit_file = os.environ.get("SAFETY_LANDSCAPE_JOB_EXIT")
    if exit_file:

        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
    code = 1
    try:
        code = _run(argv)
    finally:
        if exit_file:
            try:
                with open(exit_file, "w") as fh:
                    json.dump({"code": code, "ended": time.time()}, fh)
            except OSError:
                pass
    return code


def _run(argv=None) -> int:
    import warnings

    # transformers' own deprecation notices (peft triggers them) are not the user's problem
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    from pydantic import ValidationError

    from cache import StoreError
    from landscape.core.specs import SpecError, error_line

    try:
        code = main.main(args=argv, prog_name="landscape", standalone_mode=False)
        if isinstance(code, int):  # click returns Exit codes instead of raising when not standalone
            return code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("interrupted: finished points are in the store; rerun to resume", err=True)
            return 130
        click.echo("error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return 2
    except ValidationError as exc:
        click.echo(f"error: {error_line(exc)}", err=True)
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
