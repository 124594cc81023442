"""A family of scans: one spec along K random directions (seeds seed .. seed + K - 1).

The paper reports VISAGE as mean and spread over several random directions, so the CLI's
``--directions K`` and the demo both scan a family. With ``auto`` each member first gets its own
auto range; all members share one ``Session`` (the model is loaded once), and with workers one Ray
connection.
"""

from __future__ import annotations

from cache import Store
from landscape.core.specs import Runtime, ScanSpec
from landscape.engine.autorange import AutoRangeSpec, auto_range
from landscape.engine.distributed import ray_session
from landscape.engine.scan import Log, ScanResult, Session, scan_grid


def with_seed(spec: ScanSpec, offset: int) -> ScanSpec:
    """``spec`` with every random direction's seed moved by ``offset`` (other directions kept)."""
    dirs = tuple(
        d.model_copy(update={"seed": d.seed + offset}) if d.kind == "random" else d for d in spec.directions
    )
    return spec.model_copy(update={"directions": dirs})


def family_specs(spec: ScanSpec, k: int) -> list[ScanSpec]:
    """The ``k`` members of ``spec``'s family, all on its grid and prompts."""
    return [with_seed(spec, i) for i in range(k)]


def scan_family(
    spec: ScanSpec,
    k: int,
    store: Store,
    runtime: Runtime,
    auto: AutoRangeSpec | None = None,
    log: Log = print,
    session: Session | None = None,
) -> list[ScanResult]:
    """Scan the ``k`` members of ``spec``'s family (auto-ranging each when ``auto`` is given)."""
    session = session or Session(store, runtime, log)
    results = []
    with ray_session(runtime, log):  # with workers: one Ray for every search and scan
        for i, member in enumerate(family_specs(spec, k)):
            if auto is not None:
                log(f"auto range for direction set {i + 1}/{k}")
                ar = auto_range(member, store, runtime, auto, log=log, session=session)
                log("  basin edges: " + ", ".join(f"-{n:.3f}/+{p:.3f}" for n, p in ar.edges))
                member = ar.spec
            results.append(scan_grid(member, store, runtime, log=log, session=session))
    return results
