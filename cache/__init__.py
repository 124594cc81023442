"""Result store for Safety Landscape: pickle-free diskcache records (no torch, no landscape)."""

from cache.store import (
    SCHEMA_VERSION,
    CorruptEntryError,
    Lease,
    ScanGrid,
    Store,
    StoreError,
    canonical_json,
    finite_or_none,
    new_holder,
)

__all__ = [
    "SCHEMA_VERSION",
    "CorruptEntryError",
    "Lease",
    "ScanGrid",
    "Store",
    "StoreError",
    "canonical_json",
    "finite_or_none",
    "new_holder",
]
