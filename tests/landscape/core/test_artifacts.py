"""``cached_artifact``: built once, then served from the store; a failed build leaves nothing, nor\ndoes a SIGKILLed one once the next build has started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache import Store
from landscape.core.artifacts import Artifact, cached_artifact


class Builder:
    def __init__(self, fail: bool = False):
        self.calls, self.fail = 0, fail

    def __call__(self, staging):
        self.calls += 1
        (staging / "w.bin").write_bytes(b"weights")
        if self.fail:
            raise RuntimeError("build failed")
        return {"losses": [1.5, 0.5], "note": "é"}


def _litter(store):
    return sorted(p.name for p in (store.root / "artifacts" / "models").iterdir())


def test_built_once_then_served_from_the_store(store):
    build = Builder()
    first = cached_artifact(store, "models", "k1", build)
    assert isinstance(first, Artifact) and not first.cached and build.calls == 1
    assert (
        first.path == store.artifact_dir("models", "k1") and (first.path / "w.bin").read_bytes() == b"weights"
    )
    again = cached_artifact(store, "models", "k1", build)
    assert again.cached and build.calls == 1
    assert again == Artifact("k1", first.path, first.record, cached=True)
    assert _litter(store) == ["k1"]  # no staging directory left behind


def test_record_has_the_fields_timing_and_provenance_and_round_trips(tmp_path):
    with Store(tmp_path / "s") as store:
        built = cached_artifact(store, "models", "k1", Builder()).record
    assert built["losses"] == [1.5, 0.5] and built["note"] == "é"
    assert built["elapsed_s"] >= 0 and {"version", "commit", "created"} <= built.keys()
    with Store(tmp_path / "s") as reopened:  # another process, later
        served = cached_artifact(reopened, "models", "k1", Builder(fail=True))
    assert served.cached and served.record == json.loads(json.dumps(built))


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(store):
    with pytest.raises(RuntimeError, match="build failed"):
        cached_artifact(store, "models", "k1", Builder(fail=True))
    assert store.artifact("models", "k1") is None and _litter(store) == []
    build = Builder()
    assert not cached_artifact(store, "models", "k1", build).cached and build.calls == 1


def test_a_concurrent_builder_gets_the_first_artifact(store):
    """Another process committed the key while this one was building: its artifact is returned."""

    def build(staging):
        other = store.staging_dir("models")
        (other / "w.bin").write_bytes(b"first")
        store.commit_artifact("models", "k1", other, {"by": "other"})
        (staging / "w.bin").write_bytes(b"second")
        return {"by": "me"}

    art = cached_artifact(store, "models", "k1", build)
    assert art.record == {"by": "other"} and (art.path / "w.bin").read_bytes() == b"first"
    assert _litter(store) == ["k1"]


_BUILDER = """
import sys, time
from pathlib import Path
from cache import Store
from landscape.core.artifacts import cached_artifact

def build(staging):
    (staging / "w.bin").write_bytes(b"half")
    Path(sys.argv[3]).write_text(str(staging))  # mid-build: tell the test where
    time.sleep(600)
    return {}

cached_artifact(Store(sys.argv[1]), "models", sys.argv[2], build)
"""


def _start_builder(tmp_path, store, key):
    """A real process that builds ``key`` and hangs mid-build; returns it and its staging dir."""
    marker = tmp_path / f"{key}.staging"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.Popen([sys.executable, "-c", _BUILDER, str(store.root), key, str(marker)], env=env)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "builder did not start"
        time.sleep(0.05)
    return proc, Path(marker.read_text())


def test_a_sigkilled_builders_staging_is_swept_and_a_live_ones_kept(tmp_path, store):
    """SIGKILL a real process mid-build: the rerun builds, its orphan is gone; a staging directory
    of a builder still running is left alone."""
    dead, orphan = _start_builder(tmp_path, store, "k1")
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert (orphan / "w.bin").exists()  # the SIGKILLed build's leftovers
    live, live_staging = _start_builder(tmp_path, store, "k2")
    try:
        art = cached_artifact(store, "models", "k1", Builder())
        assert not art.cached and (art.path / "w.bin").read_bytes() == b"weights"
        assert not orphan.exists()
        assert (live_staging / "w.bin").read_bytes() == b"half"
        assert _litter(store) == sorted(["k1", live_staging.name])
        assert store.sweep_staging() == []
    finally:
        live.kill()
        live.wait()
    assert store.sweep_staging() == [live_staging] and _litter(store) == ["k1"]
