"""The store: JSON round trips, no pickle anywhere, grids with NaN, corrupt entries."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cache import CorruptEntryError, Store, StoreError


def test_json_round_trip(store):
    store.put_json("a", {"x": [1, 2.5, None], "s": "ü"})
    assert store.get_json("a") == {"x": [1, 2.5, None], "s": "ü"}
    assert store.get_json("missing") is None


def test_reopened_store_keeps_records(tmp_path):
    with Store(tmp_path / "s") as s:
        s.put_json("k", {"v": 1})
    with Store(tmp_path / "s") as s:
        assert s.get_json("k") == {"v": 1}


def test_refuses_to_store_python_objects(store):
    with pytest.raises(TypeError):
        store.meta.set("k", {"a": 1})  # diskcache would pickle this
    with pytest.raises(TypeError):
        store.meta.set(("tuple", "key"), "v")


def test_refuses_to_unpickle_a_planted_value(store):
    # Plant a pickled value with plain diskcache, as an attacker with write access could.
    from diskcache import Cache

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    with Cache(str(store.root / "meta")) as raw:
        raw.set("evil", Boom())
    with pytest.raises(CorruptEntryError):
        store.meta.get("evil")
    assert pickle  # the module is only used to show what we refuse


def test_nan_is_never_stored(store):
    with pytest.raises(ValueError):
        store.put_json("k", {"v": float("nan")})


def _scan(store, key="k1", alphas=(0.0, 0.5, 1.0), betas=(0.0, 1.0)):
    store.put_scan_record(
        key,
        {
            "alphas": list(alphas),
            "betas": list(betas),
            "total_points": len(alphas) * len(betas),
            "created": 1.0,
            "kind": "2d",
        },
    )


def test_scan_grid_has_nan_for_missing_points_and_ij_layout(store):
    _scan(store)
    store.put_point("k1", 2, 1, {"asr_pct": 40.0, "alpha": 1.0, "beta": 1.0}, [{"prompt": "p"}])
    store.put_point("k1", 0, 0, {"asr_pct": 0.0}, [])
    g = store.scan_grid("k1")
    assert g.shape == (3, 2) and g.values["asr_pct"].shape == (3, 2)
    assert g.values["asr_pct"][2, 1] == 40.0
    assert g.values["asr_pct"][0, 0] == 0.0  # an ASR of 0 is a value, not "missing"
    assert np.isnan(g.values["asr_pct"][1, 0])
    assert g.done == 2
    assert store.point_responses("k1", 2, 1) == [{"prompt": "p"}]
    scans = store.list_scans()
    assert scans[0]["key"] == "k1" and scans[0]["done"] == 2 and scans[0]["status"] == "partial"


def test_corrupt_point_reads_as_missing_and_is_reported(store):
    _scan(store)
    store.points.set("k1:0:0", "{not json")
    with pytest.raises(CorruptEntryError):
        store.point("k1", 0, 0)
    assert np.isnan(store.scan_grid("k1").values["asr_pct"][0, 0])


def test_scan_grid_reads_only_its_own_points_and_never_unpickles(store):
    from diskcache import Cache

    _scan(store, key="ab")
    _scan(store, key="abc")
    _scan(store, key="a")
    store.put_point("ab", 1, 1, {"asr_pct": 10.0}, [{"prompt": "p"}])
    store.put_point("abc", 0, 0, {"asr_pct": 20.0}, [])
    store.put_point("a", 0, 1, {"asr_pct": 30.0}, [])
    store.points.set("ab:2:1", "x" * 40_000)  # a large (file-backed) corrupt value
    with Cache(str(store.root / "points")) as raw:
        raw.set("ab:0:0", {"asr_pct": 99.0})  # pickled by plain diskcache
    asr = store.scan_grid("ab").values["asr_pct"]
    assert asr[1, 1] == 10.0 and np.isfinite(asr).sum() == 1
    assert store.scan_grid("abc").values["asr_pct"][0, 0] == 20.0


def test_short_keys_resolve_and_ambiguity_is_an_error(store):
    _scan(store, "abc123")
    _scan(store, "abd456")
    assert store.resolve_scan_key("abc") == "abc123"
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve_scan_key("ab")
    with pytest.raises(StoreError, match="no scan"):
        store.resolve_scan_key("zz")


def test_artifacts_appear_only_when_committed(store):
    staging = store.staging_dir("models")
    (staging / "w.bin").write_bytes(b"123")
    assert store.artifact("models", "m1") is None
    final = store.commit_artifact("models", "m1", staging, {"ok": True})
    assert (final / "w.bin").read_bytes() == b"123"
    assert store.artifact("models", "m1") == {"ok": True}


def _staged(store, content: bytes):
    staging = store.staging_dir("models")
    (staging / "w.bin").write_bytes(content)
    return staging


def test_a_second_commit_of_one_key_keeps_the_first(store):
    """Two builders of one artifact: the second's copy is discarded, the first's files and record stay."""
    final = store.commit_artifact("models", "m1", _staged(store, b"first"), {"n": 1})
    staging = _staged(store, b"second")
    assert store.commit_artifact("models", "m1", staging, {"n": 2}) == final
    assert (final / "w.bin").read_bytes() == b"first" and store.artifact("models", "m1") == {"n": 1}
    assert not staging.exists()


def test_files_without_a_record_are_replaced(store):
    """An orphan (a crash between the rename and the record) does not block the artifact forever."""
    orphan = store.artifact_dir("models", "m1")
    orphan.mkdir(parents=True)
    (orphan / "w.bin").write_bytes(b"orphan")
    final = store.commit_artifact("models", "m1", _staged(store, b"new"), {"n": 2})
    assert (final / "w.bin").read_bytes() == b"new" and store.artifact("models", "m1") == {"n": 2}
    assert sorted(p.name for p in final.parent.iterdir()) == ["m1"]


def test_concurrent_reader_sees_consistent_points(tmp_path):
    """A writer process adds points while this process reads: metrics always imply responses."""
    root = tmp_path / "s"
    with Store(root) as s:
        _scan(s, "k", alphas=tuple(range(40)), betas=(0.0,))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        from cache import Store
        with Store({str(root)!r}) as s:
            for i in range(40):
                s.put_point("k", i, 0, {{"asr_pct": float(i)}}, [{{"prompt": "p" * 2000, "i": i}}] * 20)
    """),
        ]
    )
    seen = 0
    with Store(root) as s:
        while writer.poll() is None or seen < 40:
            g = s.scan_grid("k")
            for i in np.flatnonzero(np.isfinite(g.values["asr_pct"][:, 0])):
                rows = s.point_responses("k", int(i), 0)
                assert rows is not None and rows[0]["i"] == i
            seen = g.done
            if writer.poll() is not None and seen < 40:
                seen = s.scan_grid("k").done
                break
    assert writer.wait() == 0
    with Store(root) as s:
        assert s.scan_grid("k").done == 40 and s.progress("k") == 40


def test_the_change_counter_moves_with_what_a_listing_shows(tmp_path):
    """Issue 26 §3: readers cache the scan list by this counter instead of for 2 s."""
    from cache import Store

    with Store(tmp_path / "s") as s:
        seen = [s.changes()]
        s.put_scan_record("ab" * 32, {"alphas": [0.0], "total_points": 1})
        seen.append(s.changes())
        s.put_json("lease:" + "ab" * 32, {"holder": "x"})  # not listed: no move
        s.put_json("summary:" + "ab" * 32, {})
        seen.append(s.changes())
        s.put_point("ab" * 32, 0, 0, {"asr_pct": 0.0}, [])
        seen.append(s.changes())
        s.delete_scan_record("ab" * 32)
        seen.append(s.changes())
    with Store(tmp_path / "s") as again:  # another process sees the same counter
        assert again.changes() == seen[-1]
    assert seen == [0, 1, 1, 2, 3]
