"""Every command's --help documents every option, and every flag a message names exists (issue 25)."""

from __future__ import annotations

import ast
import re

import click
from click.testing import CliRunner

from landscape.cli import main

from ...conftest import ROOT

# flags named in strings that belong to other programs (pip, git), or every program's --help
FOREIGN = {
    "--help",
    "--no-deps",
    "--porcelain",
    "--untracked-files",
    "--flag",
    "--server",
}  # --flag: "scan KIND --flag value"; --server: Streamlit's own --server.port etc. (dashboard/replicas.py)


def _commands(group: click.Group, path=()):
    yield path, group
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def known_flags() -> set[str]:
    flags = set()
    for _path, cmd in _commands(main):
        for p in cmd.params:
            if isinstance(p, click.Option):
                flags.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("--"))
    return flags


def test_every_option_of_every_command_has_help_text():
    missing = []
    for path, cmd in _commands(main):
        res = CliRunner().invoke(main, [*path, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, path
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip():
                missing.append(f"landscape {' '.join(path)} {p.opts[0]}")
    assert not missing, missing


def test_help_shows_the_defaults_that_change_a_result():
    """A default that changes what a command computes is printed in its help."""

    def help_of(*path):
        return " ".join(CliRunner().invoke(main, [*path, "--help"]).output.split())

    scan = help_of("scan")
    for text in (
        "-0.5 0.5",
        "-0.25 1.25 for interpolate",
        "default: 21",
        "13 for interpolate",
        "[default: all]",
        "[default: goal, else prompt]",
        "[default: the scan's own]",
    ):
        assert text in scan, text
    assert "[default: bounds]" in help_of("visage")
    assert "[default: 80" in help_of("align")
    export = help_of("export")
    assert "default: double-column" in export and "default: 50.0" in export and "suffix of --out" in export


def test_every_flag_a_message_names_exists():
    """`needs label_map (e.g. --judge-label-map)` named an option no command has."""
    from landscape.figures.export import CHROMIUM_ARGS

    known = known_flags() | FOREIGN | {a.split("=")[0] for a in CHROMIUM_ARGS}  # Chromium's own
    unknown = {}
    for folder in ("landscape", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", node.value):
                        if flag not in known:
                            unknown.setdefault(flag, set()).add(str(path.relative_to(ROOT)))
    assert not unknown, unknown


def test_one_name_per_concept_with_the_old_spellings_hidden_for_a_release():
    """Issue 25: `demo --prompts` was a count where `scan --prompts` is a source; align had
    --base/--eval-prompts/--eval-limit for --model/--prompts/--limit."""
    from landscape.cli.study import demo
    from landscape.cli.train import align

    demo_help = CliRunner().invoke(main, ["demo", "--help"]).output
    assert "--limit" in demo_help and "--points-2d" in demo_help and "--prompts" not in demo_help
    assert demo.make_context("demo", ["--prompts", "8"]).params["old_prompts"] == 8
    align_help = CliRunner().invoke(main, ["align", "--help"]).output
    assert all(f in align_help for f in ("--model", "--prompts", "--limit")) and "--base" not in align_help
    assert align.make_context("align", ["--eval-limit", "2"]).params["old_eval_limit"] == 2
