"""Auto range: find how wide the safety basin is before laying a grid over it.

The basin's width depends on the model (a 7B chat model's spans ±0.5; the aligned SmolLM2-135M's
collapses by about ±0.2), so a fixed grid either wastes points on ASR = 100 or misses the edge. Along
each direction and each sign, probe outward from θ₀ doubling the coefficient until the ASR reaches
``target`` (100 by default), then bisect between the last point below and the first at the target.
The grid then spans the wider edge times ``margin`` each way, symmetric so θ₀ is a grid point.

Every probe is stored as soon as it is measured (``autorange:<key>`` in the store), so the search
resumes after a kill and a repeated search costs nothing.

Each search is a generator (``search``) that yields its next coefficient and is sent that probe's ASR.
In one process the searches run one after the other; with ``Runtime.workers`` the 2 × (directions)
searches run at once on Ray actors (``engine.distributed``), one probe in flight per search, and the
driver alone stores each probe as it arrives. Same code, so the same probes and the same edges.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

from cache import Store
from landscape.core.grid import GridPoint, symmetric_axis
from landscape.core.specs import AxisSpec, Runtime, ScanSpec, spec_hash
from landscape.engine.scan import ScanWorker, Session, check_probe, prepare_scan


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


def search(sign: int, cfg: AutoRangeSpec) -> Generator[float, float, float]:
    """One sign's search as a generator: it yields the next coefficient to probe, is sent that
    point's ASR, and returns the edge. The sequential and the Ray path drive the same code, so both
    probe the same coefficients and find the same edges."""
    lo, hi = 0.0, cfg.start
    while (yield sign * hi) < cfg.target_pct:
        lo, hi = hi, hi * 2
        if hi > cfg.max_coef:
            return cfg.max_coef  # no edge inside the search range
    for _ in range(cfg.bisect_steps):
        mid = (lo + hi) / 2
        if (yield sign * mid) >= cfg.target_pct:
            hi = mid
        else:
            lo = mid
    return hi


def _search(measure: Callable[[float], float], sign: int, cfg: AutoRangeSpec) -> float:
    """Drive one search to its edge, measuring each probe with ``measure`` (in this process)."""
    steps = search(sign, cfg)
    try:
        coef = next(steps)
        while True:
            coef = steps.send(measure(coef))
    except StopIteration as done:
        return done.value


class _Search:
    """One search of the Ray path, advanced over the probes already stored until it needs one that
    is not (``pending``), or has found its edge (``edge``)."""

    def __init__(self, index: int, k: int, sign: int, cfg: AutoRangeSpec, probes: dict[str, float]):
        self.index, self.k, self.probes = index, k, probes
        self.steps, self.edge, self.pending, self.n = search(sign, cfg), None, None, 0
        self._advance(lambda: next(self.steps))

    def tag(self, coef: float) -> str:
        return _tag(self.k, coef)

    def _advance(self, step) -> None:
        try:
            coef = step()
            while self.tag(coef) in self.probes:
                coef = self.steps.send(self.probes[self.tag(coef)])
            self.pending = coef
        except StopIteration as done:
            self.edge, self.pending = done.value, None

    def point(self) -> GridPoint:
        """The pending probe as a grid point: its coefficient on direction k, 0 on the others."""
        coeffs = [0.0, 0.0]
        coeffs[self.k] = self.pending
        self.n += 1
        return GridPoint(self.index, self.n, *coeffs)

    def measured(self, asr: float) -> None:
        self._advance(lambda: self.steps.send(asr))


def probes_key(probe_scan_key: str, cfg: AutoRangeSpec) -> str:
    """The store key of the probes record of the probe scan ``probe_scan_key`` under ``cfg``."""
    return "autorange:" + spec_hash("autorange", {"scan_family_of": probe_scan_key, "cfg": cfg.__dict__})


def _tag(k: int, coef: float) -> str:
    return f"{k}:{coef:.6g}"


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
    key = probes_key(prep.key, cfg)
    probes: dict[str, float] = store.get_json(key) or {}
    session = session or Session(store, runtime, log)
    state = {"snapshot": None, "dirs": None, "new": 0}

    def record(k: int, coef: float, asr: float) -> None:
        probes[_tag(k, coef)] = asr
        state["new"] += 1
        store.put_json(key, probes)  # the driver alone writes, as each probe arrives
        log(f"  probe direction {k + 1} at {coef:+.4f}: ASR {asr:.0f}%")

    def measure_along(k: int):
        def measure(coef: float) -> float:
            tag = _tag(k, coef)
            if tag not in probes:
                if state["dirs"] is None:
                    state["snapshot"], state["dirs"], _ = session.directions(probe_spec)
                coeffs = [0.0] * len(state["dirs"])
                coeffs[k] = coef
                check_probe(state["snapshot"], state["dirs"], coeffs, session.model(probe_spec).model.dtype)
                res = session.evaluate_at(probe_spec, prep.prompts, state["snapshot"], state["dirs"], coeffs)
                record(k, coef, res.metrics["asr_pct"])
            return probes[tag]

        return measure

    if runtime.workers:
        edges = _on_ray(prep, store, runtime, cfg, probes, record, log)
    else:
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


def _on_ray(prep, store: Store, runtime: Runtime, cfg: AutoRangeSpec, probes, record, log):
    """Every (direction, sign) search at once on Ray actors (``engine.distributed``), one probe in
    flight per search; ``record`` stores each probe here, in the driver, as it arrives."""
    from landscape.engine.distributed import run_on_ray

    ndirs = len(prep.spec.directions)
    searches = [_Search(2 * k + (s > 0), k, s, cfg, probes) for k in range(ndirs) for s in (-1, +1)]

    def save(p: GridPoint, outcome) -> list[GridPoint]:
        s = searches[p.i]
        record(s.k, s.pending, outcome.metrics["asr_pct"])
        s.measured(outcome.metrics["asr_pct"])
        return [] if s.pending is None else [s.point()]

    todo = [s.point() for s in searches if s.pending is not None]
    if todo:
        factory = ScanWorker.factory(str(store.root), runtime, prep, check_each=True)
        run_on_ray(factory, todo, runtime, lambda _i: None, save, log, lambda: None, name="autorange")
    return [(searches[2 * k].edge, searches[2 * k + 1].edge) for k in range(ndirs)]
