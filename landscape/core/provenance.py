"""Provenance stamped on every stored record: package version, git commit, time."""

from __future__ import annotations

import functools
import subprocess
import time
from pathlib import Path

from landscape import __version__


@functools.cache
def git_commit() -> str:
    """The commit of the checkout this package runs from, '+dirty' when modified, else 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance() -> dict:
    return {"version": __version__, "commit": git_commit(), "created": time.time()}
