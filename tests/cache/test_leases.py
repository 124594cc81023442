"""Scan leases: one holder at a time, expiry, takeover from a dead process, atomic under contention."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from cache import Store, new_holder

from ..conftest import ROOT


def test_a_held_lease_is_refused_to_another_holder_and_kept_by_its_own(store):
    a, b = new_holder(), new_holder()
    assert store.acquire_lease("k", a, ttl_s=30).holder == a
    got = store.acquire_lease("k", b, ttl_s=30)
    assert got.holder == a and not got.expired()
    assert store.acquire_lease("k", a, ttl_s=30).holder == a  # re-entrant for its holder
    assert store.renew_lease("k", a, ttl_s=30) and not store.renew_lease("k", b, ttl_s=30)
    store.release_lease("k", b)  # not b's: left alone
    assert store.lease("k").holder == a
    store.release_lease("k", a)
    assert store.lease("k") is None and store.acquire_lease("k", b, ttl_s=30).holder == b


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew_it(store):
    a, b = new_holder(), new_holder()
    store.acquire_lease("k", a, ttl_s=0.2)
    assert store.acquire_lease("k", b, ttl_s=30).holder == a
    time.sleep(0.3)
    assert store.lease("k").expired()
    assert store.acquire_lease("k", b, ttl_s=30).holder == b
    assert not store.renew_lease("k", a, ttl_s=30)  # a learns that it lost the scan


def test_a_dead_holder_on_this_host_is_taken_over_at_once(store):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(proc.stdout)  # that process has exited
    host = new_holder().rsplit(":", 2)[0]
    store.put_json("lease:k", {"holder": f"{host}:{dead_pid}:x", "expires_at": time.time() + 3600})
    assert store.lease("k").holder_dead()
    me = new_holder()
    assert store.acquire_lease("k", me, ttl_s=30).holder == me
    # a live holder on another host is never judged dead by its pid
    store.put_json("lease:k", {"holder": f"other-host:{dead_pid}:x", "expires_at": time.time() + 3600})
    assert not store.lease("k").holder_dead()
    assert store.acquire_lease("k", me, ttl_s=30).holder == f"other-host:{dead_pid}:x"


def test_concurrent_processes_never_both_take_a_lease(tmp_path):
    """Four live processes race for the same lease 30 times: exactly one wins each round.

    The racers start together only once all four have imported (a handshake, not a wall-clock start:
    on a loaded machine an import can take longer than any fixed head start) and stay alive until
    every result is read. A racer that had already exited would rightly lose its leases to the next
    one as a dead holder, which is takeover, not a race."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from cache import Store, new_holder
        s = Store({str(tmp_path / "s")!r})
        me = new_holder()
        print("ready", flush=True)
        sys.stdin.readline()  # go
        won = [r for r in range(30) if s.acquire_lease(f"k{{r}}", me, ttl_s=600).holder == me]
        print(" ".join(map(str, won)), flush=True)
        sys.stdin.read()  # stay alive (and holding) until the parent has every result
        """
    )
    Store(tmp_path / "s").close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        assert all(p.stdout.readline().strip() == "ready" for p in procs)
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        lines = [p.stdout.readline() for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=120)
    wins = [int(r) for line in lines for r in line.split()]
    assert sorted(wins) == list(range(30))
