"""One computation per scan (and per built artifact): the driver that computes it holds its lease
in the store.

A second driver on the same scan (a CLI run, a dashboard job, a Ray driver) waits while the lease is
held, printing the holder and the scan's progress read from the store, and takes over only the points
still missing once the holder releases it (finished), lets it expire (a holder that stopped renewing:
killed, or its machine gone; ``Runtime.lease_ttl_s``) or is seen dead (a process of this host that no
longer runs: taken over at once). A heartbeat thread renews the lease while points are computed, so a
point longer than the TTL does not lose it; a holder that lost its lease anyway stops before its next
point rather than compute what another driver now owns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from cache import Store, StoreError, new_holder


class LostLeaseError(StoreError):
    """Another driver took over this scan (our lease expired while we were stalled)."""


class HeldLease:
    """The lease this driver holds on one scan, kept alive by a heartbeat thread."""

    def __init__(self, store: Store, key: str, holder: str, ttl_s: float):
        self.store, self.key, self.holder, self.ttl_s = store, key, holder, ttl_s
        self._stop = threading.Event()
        self._lost = False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{key[:8]}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.store.renew_lease(self.key, self.holder, self.ttl_s):
                    self._lost = True
                    return
            except Exception:  # a busy database: the next beat retries well before expiry
                continue

    def check(self) -> None:
        """Raise before computing another point when the lease went to another driver."""
        if self._lost:
            lease = self.store.lease(self.key)
            who = lease.holder if lease else "nobody"
            raise LostLeaseError(
                f"scan {self.key[:12]} was taken over by {who} (our lease expired); "
                "stopping here, finished points are in the store"
            )

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.store.release_lease(self.key, self.holder)


@contextmanager
def _lease(
    store: Store,
    key: str,
    what: str,
    status: Callable[[], str],
    freed: str,
    ttl_s: float,
    log: Callable[[str], None],
    poll_s: float | None,
) -> Iterator[HeldLease]:
    """Hold the lease on ``key`` for the block, kept alive by a heartbeat; while another holder keeps
    it, wait, logging ``what`` and ``status()`` whenever either changes, and say ``freed`` once
    the lease comes to us after a wait."""
    holder = new_holder()
    poll = poll_s if poll_s is not None else min(2.0, ttl_s / 4)
    said: tuple | None = None
    while True:
        lease = store.acquire_lease(key, holder, ttl_s)
        if lease.holder == holder:
            break
        now = (lease.holder, status())
        if said != now:
            log(
                f"{what} is being computed by {lease.holder}: waiting ({now[1]}its lease expires "
                f"{max(0.0, lease.expires_at - time.time()):.0f} s after its last heartbeat)"
            )
            said = now
        time.sleep(poll)
    if said is not None:
        log(f"{what}: lease free ({said[0]} finished or died){freed}")
    held = HeldLease(store, key, holder, ttl_s)
    try:
        yield held
    finally:
        held.release()


def scan_lease(
    store: Store,
    key: str,
    total: int,
    ttl_s: float,
    log: Callable[[str], None],
    poll_s: float | None = None,
) -> AbstractContextManager[HeldLease]:
    """Hold the lease on scan ``key`` for the block, waiting first while another driver holds it."""

    def status() -> str:
        done = store.scan_grid(key, fields=("asr_pct",)).done
        return f"{done}/{total} points in the store; "

    return _lease(store, key, f"scan {key[:12]}", status, "; computing what is missing", ttl_s, log, poll_s)


def build_lease(
    store: Store,
    kind: str,
    key: str,
    ttl_s: float,
    log: Callable[[str], None],
    poll_s: float | None = None,
) -> AbstractContextManager[HeldLease]:
    """Hold the lease on building artifact ``kind``/``key`` (a fine-tune, …) for the block.

    A second process asking for the same artifact waits while the first builds it, then finds it in
    the store instead of building it again (``cached_artifact`` looks again inside the block); a
    holder that died (or stopped renewing) leaves it to the next. Two sweeps or studies sharing a
    store thus never train the same cell twice."""
    what = f"{kind.rstrip('s')} {key[:12]}"
    return _lease(store, f"build:{kind}:{key}", what, lambda: "", "", ttl_s, log, poll_s)
