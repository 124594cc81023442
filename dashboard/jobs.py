"""Scan jobs started from the dashboard as separate processes (the server never imports torch).

A job is ``python -m landscape --store S -q scan KIND --spec FILE``, started with an argument list
(never a shell string) in its own session so it can be cancelled as a group. The spec file is the
exact ``ScanSpec``, so the job computes exactly the scan whose key the form showed. A job record
``job:<scan key>`` in the store says who started it and when; submitting a spec whose scan is
already running attaches to that job instead of starting another.

A store may come from anyone, so nothing in it is trusted for a path or a process: the spec, log
and pid files are named by the (validated, hexadecimal) scan key under the store's own ``jobs/``
directory, never taken from a record, and are refused when they are symbolic links. A pid is only
reported running, or signalled, when that process is verifiably the job: same user, leader of its
own process group, and its command line is this store's job command for this key.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil  # a dependency of accelerate and peft, so always installed beside landscape
import yaml

from cache import Store
from landscape.core.specs import ScanSpec
from landscape.engine.scan import prepare_scan

_KEY = re.compile(r"[0-9a-f]{64}")
_LOG_TAIL_BYTES = 1 << 16


class JobError(RuntimeError):
    """A job cannot be started (too many running, or the store's jobs directory is unsafe)."""


@dataclass
class Job:
    key: str
    pid: int
    started: float
    user: str | None
    attached: bool = False  # True when this submission joined a job already running


def _checked_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise JobError(f"not a scan key: {str(key)[:80]!r}")
    return key


def jobs_dir(store: Store) -> Path:
    return store.root / "jobs"


def job_file(store: Store, key: str, suffix: str) -> Path:
    """``jobs/<key>.<suffix>`` of this store (spec ``yaml``, ``log``, ``pid``)."""
    return jobs_dir(store) / f"{_checked_key(key)}.{suffix}"


def _inside_store(store: Store, path: Path) -> bool:
    """``path`` is a regular file (not a link) whose real location is this store's jobs directory."""
    if path.is_symlink() or jobs_dir(store).is_symlink() or not path.is_file():
        return False
    return path.resolve().parent == jobs_dir(store).resolve()


def _open_no_follow(path: Path, flags: int):
    """Open for writing without following a link planted at ``path`` (a crafted store's trap)."""
    fd = os.open(path, flags | os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, "ab" if flags & os.O_APPEND else "wb")


def _reap(pid: int) -> None:
    try:  # reap our own finished children so they do not linger as zombies
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _is_job_process(store: Store, key: str, pid: int) -> bool:
    """Whether ``pid`` is a live job of this store computing ``key`` (so it is safe to signal)."""
    if pid <= 1 or pid == os.getpid():
        return False
    _reap(pid)
    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        if proc.status() == psutil.STATUS_ZOMBIE or proc.uids().real != os.getuid():
            return False
        if os.getpgid(pid) != pid:  # cancel signals the group: only a group of its own
            return False
    except (psutil.Error, OSError):
        return False
    head = ["-m", "landscape", "--store", str(store.root)]
    has_head = any(argv[i : i + len(head)] == head for i in range(len(argv)))
    return has_head and argv[-2:] == ["--spec", str(job_file(store, key, "yaml"))]


def _job_pid(store: Store, key: str) -> int | None:
    path = job_file(store, key, "pid")
    if not _inside_store(store, path):
        return None
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_jobs(store: Store) -> list[Job]:
    """The jobs whose process is alive and verifiably theirs; other job records are dropped."""
    jobs = []
    for k in list(store.keys("job:")):
        key = k.removeprefix("job:")
        rec = store.get_json(k)
        rec = rec if isinstance(rec, dict) else {}
        pid = _job_pid(store, key) if _KEY.fullmatch(key) else None
        if pid is not None and _is_job_process(store, key, pid):
            started = rec.get("started")
            user = rec.get("user")
            jobs.append(
                Job(
                    key=key,
                    pid=pid,
                    started=float(started) if isinstance(started, (int, float)) else time.time(),
                    user=user if isinstance(user, str) else None,
                )
            )
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
        raise JobError(f"{max_jobs} job(s) already running: wait for one to finish or cancel it")
    folder = jobs_dir(store)
    if folder.is_symlink():
        raise JobError(f"{folder} is a symbolic link: refusing to write job files through it")
    folder.mkdir(exist_ok=True)
    spec_file = job_file(store, key, "yaml")
    try:
        with _open_no_follow(spec_file, os.O_TRUNC) as fh:
            fh.write(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode())
        with _open_no_follow(job_file(store, key, "log"), os.O_APPEND) as fh:
            proc = subprocess.Popen(
                job_command(spec, store.root, spec_file),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with _open_no_follow(job_file(store, key, "pid"), os.O_TRUNC) as fh:
            fh.write(str(proc.pid).encode())
    except OSError as exc:  # ELOOP: a link planted where a job file goes
        raise JobError(f"cannot write the job files of {key[:12]}: {exc.strerror}") from None
    job = Job(key=key, pid=proc.pid, started=time.time(), user=user)
    store.put_json(f"job:{key}", {"key": key, "started": job.started, "user": user})
    return job


def cancel(store: Store, key: str) -> bool:
    """Stop a running job (its finished points stay in the store); False when none is ours."""
    job = job_for(store, key)
    if job is None or not _is_job_process(store, key, job.pid):
        return False
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    store.delete(f"job:{key}")
    return True


def log_tail(store: Store, key: str, lines: int = 5) -> str:
    """The last ``lines`` lines of the job's log (``jobs/<key>.log`` of this store, never a link)."""
    try:
        path = job_file(store, key, "log")
        if not _inside_store(store, path):
            return ""
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except (OSError, JobError):
        return ""
    return "\n".join(text.splitlines()[-lines:])
