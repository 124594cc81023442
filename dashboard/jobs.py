"""Scan and study jobs started from the dashboard as separate processes (the server never imports torch).

A job is ``python -m landscape --store S -q ARGS``, started with an argument list (never a shell
string) in its own session so it can be cancelled as a group. Two kinds:

- ``scan``: ARGS are ``scan KIND`` and the very flags a user would type (``dashboard.commands``
  builds them); the job's key is the key of the ScanSpec those flags give, parsed by the CLI's own
  code, so the form shows the key the job will compute.
- ``study``: ARGS are ``study jobs/<study key>.yaml``, the validated study (a preset or an upload)
  written with its dtype fixed, so its key does not depend on the device the job picks.

A job record ``job:<key>`` says its kind, who started it and when; submitting work that is already
running attaches to that job instead of starting another. Finished jobs keep their record, so
"My jobs" can show how they ended (their log), but not forever: starting a job first prunes the
finished ones beyond the newest ``keep_finished`` (record and job files; ``prune_jobs``). A running
job is never pruned; the scans it computed are results in the store and never touched.

A store may come from anyone, so nothing in it is trusted for a path or a process: the spec, log
and pid files are named by the (validated, hexadecimal) key under the store's own ``jobs/``
directory, never taken from a record, and are refused when they are symbolic links. A pid is only
reported running, or signalled, when that process is verifiably the job: same user, leader of its
own process group, and its command line is this store's job command for this key (a study's file is
this key's; a scan's flags give this key).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil  # a dependency of accelerate and peft, so always installed beside landscape
import yaml

from cache import Store
from dashboard.commands import point_args, scan_spec
from dashboard.settings import JOB_HISTORY
from landscape.core.specs import ScanSpec
from landscape.engine.scan import prepare_scan
from landscape.study.pipeline import study_key
from landscape.study.specs import StudySpec

_KEY = re.compile(r"[0-9a-f]{64}")
_LOG_TAIL_BYTES = 1 << 16
KINDS = ("scan", "study")
_JOB_FILES = (
    "log",
    "pid",
    "yaml",
    "exit",
)  # not ``point.yaml``: named by its source scan, shared by its points


class JobError(RuntimeError):
    """A job cannot be started (too many running, or the store's jobs directory is unsafe)."""


@dataclass
class Job:
    key: str
    pid: int | None
    started: float
    user: str | None
    kind: str = "scan"
    label: str = ""
    running: bool = True
    scans: tuple[str, ...] = ()  # a scan job's member scans (K directions), for its progress
    attached: bool = False  # True when this submission joined a job already running
    state: str = "running"  # running, finished, cancelled, failed, or stopped (no exit status)
    ended: float | None = None  # when its process exited (its exit file), if known
    code: int | None = None  # its exit status, if known

    @property
    def describe(self) -> str:
        """``finished 12:03:07 (41 s)``, ``failed (exit 2) …``, ``running for 12 s``."""
        if self.state == "running":
            return f"running for {time.time() - self.started:.0f} s"
        what = f"failed (exit {self.code})" if self.state == "failed" else self.state
        if self.ended is None:
            return what + (
                " (no exit status: killed, or run by another host)" if self.state == "stopped" else ""
            )
        at = time.strftime("%H:%M:%S", time.localtime(self.ended))
        return f"{what} {at} (after {self.ended - self.started:.0f} s)"


def _checked_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise JobError(f"not a job key: {str(key)[:80]!r}")
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


def job_command(store_dir: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "landscape", "--store", str(store_dir), "-q", *args]


def _args_give_key(store: Store, key: str, args: list[str]) -> bool:
    """Whether ``args`` (after ``-q``) are this store's job command for ``key``."""
    if args[:1] == ["study"]:
        return args == ["study", str(job_file(store, key, "yaml"))]
    if args[:1] != ["scan"]:
        return False
    if "--spec" in args:  # a point job's spec: only this store's own file, never a path from elsewhere
        at = args.index("--spec") + 1
        named = Path(args[at]) if at < len(args) else None
        if named is None or not _inside_store(store, named) or not named.name.endswith(".point.yaml"):
            return False
    try:
        return prepare_scan(scan_spec(args).spec, store).key == key
    except Exception:  # flags that do not parse or name a missing model are no job of ours
        return False


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
    head = ["-m", "landscape", "--store", str(store.root), "-q"]
    at = next((i for i in range(len(argv)) if argv[i : i + len(head)] == head), None)
    return at is not None and _args_give_key(store, key, argv[at + len(head) :])


def _job_pid(store: Store, key: str) -> int | None:
    path = job_file(store, key, "pid")
    if not _inside_store(store, path):
        return None
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


EXIT_ENV = "SAFETY_LANDSCAPE_JOB_EXIT"  # where a job's process writes its exit status (landscape.cli.run)


def _exit_status(store: Store, key: str) -> tuple[int | None, float | None]:
    """(exit code, when) from ``jobs/<key>.exit`` (never through a link), or (None, None)."""
    try:
        path = job_file(store, key, "exit")
        if not _inside_store(store, path):
            return None, None
        rec = json.loads(path.read_text())
        return int(rec["code"]), float(rec["ended"])
    except (OSError, ValueError, KeyError, TypeError, JobError):
        return None, None


def _state(rec: dict, running: bool, code: int | None) -> str:
    if running:
        return "running"
    if rec.get("cancelled") or code in (130, 143):
        return "cancelled"
    if code is None:
        return "stopped"
    return "finished" if code == 0 else "failed"


def _job(key: str, rec: dict, pid: int | None, running: bool, exit_status=(None, None)) -> Job:
    started, user, kind = rec.get("started"), rec.get("user"), rec.get("kind", "scan")
    scans = rec.get("scans")
    code, ended = exit_status
    return Job(
        key=key,
        pid=pid,
        started=float(started) if isinstance(started, (int, float)) else time.time(),
        user=user if isinstance(user, str) else None,
        kind=kind if kind in KINDS else "scan",
        label=str(rec.get("label", ""))[:200],
        running=running,
        scans=tuple(k for k in scans if isinstance(k, str) and _KEY.fullmatch(k))
        if isinstance(scans, list)
        else (key,),
        state=_state(rec, running, code),
        ended=ended,
        code=code,
    )


def all_jobs(store: Store) -> list[Job]:
    """Every job this store records, newest first; ``running`` only where the process is verified.
    Records under keys that are not job keys are dropped."""
    out = []
    for k in list(store.keys("job:")):
        key = k.removeprefix("job:")
        if not _KEY.fullmatch(key):
            store.delete(k)
            continue
        rec = store.get_json(k)
        rec = rec if isinstance(rec, dict) else {}
        pid = _job_pid(store, key)
        running = pid is not None and _is_job_process(store, key, pid)
        out.append(_job(key, rec, pid, running, (None, None) if running else _exit_status(store, key)))
    return sorted(out, key=lambda j: j.started, reverse=True)


def running_jobs(store: Store) -> list[Job]:
    """The jobs whose process is alive and verifiably theirs."""
    return [j for j in all_jobs(store) if j.running]


def job_for(store: Store, key: str) -> Job | None:
    return next((j for j in running_jobs(store) if j.key == key), None)


def prune_jobs(store: Store, keep_finished: int = JOB_HISTORY) -> list[str]:
    """Forget every finished job but the newest ``keep_finished``: its record and its files in
    ``jobs/`` (spec, log, pid; never through a link). Returns the keys dropped. Running jobs are
    always kept and do not count against ``keep_finished``. "Running" is verified on this host, so a
    job of another host sharing the store reads as finished: it is still kept while among the
    newest ``keep_finished``, and losing its record never stops its computation."""
    finished = [j for j in all_jobs(store) if not j.running]  # newest first
    dropped = []
    for job in finished[max(keep_finished, 0) :]:
        store.delete(f"job:{job.key}")
        for suffix in _JOB_FILES:
            path = job_file(store, job.key, suffix)
            if path.is_symlink() or _inside_store(store, path):
                path.unlink(missing_ok=True)  # a link itself is removed, never its target
        dropped.append(job.key)
    return dropped


def _launch(
    store: Store, key: str, kind: str, args: list[str], max_jobs: int, record: dict, keep_finished: int
) -> Job:
    folder = jobs_dir(store)
    if folder.is_symlink():
        raise JobError(f"{folder} is a symbolic link: refusing to write job files through it")
    folder.mkdir(exist_ok=True)
    with _launch_lock(store):
        existing = job_for(store, key)
        if existing is not None:
            existing.attached = True
            return existing
        prune_jobs(store, keep_finished)
        if len(running_jobs(store)) >= max_jobs:
            raise JobError(f"{max_jobs} job(s) already running: wait for one to finish or cancel it")
        return _start(store, key, kind, args, record)


@contextlib.contextmanager
def _launch_lock(store: Store):
    """Held from counting the running jobs to recording the new one, so dashboard replicas (or two
    visitors of one) launching at the same moment cannot both pass the job limit, or both start the
    same key. An advisory lock on ``jobs/launch.lock``, released when the holder exits."""
    try:
        fh = _open_no_follow(jobs_dir(store) / "launch.lock", os.O_APPEND)
    except OSError as exc:
        raise JobError(f"cannot open the jobs lock of {store.root}: {exc.strerror}") from None
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _start(store: Store, key: str, kind: str, args: list[str], record: dict) -> Job:
    try:
        if "spec_text" in record:
            with _open_no_follow(job_file(store, key, "yaml"), os.O_TRUNC) as fh:
                fh.write(record.pop("spec_text").encode())
        with _open_no_follow(job_file(store, key, "log"), os.O_APPEND) as fh:
            exit_file = job_file(store, key, "exit")
            if exit_file.exists() or exit_file.is_symlink():  # a rerun's status is its own
                exit_file.unlink()
            proc = subprocess.Popen(
                job_command(store.root, args),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, EXIT_ENV: str(exit_file)},
            )
        with _open_no_follow(job_file(store, key, "pid"), os.O_TRUNC) as fh:
            fh.write(str(proc.pid).encode())
    except OSError as exc:  # ELOOP: a link planted where a job file goes
        raise JobError(f"cannot write the job files of {key[:12]}: {exc.strerror}") from None
    record = dict(record, key=key, kind=kind, started=time.time())
    store.put_json(f"job:{key}", record)
    return _job(key, record, proc.pid, True)


def submit_scan(
    args: list[str], store: Store, max_jobs: int, user: str | None = None, keep_finished: int = JOB_HISTORY
) -> Job:
    """Start ``landscape scan ARGS`` (``args`` begin with ``scan KIND``), or attach to its job
    (starting one first prunes the finished jobs beyond the newest ``keep_finished``)."""
    parsed = scan_spec(args)
    scans = [prepare_scan(s, store).key for s in parsed.members]
    label = f"scan {args[1]} · {parsed.spec.model.source}"
    record = {"user": user, "label": label, "scans": scans}
    return _launch(store, scans[0], "scan", args, max_jobs, record, keep_finished)


def submit_point(
    store: Store,
    source: str,
    spec: ScanSpec,
    point: tuple[float, float | None],
    max_new_tokens: int,
    max_jobs: int,
    user: str | None = None,
    keep_finished: int = JOB_HISTORY,
) -> tuple[Job, list[str]]:
    """Start a one-point scan of scan ``source``'s spec at ``point`` = (α, β) with full responses
    (no early stop) and ``max_new_tokens``; returns the job and its arguments. The spec goes to
    ``jobs/<source>.point.yaml`` (the same text for every point of that scan), the point on the flags."""
    path = job_file(store, source, "point.yaml")
    folder = jobs_dir(store)
    if folder.is_symlink():
        raise JobError(f"{folder} is a symbolic link: refusing to write job files through it")
    folder.mkdir(exist_ok=True)
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode()
    if not (_inside_store(store, path) and path.read_bytes() == text):
        try:
            with _open_no_follow(path, os.O_TRUNC) as fh:
                fh.write(text)
        except OSError as exc:
            raise JobError(f"cannot write the point spec of {source[:12]}: {exc.strerror}") from None
    args = point_args(str(path), spec, point[0], point[1], max_new_tokens)
    return submit_scan(args, store, max_jobs, user, keep_finished), args


def submit_study(
    spec: StudySpec, store: Store, max_jobs: int, user: str | None = None, keep_finished: int = JOB_HISTORY
) -> Job:
    """Start ``landscape study jobs/<key>.yaml`` for a validated study, or attach to its job."""
    key = study_key(spec, store)
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    args = ["study", str(job_file(store, key, "yaml"))]
    record = {"user": user, "label": f"study {spec.name}", "scans": [], "spec_text": text}
    return _launch(store, key, "study", args, max_jobs, record, keep_finished)


def cancel(store: Store, key: str) -> bool:
    """Stop a running job (its finished points and stages stay in the store); False when none is ours."""
    job = job_for(store, key)
    if job is None or job.pid is None or not _is_job_process(store, key, job.pid):
        return False
    rec = store.get_json(f"job:{key}")
    store.put_json(f"job:{key}", dict(rec if isinstance(rec, dict) else {}, cancelled=time.time()))
    try:
        with _open_no_follow(job_file(store, key, "log"), os.O_APPEND) as fh:
            fh.write(f"\ncancelled from the dashboard at {time.strftime('%H:%M:%S')}\n".encode())
    except OSError:
        pass
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
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


# (store root, job key, ended) → seconds that finished job spent outside its points: a finished job
# never changes, so each is read once, not on every rerun of the Run page
_OVERHEADS: dict[tuple[str, str, float], float] = {}


def startup_history(store: Store) -> tuple[float | None, int]:
    """Median seconds a finished scan job spent outside its points (start, model load, snapshot,
    writing): its wall time minus the ``point_s`` of the points it stored; (None, 0) without one."""
    overheads = []
    for job in all_jobs(store):
        if job.kind != "scan" or job.state != "finished" or job.ended is None:
            continue
        memo = (str(store.root), job.key, job.ended)
        if memo not in _OVERHEADS:
            _OVERHEADS[memo] = _overhead(store, job)
        overheads.append(_OVERHEADS[memo])
    if not overheads:
        return None, 0
    return statistics.median(overheads), len(overheads)


def _overhead(store: Store, job: Job) -> float:
    inside = 0.0
    for key in job.scans:
        rec = store.scan_record(key)
        if rec is None:
            continue
        g = store.scan_grid(key, ("point_s", "finished"), rec).values
        done = (g["finished"] >= job.started) & (g["finished"] <= job.ended + 1)
        inside += float(np.nansum(np.where(done, g["point_s"], 0.0)))
    return max(0.0, job.ended - job.started - inside)
