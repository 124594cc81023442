"""Artifacts: files in the store that are built once under a key and then served from it.

Aligned models, fine-tuning runs, defended models, security vectors, directions and GGUF
conversions all follow one pattern, kept here: look the key up; otherwise build into a staging
directory, time the build, stamp provenance and commit atomically (``Store.commit_artifact``).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cache import Store
from landscape.core.provenance import provenance


@dataclass(frozen=True)
class Artifact:
    """A stored artifact: its files under ``path`` and its ``record``; ``cached``: served from the
    store (False: built by this call)."""

    key: str
    path: Path
    record: dict
    cached: bool


def cached_artifact(store: Store, kind: str, key: str, build: Callable[[Path], dict]) -> Artifact:
    """The artifact ``kind``/``key`` from ``store``, built first when absent.

    ``build(staging)`` writes the files into the (empty) staging directory and returns the record's
    fields; the record also gets ``elapsed_s`` (the build's wall time), provenance and the building
    process (``host``, ``pid``). A build that raises leaves nothing behind. When another process
    commits the same key first, its artifact is kept and returned (``Store.commit_artifact``: the
    first writer wins).
    """
    record = store.artifact(kind, key)
    if record is not None:
        return Artifact(key, store.artifact_dir(kind, key), record, cached=True)
    staging = store.staging_dir(kind)
    try:
        t0 = time.perf_counter()
        record = {
            **build(staging),
            "elapsed_s": time.perf_counter() - t0,
            **provenance(),
            "host": socket.gethostname(),  # where it was built: a study's Ray tasks build in workers
            "pid": os.getpid(),
        }
        path = store.commit_artifact(kind, key, staging, record)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Artifact(key, path, store.artifact(kind, key) or record, cached=False)
