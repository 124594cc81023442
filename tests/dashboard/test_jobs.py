"""Job records are not trusted: paths come from the store root and key, pids are verified first.

A store may be crafted: a ``job:<key>`` record naming /etc/passwd as its log and a foreign pid (one
whose command line even says "landscape") must neither be read nor signalled, from the run page or
the jobs API. A genuine job (a sleeping process with the job command line) is listed, its log read
and cancelled; links planted where job files go are neither followed nor written through.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache import Store
from dashboard import jobs
from dashboard.commands import ScanChoice, scan_args, scan_spec

from .test_pages import open_page

SLEEPER = "import time; print('job started', flush=True); time.sleep(120)"


@pytest.fixture
def foreign():
    """Someone else's process in its own session, 'landscape' in its command line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "safety-landscape"], start_new_session=True
    )
    yield proc
    proc.kill()
    proc.wait()


def _craft(store_dir, key: str, pid: int) -> None:
    with Store(store_dir) as store:
        store.put_json(
            f"job:{key}", {"key": key, "pid": pid, "started": time.time(), "user": None, "log": "/etc/passwd"}
        )
        folder = store_dir / "jobs"
        folder.mkdir(exist_ok=True)
        (folder / f"{key}.pid").write_text(str(pid))  # a crafted store crafts this too
        log = folder / f"{key}.log"
        log.unlink(missing_ok=True)
        log.symlink_to("/etc/passwd")


def _clean(store_dir, key: str) -> None:
    with Store(store_dir) as store:
        store.delete(f"job:{key}")
    for suffix in ("pid", "log"):
        (store_dir / "jobs" / f"{key}.{suffix}").unlink(missing_ok=True)


def test_run_page_neither_reads_nor_signals_a_crafted_job_record(app_env, foreign):
    store_dir, keys = app_env
    key = keys["1d"]  # a real scan, so the page would show that job's progress and log
    _craft(store_dir, key, foreign.pid)
    try:
        at = open_page("run_scan")
        shown = "\n".join(c.value for c in at.code)
        passwd_tail = Path("/etc/passwd").read_text().strip().splitlines()[-1]
        assert passwd_tail not in shown
        assert not [b for b in at.button if b.label == "Cancel"]
        assert any("No scan running" in c.value for c in at.caption), [c.value for c in at.caption]
        with Store(store_dir) as store:
            assert jobs.running_jobs(store) == []
            _craft(store_dir, key, foreign.pid)
            assert jobs.cancel(store, key) is False
            assert jobs.log_tail(store, key) == ""
        time.sleep(0.2)
        assert foreign.poll() is None  # still alive: never signalled
    finally:
        _clean(store_dir, key)


def test_record_fields_never_name_paths_or_keys(store, foreign):
    store.put_json("job:../../etc/passwd", {"key": "x", "pid": foreign.pid, "log": "/etc/passwd"})
    assert jobs.running_jobs(store) == []
    assert store.get_json("job:../../etc/passwd") is None  # dropped, not followed
    with pytest.raises(jobs.JobError):
        jobs.job_file(store, "../../etc/passwd", "log")


@pytest.fixture
def fake_job(monkeypatch):
    """Jobs run a sleeping process with the job command line instead of a real scan."""

    def command(store_dir, args):
        real = jobs.job_command.__wrapped__(store_dir, args)
        return [real[0], "-c", SLEEPER, *real[1:]]

    command.__wrapped__ = jobs.job_command
    monkeypatch.setattr(jobs, "job_command", command)


def _args(tiny_model) -> list[str]:
    return scan_args(ScanChoice(model=str(tiny_model), points=3, limit=2))


def test_a_genuine_job_is_listed_read_attached_and_cancelled(store, tiny_model, fake_job):
    job = jobs.submit_scan(_args(tiny_model), store, max_jobs=1)
    proc = jobs.psutil.Process(job.pid)
    try:
        assert [j.key for j in jobs.running_jobs(store)] == [job.key]
        assert jobs.submit_scan(_args(tiny_model), store, max_jobs=1).attached
        deadline = time.time() + 30
        while "job started" not in jobs.log_tail(store, job.key) and time.time() < deadline:
            time.sleep(0.2)
        assert jobs.log_tail(store, job.key) == "job started"
        assert jobs.cancel(store, job.key) is True
        proc.wait(timeout=10)
        assert jobs.running_jobs(store) == []
        assert [(j.key, j.running) for j in jobs.all_jobs(store)] == [(job.key, False)]  # kept for "My jobs"
    finally:
        if proc.is_running():
            proc.kill()


def test_links_planted_in_the_jobs_directory_are_not_followed(store, tiny_model, fake_job, tmp_path):
    from landscape.engine.scan import prepare_scan

    key = prepare_scan(scan_spec(_args(tiny_model)).spec, store).key
    target = tmp_path / "victim.txt"
    target.write_text("untouched\n")
    folder = store.root / "jobs"
    folder.mkdir()
    (folder / f"{key}.log").symlink_to(target)
    with pytest.raises(jobs.JobError, match="cannot write the job files"):
        jobs.submit_scan(_args(tiny_model), store, max_jobs=1)
    assert target.read_text() == "untouched\n"
    assert jobs.running_jobs(store) == []


def _finished(store, n: int) -> list[str]:
    """``n`` finished jobs (records and files, no process), started at t = 10, 11, …: newest last."""
    keys = [f"{i:064x}" for i in range(1, n + 1)]
    (store.root / "jobs").mkdir(exist_ok=True)
    for t, key in enumerate(keys, start=10):
        store.put_json(f"job:{key}", {"key": key, "kind": "scan", "started": float(t), "user": None})
        for suffix in ("log", "pid"):
            (store.root / "jobs" / f"{key}.{suffix}").write_text("1")
    return keys


def test_finished_jobs_beyond_the_newest_n_are_pruned_never_a_running_one(store, tiny_model, fake_job):
    old = _finished(store, 5)
    job = jobs.submit_scan(_args(tiny_model), store, max_jobs=1, keep_finished=2)  # starting one prunes
    proc = jobs.psutil.Process(job.pid)
    try:
        assert [(j.key, j.running) for j in jobs.all_jobs(store)] == [
            (job.key, True),
            (old[4], False),
            (old[3], False),
        ]
        assert sorted(p.name for p in (store.root / "jobs").glob("0*")) == sorted(
            f"{k}.{s}" for k in old[3:] for s in ("log", "pid")
        )
        record = store.get_json(f"job:{job.key}")
        store.put_json(f"job:{job.key}", dict(record, started=1.0))  # the oldest of all, but running
        assert jobs.prune_jobs(store, 0) == [old[4], old[3]]
        assert [j.key for j in jobs.all_jobs(store)] == [job.key]
        assert job_file_names(store) == sorted(f"{job.key}.{s}" for s in ("log", "pid"))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert jobs.prune_jobs(store, 0) == [job.key] and job_file_names(store) == []


def job_file_names(store) -> list[str]:
    """A job's files in jobs/; launch.lock (the launch lock every replica shares) is never pruned."""
    assert (store.root / "jobs" / "launch.lock").is_file()
    return sorted(p.name for p in (store.root / "jobs").iterdir() if p.name != "launch.lock")


def test_job_history_setting():
    from dashboard.settings import SettingsError, load_settings

    assert load_settings({}).job_history == 200
    assert load_settings({"SAFETY_LANDSCAPE_JOB_HISTORY": "0"}).job_history == 0
    for bad, why in (("-1", "0 or more"), ("many", "a whole number")):
        with pytest.raises(SettingsError, match=f"job_history must be {why}"):
            load_settings({"SAFETY_LANDSCAPE_JOB_HISTORY": bad})
