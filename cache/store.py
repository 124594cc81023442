"""The result store: a pickle-free diskcache of JSON records, with artifacts on disk beside it.

Layout under one root directory:

- ``meta/``: a diskcache of small JSON records: one per scan (``scan:<key>``) with its full spec and
  provenance, a progress counter per scan (``progress:<key>``), and records of artifacts
  (``artifact:<kind>:<key>``: aligned models, interpolation directions) and auto-range searches.
- ``points/``: a diskcache with one metrics record per finished grid point (``<key>:<i>:<j>``) and
  its responses (``<key>:<i>:<j>:responses``). Responses are written first, metrics last, so a
  reader that sees a point's metrics also sees its responses.
- ``lease:<key>`` in ``meta/``: who computes scan ``<key>`` now (``Lease``), so two drivers never
  compute the same point: taken and renewed in one SQLite transaction each.
- ``artifacts/<kind>/<key>/``: files too large for a record (safetensors). Writers fill a temporary
  directory (``.staging-<pid>-<host>-…``) and rename it into place, so a half-written artifact is
  never visible; the next build sweeps the staging directories of dead processes of its host.

diskcache pickles any value that is not ``bytes``/``str``/number, and unpickles on read: loading a
crafted cache would run code. ``NoPickleDisk`` refuses both directions, so this store only ever holds
JSON text (grids are rebuilt from the point records by ``Store.scan_grid``).

"Not computed" is a missing key, never a sentinel value: an ASR of 0 is a real result.
This module imports neither torch nor ``landscape``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diskcache import Cache, Disk
from diskcache.core import MODE_PICKLE, UNKNOWN

SCHEMA_VERSION = 1


# record kinds whose writes change a listing, and the counter they move (``Store.changes``)
LISTED = ("scan:", "progress:", "study:", "search:")
CHANGES = "changes:listed"


class StoreError(Exception):
    """A store problem the user can act on (bad directory, corrupt entry, unknown key)."""


class CorruptEntryError(StoreError):
    """A record exists but cannot be decoded; callers delete and recompute it."""


class NoPickleDisk(Disk):
    """A diskcache ``Disk`` that stores only str keys and str/bytes values, and never unpickles."""

    def put(self, key):
        if not isinstance(key, str):
            raise TypeError(f"store keys must be str, not {type(key).__name__}")
        return super().put(key)

    def get(self, key, raw):
        if not raw:
            raise CorruptEntryError("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value, read, key=UNKNOWN):
        if not read and not isinstance(value, (bytes, str)):
            raise TypeError(f"store values must be bytes or str, not {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:
            raise CorruptEntryError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def _open_cache(path: Path) -> Cache:
    # No eviction: results are the product, never a cache that may forget.
    return Cache(str(path), disk=NoPickleDisk, eviction_policy="none", size_limit=2**62)


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` that hashes are taken over (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _encode(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _decode(raw: Any, key: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise CorruptEntryError(f"store entry {key!r} is corrupt: {exc}") from exc


@dataclass(frozen=True)
class ScanGrid:
    """A scan's values on its grid; ``values[name]`` is shaped like the grid, NaN where not computed.

    1D scans have arrays shaped ``(len(alphas),)``; 2D scans ``(len(alphas), len(betas))``
    (``indexing="ij"``: rows follow alpha).
    """

    key: str
    alphas: np.ndarray
    betas: np.ndarray | None
    values: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.alphas),) if self.betas is None else (len(self.alphas), len(self.betas))

    @property
    def done(self) -> int:
        return int(np.isfinite(self.values["asr_pct"]).sum()) if "asr_pct" in self.values else 0


@dataclass(frozen=True)
class Lease:
    """Who computes a scan: ``holder`` is ``host:pid:uuid``; it is free after ``expires_at``
    (unix time), which the holder's heartbeat keeps pushing forward while it computes."""

    key: str
    holder: str
    expires_at: float
    acquired: float

    @property
    def host(self) -> str:
        return self.holder.rsplit(":", 2)[0]

    @property
    def pid(self) -> int | None:
        parts = self.holder.rsplit(":", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def holder_dead(self) -> bool:
        """True when the holder is a process of this host that no longer runs (a SIGKILLed driver:
        take over at once instead of waiting for the lease to expire)."""
        return _process_dead(self.host, self.pid)


def _process_dead(host: str, pid: int | None) -> bool:
    """True only when ``pid`` is a process of this host that no longer runs (or a zombie). Another
    host's process, or an unknown pid, counts as alive: nothing here can tell."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _owned_prefix(prefix: str) -> str:
    """``prefix`` + ``<pid>-<host>-``: a temporary directory name that says who made it."""
    return f"{prefix}{os.getpid()}-{socket.gethostname()}-"


def _owner(name: str) -> tuple[str, int] | None:
    """(host, pid) from a name made with ``_owned_prefix`` + mkdtemp's suffix (no ``-`` in it), or
    None for any other name."""
    for prefix in (".staging-", ".orphan-"):
        if name.startswith(prefix):
            pid, sep, rest = name[len(prefix) :].partition("-")
            host, sep2, _suffix = rest.rpartition("-")
            if pid.isdigit() and sep and sep2 and host:
                return host, int(pid)
    return None


def new_holder() -> str:
    """A lease holder id unique to this process and call: ``host:pid:uuid``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Store:
    """The on-disk store. Safe to open from several processes at once (SQLite WAL underneath)."""

    def __init__(self, root: str | os.PathLike, *, create: bool = True):
        """Open the store at ``root``, creating it unless ``create`` is False: then a path that
        holds no store is a one-line StoreError and nothing is written (reading commands)."""
        if not str(root).strip():
            raise StoreError("the store path is empty: give a directory (--store DIR)")
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a store directory")
        if not create and not Store.exists(self.root):
            raise StoreError(
                f"no store at {self.root}: nothing has been computed there (check --store, or fill "
                "one with `landscape demo` or `landscape scan 1d`)"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {self.root}: {exc.strerror}") from exc
        self.meta = _open_cache(self.root / "meta")
        self.points = _open_cache(self.root / "points")

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        """True when ``root`` holds a store (its ``meta`` database), without creating anything."""
        return (Path(root).expanduser() / "meta" / "cache.db").is_file()

    def close(self) -> None:
        self.meta.close()
        self.points.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- JSON records ---------------------------------------------------------------------------

    def get_json(self, key: str, *, cache: Cache | None = None) -> Any | None:
        """The record at ``key``, or None when absent. Raises CorruptEntryError when undecodable."""
        raw = (cache or self.meta).get(key)
        return None if raw is None else _decode(raw, key)

    def put_json(self, key: str, obj: Any, *, cache: Cache | None = None) -> None:
        (cache or self.meta).set(key, _encode(obj))
        if cache is None and key.startswith(LISTED):
            self._changed()

    def delete(self, key: str, *, cache: Cache | None = None) -> None:
        (cache or self.meta).delete(key)
        if cache is None and key.startswith(LISTED):
            self._changed()

    def _changed(self) -> None:
        with self.meta.transact():  # read-increment-write, atomic across processes
            self.meta.set(CHANGES, str(int(self.meta.get(CHANGES) or 0) + 1))

    def changes(self) -> int:
        """A counter that moves whenever what ``list_scans`` (or a study list) returns may have
        changed: a scan record, a point's progress or a study written or deleted, by any process.
        Readers cache their tables by it instead of by time (one integer read)."""
        return int(self.meta.get(CHANGES) or 0)

    def keys(self, prefix: str, *, cache: Cache | None = None) -> Iterator[str]:
        for key in (cache or self.meta).iterkeys():
            if isinstance(key, str) and key.startswith(prefix):
                yield key

    # -- scans ------------------------------------------------------------------------------------

    def scan_record(self, key: str) -> dict | None:
        return self.get_json(f"scan:{key}")

    def put_scan_record(self, key: str, record: dict) -> None:
        self.put_json(f"scan:{key}", record)

    def delete_scan_record(self, key: str) -> None:
        self.delete(f"scan:{key}")

    def resolve_scan_key(self, prefix: str) -> str:
        """The full key of the one scan whose key starts with ``prefix`` (git-style short keys)."""
        prefix = prefix.strip().lower()  # keys are lowercase hex: a pasted upper-case key is the same key
        matches = sorted(k.removeprefix("scan:") for k in self.keys(f"scan:{prefix}"))
        if not matches:
            raise StoreError(f"no scan with key {prefix!r} in {self.root}")
        if len(matches) > 1:
            shown = ", ".join(m[:12] for m in matches[:8]) + (", …" if len(matches) > 8 else "")
            raise StoreError(f"key {prefix!r} is ambiguous: {len(matches)} scans start with it ({shown})")
        return matches[0]

    def put_point(self, key: str, i: int, j: int, metrics: dict, responses: list[dict]) -> None:
        """Record one finished point; responses first so metrics imply responses are there."""
        pkey = f"{key}:{i}:{j}"
        self.points.set(f"{pkey}:responses", _encode(responses))
        self.points.set(pkey, _encode(metrics))
        with self.meta.transact():
            progress = self.get_json(f"progress:{key}") or {"done": 0}
            progress["done"] = progress.get("done", 0) + 1
            progress["updated"] = time.time()
            self.put_json(f"progress:{key}", progress)

    # -- leases: one computation per scan key ------------------------------------------------

    def lease(self, key: str) -> Lease | None:
        """The lease on scan ``key`` as recorded (possibly expired), or None."""
        try:
            rec = self.get_json(f"lease:{key}")
        except CorruptEntryError:
            return None
        return None if not rec else Lease(key, rec["holder"], rec["expires_at"], rec.get("acquired", 0.0))

    def acquire_lease(self, key: str, holder: str, ttl_s: float) -> Lease:
        """Take the lease on scan ``key`` for ``holder`` when it is free, expired, already
        ``holder``'s, or held by a dead process of this host; otherwise leave it. Returns the lease
        as it stands afterwards: ``lease.holder == holder`` means taken. Atomic (one transaction)."""
        with self.meta.transact():
            current = self.lease(key)
            now = time.time()
            if current is None or current.holder == holder or current.expired(now) or current.holder_dead():
                acquired = current.acquired if current is not None and current.holder == holder else now
                self.put_json(
                    f"lease:{key}", {"holder": holder, "expires_at": now + ttl_s, "acquired": acquired}
                )
                return Lease(key, holder, now + ttl_s, acquired)
            return current

    def renew_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Push ``holder``'s lease on ``key`` forward; False when it is no longer ``holder``'s
        (it expired and another driver took it over)."""
        with self.meta.transact():
            current = self.lease(key)
            if current is None or current.holder != holder:
                return False
            rec = {"holder": holder, "expires_at": time.time() + ttl_s, "acquired": current.acquired}
            self.put_json(f"lease:{key}", rec)
            return True

    def release_lease(self, key: str, holder: str) -> None:
        """Drop ``holder``'s lease on ``key`` (another holder's lease is left alone)."""
        with self.meta.transact():
            current = self.lease(key)
            if current is not None and current.holder == holder:
                self.delete(f"lease:{key}")

    def point(self, key: str, i: int, j: int = 0) -> dict | None:
        """One point's metrics, or None when not computed."""
        return self.get_json(f"{key}:{i}:{j}", cache=self.points)

    def point_responses(self, key: str, i: int, j: int = 0) -> list[dict] | None:
        """Every prompt, response and verdict of one point, or None when not computed."""
        return self.get_json(f"{key}:{i}:{j}:responses", cache=self.points)

    def drop_point(self, key: str, i: int, j: int = 0) -> None:
        self.points.delete(f"{key}:{i}:{j}")
        self.points.delete(f"{key}:{i}:{j}:responses")

    def progress(self, key: str) -> int:
        try:
            progress = self.get_json(f"progress:{key}")
        except CorruptEntryError:
            return 0
        return int(progress["done"]) if progress else 0

    def scan_grid(
        self, key: str, fields: tuple[str, ...] | None = None, record: dict | None = None
    ) -> ScanGrid:
        """A scan as coordinate arrays plus value arrays (NaN where a point is not computed).

        ``fields`` picks which numeric point fields to return (default: every numeric field seen).
        A corrupt point reads as not computed; the scan runner recomputes it. ``record``: the scan's
        record when the caller has already read it.
        """
        record = record if record is not None else self.scan_record(key)
        if record is None:
            raise StoreError(f"no scan with key {key!r} in {self.root}")
        alphas = np.asarray(record["alphas"], dtype=float)
        betas = None if record.get("betas") is None else np.asarray(record["betas"], dtype=float)
        shape = (len(alphas),) if betas is None else (len(alphas), len(betas))
        values: dict[str, np.ndarray] = {}
        for (i, j), metrics in self._scan_points(key).items():
            if i >= shape[0] or (betas is None and j != 0) or (betas is not None and j >= shape[1]):
                continue
            for name, value in metrics.items():
                if fields is not None and name not in fields:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if name not in values:
                    values[name] = np.full(shape, np.nan)
                values[name][(i,) if betas is None else (i, j)] = value
        for name in fields or ("asr_pct",):
            values.setdefault(name, np.full(shape, np.nan))
        return ScanGrid(key=key, alphas=alphas, betas=betas, values=values)

    def _scan_points(self, key: str) -> dict[tuple[int, int], dict]:
        """Every decodable point record of scan ``key`` by (i, j), read in one range query over the
        points table's key index: one ``get`` per point costs a query each, and readers that
        recompute summaries from grids (the dashboard's Overview) read every scan. Responses are
        not read. Values go through ``NoPickleDisk.fetch``, so nothing is ever unpickled."""
        cache = self.points
        rows = cache._sql(  # diskcache's own statement helper; keys are stored raw (str)
            "SELECT key, mode, filename, value FROM Cache WHERE key > ? AND key < ? AND raw = 1 "
            "AND key NOT LIKE '%:responses'",
            (f"{key}:", f"{key};"),  # ';' follows ':' in ASCII: exactly the keys "<key>:…"
        ).fetchall()
        out: dict[tuple[int, int], dict] = {}
        for db_key, mode, filename, db_value in rows:
            parts = db_key[len(key) + 1 :].split(":")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                continue
            try:
                metrics = json.loads(cache._disk.fetch(mode, filename, db_value, False))
            except (CorruptEntryError, OSError, TypeError, ValueError):
                continue  # a corrupt point reads as not computed
            if isinstance(metrics, dict) and metrics:
                out[(int(parts[0]), int(parts[1]))] = metrics
        return out

    def list_scans(self) -> list[dict]:
        """Every scan record, newest first, with ``done``/``total`` point counts and ``status``.

        A ``summary`` stored on the record by an older version is left out: readers recompute
        basin metrics from the grid (``landscape.core.visage.scan_summary``) rather than trust it.
        """
        out = []
        for k in self.keys("scan:"):
            key = k.removeprefix("scan:")
            try:
                record = self.scan_record(key)
            except CorruptEntryError:
                continue
            if record is None:
                continue
            done = self.progress(key)
            total = int(record.get("total_points") or 0)
            record = dict(record, key=key, done=min(done, total) if total else done)
            record.pop("summary", None)
            if record.get("status") != "complete":
                record["status"] = "partial" if done else "pending"
            out.append(record)
        out.sort(key=lambda r: r.get("created", 0), reverse=True)
        return out

    # -- artifacts (files too big for a record) -------------------------------------------------

    def artifact_dir(self, kind: str, key: str) -> Path:
        return self.root / "artifacts" / kind / key

    def artifact_keys(self, kind: str, prefix: str = "") -> list[str]:
        """The keys of the committed artifacts of ``kind`` starting with ``prefix`` (staging and
        orphaned directories left out), sorted."""
        base = self.root / "artifacts" / kind
        return sorted(d.name for d in base.glob(prefix + "*") if d.is_dir() and not d.name.startswith("."))

    def artifact(self, kind: str, key: str) -> dict | None:
        """The record of a finished artifact, or None when absent or its files are gone."""
        record = self.get_json(f"artifact:{kind}:{key}")
        if record is None or not self.artifact_dir(kind, key).exists():
            return None
        return record

    def staging_dir(self, kind: str) -> Path:
        """A new empty directory to build an artifact of ``kind`` in. Its name carries the building
        process (``.staging-<pid>-<host>-<random>``), so a later build can tell an orphan left by a
        SIGKILLed builder from a live build; orphans are swept first (``sweep_staging``)."""
        self.sweep_staging()
        base = self.root / "artifacts" / kind
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=_owned_prefix(".staging-"), dir=base))

    def sweep_staging(self) -> list[Path]:
        """Remove the staging (and half-removed ``.orphan-``) directories of every artifact kind
        whose owner was a process of this host that no longer runs; return them.

        A directory of a live process, of another host (a shared filesystem: its liveness cannot be
        checked from here) or without an owner in its name (made before owners were recorded) is
        left alone, so a running build never loses its files.
        """
        removed = []
        for path in sorted((self.root / "artifacts").glob("*/.*-*-*-*")):
            owner = _owner(path.name)
            if owner is not None and _process_dead(*owner):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def commit_artifact(self, kind: str, key: str, staging: Path, record: dict) -> Path:
        """Move a filled staging directory into place and record it (atomic rename).

        The first writer wins: files that already have a record are never replaced (a concurrent
        builder's copy is discarded, so readers of the first never see it vanish). Files without a
        record (a crash between the rename and the record) are moved aside and replaced.
        """
        final = self.artifact_dir(kind, key)
        if final.exists() and self.get_json(f"artifact:{kind}:{key}") is None:
            orphan = Path(tempfile.mkdtemp(prefix=_owned_prefix(".orphan-"), dir=final.parent))
            os.replace(final, orphan / key)
            shutil.rmtree(orphan, ignore_errors=True)
        try:
            os.rename(staging, final)  # fails when ``final`` is there (a non-empty directory)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return final
        self.put_json(f"artifact:{kind}:{key}", record)
        return final


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: metrics that are undefined are stored as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
