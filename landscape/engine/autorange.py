"""Auto range: find how wide the safety basin is before laying a grid over it.

The basin's width depends on the model (a 7B chat model's spans ±0.5; the aligned SmolLM2-135M's
collapses by about ±0.2), so a fixed grid either wastes points on ASR = 100 or misses the edge. Along
each direction and each sign, probe outward from θ₀ doubling the coefficient until the ASR reaches
``target`` (100 by default), then bisect between the last point below and the first at the target.
The grid then spans the wider edge times ``margin`` each way, symmetric so θ₀ is a grid point.

Every probe is stored as soon as it is measured (``autorange:<key>`` in the store), so the search
resumes after a kill and a repeated search costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cache import Store
from landscape.core.grid import symmetric_axis
from landscape.core.specs import AxisSpec, Runtime, ScanSpec, spec_hash
from landscape.engine.scan import Session, prepare_scan


@dataclass(frozen=True)
class AutoRangeSpec:
    target_pct: float = 100.0
    start: float = 0.05
    max_coef: float = 3.2
    bisect_steps: int = 4
    margin: float = 1.5
    probe_prompts: int | None = None  # None: the scan's own prompts


@dataclass
class AutoRangeResult:
    spec: ScanSpec  # the input spec with its axes set to span the basin
    edges: list[tuple[float, float]]  # per direction: (negative edge, positive edge), positive
    probes: int  # probes measured by this call


def _search(measure, sign: int, cfg: AutoRangeSpec) -> float:
    lo, hi = 0.0, cfg.start
    while measure(sign * hi) < cfg.target_pct:
        lo, hi = hi, hi * 2
        if hi > cfg.max_coef:
            return cfg.max_coef  # no edge inside the search range
    for _ in range(cfg.bisect_steps):
        mid = (lo + hi) / 2
        if measure(sign * mid) >= cfg.target_pct:
            hi = mid
        else:
            lo = mid
    return hi


def auto_range(
    spec: ScanSpec,
    store: Store,
    runtime: Runtime | None = None,
    cfg: AutoRangeSpec = AutoRangeSpec(),
    *,
    log=print,
    session: Session | None = None,
) -> AutoRangeResult:
    """Return ``spec`` with symmetric axes that span its basin (see module docstring)."""
    runtime = runtime or Runtime()
    probe_spec = spec
    if cfg.probe_prompts is not None:
        probe_spec = spec.model_copy(
            update={"prompts": spec.prompts.model_copy(update={"limit": cfg.probe_prompts})}
        )
    probe_spec = probe_spec.model_copy(update={"capability": None})
    prep = prepare_scan(probe_spec, store)
    key = "autorange:" + spec_hash("autorange", {"scan_family_of": prep.key, "cfg": cfg.__dict__})
    probes: dict[str, float] = store.get_json(key) or {}
    session = session or Session(store, runtime, log)
    state = {"snapshot": None, "dirs": None, "new": 0}

    def measure_along(k: int):
        def measure(coef: float) -> float:
            tag = f"{k}:{coef:.6g}"
            if tag not in probes:
                if state["dirs"] is None:
                    state["snapshot"], state["dirs"], _ = session.directions(probe_spec)
                coeffs = [0.0] * len(state["dirs"])
                coeffs[k] = coef
                res = session.evaluate_at(probe_spec, prep.prompts, state["snapshot"], state["dirs"], coeffs)
                probes[tag] = res.metrics["asr_pct"]
                state["new"] += 1
                store.put_json(key, probes)
                log(f"  probe direction {k + 1} at {coef:+.4f}: ASR {probes[tag]:.0f}%")
            return probes[tag]

        return measure

    edges = []
    for k in range(len(spec.directions)):
        measure = measure_along(k)
        edges.append((_search(measure, -1, cfg), _search(measure, +1, cfg)))
    axes = []
    for (neg, pos), axis in zip(edges, (spec.alphas, spec.betas), strict=False):
        start, stop, num = symmetric_axis(max(neg, pos) * cfg.margin, axis.num)
        axes.append(AxisSpec(start=round(start, 6), stop=round(stop, 6), num=num))
    update = {"alphas": axes[0]}
    if len(axes) == 2:
        update["betas"] = axes[1]
    return AutoRangeResult(spec.model_copy(update=update), edges, state["new"])
