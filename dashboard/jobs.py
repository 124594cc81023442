"""Scan jobs started from the dashboard as separate processes (the server never imports torch).

A job is ``python -m landscape --store S -q scan KIND --spec FILE``, started with an argument list
(never a shell string) in its own session so it can be cancelled as a group. The spec file is the
exact ``ScanSpec``, so the job computes exactly the scan whose key the form showed. A job record
``job:<scan key>`` in the store says who started it and its pid; submitting a spec whose scan is
already running attaches to that job instead of starting another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cache import Store
from landscape.scan import prepare_scan
from landscape.specs import ScanSpec


@dataclass
class Job:
    key: str
    pid: int
    started: float
    user: str | None
    log: str
    attached: bool = False  # True when this submission joined a job already running


def _alive(pid: int) -> bool:
    try:  # reap our own finished children so they do not linger as zombies
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a reused pid that is not ours does not count
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"landscape" not in cmdline:
            return False
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def running_jobs(store: Store) -> list[Job]:
    jobs = []
    for k in list(store.keys("job:")):
        rec = store.get_json(k)
        if rec and _alive(rec["pid"]):
            jobs.append(Job(**{f: rec[f] for f in ("key", "pid", "started", "user", "log")}))
        else:
            store.delete(k)
    return jobs


def job_for(store: Store, key: str) -> Job | None:
    return next((j for j in running_jobs(store) if j.key == key), None)


def scan_kind(spec: ScanSpec) -> str:
    return {"interpolation": "interpolate"}.get(spec.kind, spec.kind)


def job_command(spec: ScanSpec, store_dir: Path, spec_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "landscape",
        "--store",
        str(store_dir),
        "-q",
        "scan",
        scan_kind(spec),
        "--spec",
        str(spec_file),
    ]


def submit(spec: ScanSpec, store: Store, max_jobs: int, user: str | None = None) -> Job:
    """Start ``spec`` as a job, or attach to the job already computing it."""
    key = prepare_scan(spec, store).key
    existing = job_for(store, key)
    if existing is not None:
        existing.attached = True
        return existing
    if len(running_jobs(store)) >= max_jobs:
        raise RuntimeError(f"{max_jobs} job(s) already running: wait for one to finish or cancel it")
    jobs_dir = store.root / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    spec_file = jobs_dir / f"{key}.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    log = jobs_dir / f"{key}.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            job_command(spec, store.root, spec_file),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    job = Job(key=key, pid=proc.pid, started=time.time(), user=user, log=str(log))
    store.put_json(f"job:{key}", job.__dict__ | {"attached": False})
    return job


def cancel(store: Store, key: str) -> bool:
    """Stop a running job (its finished points stay in the store)."""
    job = job_for(store, key)
    if job is None:
        return False
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    store.delete(f"job:{key}")
    return True


def log_tail(job: Job, lines: int = 5) -> str:
    try:
        return "\n".join(Path(job.log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
