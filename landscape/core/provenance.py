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


@functools.cache
def _software() -> dict:
    import platform

    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }


def point_provenance(
    device: str, worker: str, node: str | None = None, batch_size: int | None = None
) -> dict:
    """Where and with what one grid point was computed (points of one scan may come from several
    machines): library versions, the device's name, host, worker id, (under Ray) node id, and the
    decoding batch size (rows decoded together at most): in bf16 on a GPU a row's logits, and so a
    near-tie token, can change with the batch, so a point's responses are reproduced exactly only
    at its batch size (on CPU in float32 they do not depend on it; bench/bench_batch.py)."""
    import os
    import platform
    import socket

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = platform.processor() or platform.machine() or "cpu"
    return {
        **_software(),
        "device": device,
        "device_name": name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "worker": worker,
        "node": node,
        "batch_size": batch_size,
        "commit": git_commit(),
    }
