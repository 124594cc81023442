"""Scans: the safety landscape f(α[, β]) = S(θ₀ + α·d₁ [+ β·d₂]) on a grid, cached point by point.

``scan_grid`` is the public entry point a notebook, the CLI and the dashboard's job runner all call.
Every finished point is written to the store at once (responses, then metrics), so a scan killed at
any moment resumes where it stopped, and a repeated scan is served from the store without loading
the model. A corrupt point is reported and recomputed. Points run centre-out, so a partial scan
already shows the basin around θ₀. The basin summary (VISAGE both ways, half-widths, ASR at the
origin) is never stored: ``read_summary`` recomputes it from the grid whenever it is shown, so a fix
to a metric reaches every stored scan without orphaning it (summaries that older versions stored on
scan records are ignored).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cache import CorruptEntryError, ScanGrid, Store, canonical_json, finite_or_none
from landscape.core.format import plural
from landscape.core.grid import GridPoint, grid_points
from landscape.core.judges import get_judge, judge_model_identity
from landscape.core.prompts import load_prompts, prompts_fingerprint
from landscape.core.provenance import provenance
from landscape.core.specs import JudgeSpec, Runtime, ScanSpec, SpecError, judgement_note, spec_hash
from landscape.core.visage import scan_summary

Log = Callable[[str], None]


@dataclass(frozen=True)
class PreparedScan:
    """A spec with everything resolved that its key depends on (no model loaded)."""

    spec: ScanSpec
    key: str
    family: str  # same spec but random seeds zeroed: groups the K directions of one study
    prompts: list[str]
    model_fp: str
    alphas: np.ndarray
    betas: np.ndarray | None
    # The other inputs the key covers, as the driver fingerprinted them (workers check theirs):
    target_fps: tuple[str | None, ...] = ()  # per direction: its target model's or file's hash
    judge_model: dict | None = None  # a model judge's identity (None for a text judge)

    @property
    def points(self) -> list[GridPoint]:
        return grid_points(self.alphas, self.betas)


def prepare_scan(spec: ScanSpec, store: Store) -> PreparedScan:
    """Resolve fingerprints and prompts and compute the scan's key (cheap: hashes files only)."""
    from landscape.core.models import direction_file_fingerprint, model_fingerprint

    prompts = load_prompts(spec.prompts)
    model_fp = model_fingerprint(spec.model, store)
    target_fps = tuple(
        model_fingerprint(d.target, store)
        if d.target is not None
        else direction_file_fingerprint(d.path)
        if d.path is not None
        else None
        for d in spec.directions
    )
    for d, fp in zip(spec.directions, target_fps, strict=True):
        if d.kind == "interpolation" and fp == model_fp:  # θ_b − θ_a = 0: a flat line at θ_a's ASR
            raise SpecError(
                f"the interpolation target {d.target.source} is the same model as θ_a "
                f"({spec.model.source}): there is nothing to interpolate; give another --target"
            )
    judge_model = judge_model_identity(spec.judge)  # a model judge's fingerprint (one-line errors)
    identity = spec.identity(model_fp, prompts_fingerprint(prompts), target_fps, judge_model)
    family = dict(identity, directions=[dict(d, seed=0) for d in identity["directions"]])
    return PreparedScan(
        spec=spec,
        key=spec_hash("scan", identity),
        family=spec_hash("scan-family", family),
        prompts=prompts,
        model_fp=model_fp,
        alphas=np.asarray(spec.alphas.values()),
        betas=None if spec.betas is None else np.asarray(spec.betas.values()),
        target_fps=target_fps,
        judge_model=judge_model,
    )


def _new_record(prep: PreparedScan) -> dict:
    spec = prep.spec
    return {
        "spec": spec.model_dump(mode="json"),
        "spec_json": canonical_json(spec.model_dump(mode="json")),
        "kind": spec.kind,
        "family": prep.family,
        "model_fingerprint": prep.model_fp,
        "alphas": prep.alphas.tolist(),
        "betas": None if prep.betas is None else prep.betas.tolist(),
        "total_points": len(prep.points),
        "n_prompts": len(prep.prompts),
        "status": "pending",
        **provenance(),
    }


def missing_points(store: Store, prep: PreparedScan, log: Log) -> list[GridPoint]:
    """Points not yet in the store; corrupt ones are dropped so they are recomputed."""
    out = []
    for p in prep.points:
        try:
            if store.point(prep.key, p.i, p.j) is not None:
                continue
        except CorruptEntryError as exc:
            log(f"warning: {exc}; recomputing point ({p.alpha:g}, {p.beta:g})")
            store.drop_point(prep.key, p.i, p.j)
        out.append(p)
    return out


@dataclass
class ScanResult:
    key: str
    spec: ScanSpec
    grid: ScanGrid
    summary: dict
    computed: int  # points computed by this call (0: served from the store)
    record: dict


class Session:
    """A loaded model plus its snapshot θ₀, reused across scans and probes of the same model, and
    the loaded judges (a model judge is loaded once, not once per point)."""

    def __init__(self, store: Store, runtime: Runtime, log: Log = print, node_gpus: float = 1):
        self.store, self.runtime, self.log = store, runtime, log
        self.node_gpus = node_gpus  # GPUs of this node (a Ray replica's share of host memory)
        self._lm = None
        self._snapshots: dict[tuple, object] = {}
        self._judges: dict[str, object] = {}

    def judge(self, spec: JudgeSpec):
        """The loaded scorer of ``spec`` on this session's device (cached by the spec)."""
        from landscape.core.judges import load_judge

        key = canonical_json(spec.model_dump(mode="json"))
        if key not in self._judges:
            if spec.model is not None:
                self.log(f"loading judge {spec.name} from {spec.model} ({self.runtime.device})")
            self._judges[key] = load_judge(spec, self.runtime.device)
        return self._judges[key]

    def model(self, spec: ScanSpec):
        from landscape.core.models import load_model

        if self._lm is None or self._lm.spec != spec.model:
            self.log(f"loading model {spec.model.source} ({spec.model.dtype}, {self.runtime.device})")
            self._lm = load_model(spec.model, self.runtime.device, self.store)
            self._snapshots.clear()
        return self._lm

    def directions(self, spec: ScanSpec):
        """Snapshot and lazy directions for ``spec`` (orthogonalised, cosines recorded)."""
        import torch

        from landscape.core.directions import Materialized, Orthogonalized, RandomDirection, StoredDirection
        from landscape.core.models import ModelError, perturbable_parameters
        from landscape.core.perturb import Snapshot
        from landscape.engine.interpolation import interpolation_direction_for

        lm = self.model(spec)
        # What each direction acts on: random ones skip norms (and maybe embeddings);
        # interpolation moves every parameter so that alpha = 1 lands on the target;
        # a file direction moves the parameters it names.
        named = dict(lm.model.named_parameters())
        device = next(iter(named.values())).device  # directions produce their tensors here
        files = {
            k: StoredDirection(d.path, device) for k, d in enumerate(spec.directions) if d.kind == "file"
        }
        acts_on = []
        for k, d in enumerate(spec.directions):
            if d.kind == "random":
                acts_on.append(perturbable_parameters(lm.model, d.include_embeddings))
            elif d.kind == "file":
                unknown = sorted(set(files[k].names) - set(named))
                if unknown:
                    raise ModelError(
                        f"direction file {d.path} names parameters the model lacks: {unknown[0]}"
                    )
                acts_on.append({n: named[n] for n in files[k].names})
            else:
                acts_on.append(named)
        params = {n: p for group in acts_on for n, p in group.items()}
        plan = self._memory_plan(spec, lm.model, params)
        if spec.directions:
            self.log(plan.line(stored=sum(d.kind != "random" for d in spec.directions)))
        snap_key = (tuple(sorted(params)), plan.snapshot)
        if snap_key not in self._snapshots:
            self._snapshots = {}  # drop the old snapshot before taking the new one
            self._snapshots = {snap_key: Snapshot(params, plan.snapshot)}
        snapshot = self._snapshots[snap_key]
        dirs, info = [], {}
        for k, (d, group) in enumerate(zip(spec.directions, acts_on, strict=True)):
            if d.kind == "random":
                weights = {n: snapshot.weights[n] for n in group}
                dirs.append(RandomDirection(weights, d.seed, d.norm, device))
            elif d.kind == "file":
                dirs.append(files[k])
            else:
                dirs.append(interpolation_direction_for(lm, d.target, self.store, self.log))
        if plan.stored_on_device:  # read once, kept on the device (the plan made room)
            dirs = [Materialized(d, device=device) if isinstance(d, StoredDirection) else d for d in dirs]
        if len(dirs) == 2 and spec.orthogonalize:
            dirs[1] = Orthogonalized(dirs[1], dirs[0])
            info["cosine_before"] = dirs[1].cosine_before
            info["cosine_after"] = dirs[1].cosine_after
        if plan.directions != "regenerated":
            dtype = torch.float32 if plan.directions == "float32" else lm.model.dtype
            dirs = [Materialized(d, dtype=dtype) for d in dirs]
        return snapshot, dirs, info

    def _memory_plan(self, spec: ScanSpec, model, params):
        """The memory plan (``landscape.core.memory``) for perturbing ``params``, from the memory
        free now plus what this session's current snapshot of the same parameters holds."""
        import torch

        from landscape.core.memory import free_memory, plan_memory

        device = next(iter(params.values())).device if params else torch.device(self.runtime.device)
        free_device, free_host = free_memory(device, self.runtime.gpus_per_worker, self.node_gpus)
        for (names, where), snap in self._snapshots.items():
            if names == tuple(sorted(params)):
                held = sum(t.numel() * t.element_size() for t in snap.weights.values())
                if device.type != "cuda":  # one memory
                    free_device, free_host = free_device + held, free_host + held
                elif where == "device":
                    free_device += held
                else:
                    free_host += held
        return plan_memory(_budget(spec, self.runtime, model, params, (free_device, free_host)))

    def evaluate_at(self, spec: ScanSpec, prompts: list[str], snapshot, dirs, coeffs, batch_size=None):
        """Evaluate θ₀ + Σ cₖ·dₖ. Its metrics carry two times: ``elapsed_s``, decoding and judging
        only, and ``point_s``, the whole point: directions generated and applied, evaluated, θ₀
        restored (what a point costs, and what the reference's per-point time includes)."""
        from landscape.core.perturb import perturbed
        from landscape.engine.evaluate import evaluate_point

        lm = self.model(spec)
        t0 = time.perf_counter()
        with perturbed(snapshot, dirs, coeffs):
            result = evaluate_point(
                lm, spec, prompts, batch_size or self.runtime.batch_size, self.judge(spec.judge)
            )
        _sync(lm.model)  # the restore is asynchronous on a GPU: the point ends when it has landed
        result.metrics["point_s"] = time.perf_counter() - t0
        return result


def _budget(spec: ScanSpec, runtime: Runtime, model, params, free: tuple[int, int]):
    from landscape.core.memory import scan_budget

    batch = min(runtime.batch_size, spec.prompts.limit or runtime.batch_size)
    keep = "float32" if runtime.keep_directions else None
    stored = sum(d.kind != "random" for d in spec.directions)
    n, tokens = len(spec.directions), spec.generation.max_new_tokens
    return scan_budget(model, params, n, batch, tokens, keep, free, stored)


def replica_preflight(prep: PreparedScan, runtime: Runtime, store: Store, log: Log):
    """For Ray replicas sharing GPUs (``0 < gpus_per_worker``): a check, run by the driver on one
    GPU worker's device facts before any actor loads the model, that one replica fits the model and
    its scan in its share (``memory.check_replicas``; one-line ``ReplicaPlanError`` otherwise). The
    model is built from its config on the meta device (no weights read). None when there is nothing
    to check."""
    if not (runtime.workers and runtime.gpus_per_worker):
        return None

    def check(facts: dict | None) -> None:
        from landscape.core.memory import check_replicas

        if facts is None:
            log("ray: the GPU workers see no CUDA device; replica memory not checked")
            return
        model = _meta_model(prep.spec, store)
        if model is None:
            log(
                "ray: no config.json to size the model by (a GGUF not yet converted); replica memory not checked"
            )
            return
        params = _meta_params(model, prep.spec)
        # sized on the meta device, planned for the workers' CUDA devices (pinned host memory there)
        budget = dataclasses.replace(
            _budget(prep.spec, runtime, model, params, (0, 0)), device="cuda", pinned_ok=True
        )
        model_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
        plan = check_replicas(
            budget,
            model_bytes,
            facts["device_total"],
            facts["host_total"],
            runtime.gpus_per_worker,
            runtime.workers,
            facts["node_gpus"],
        )
        log(
            f"ray: one replica at {runtime.gpus_per_worker:g} GPU fits: model {model_bytes / 1e9:.1f} GB, "
            + plan.line().removeprefix("memory plan: ")
        )

    return check


def _meta_model(spec: ScanSpec, store: Store):
    """The model a spec names, built from its config on the meta device (shapes only), or None."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from landscape.core.models import _torch_dtype, model_fingerprint, resolve_source

    path = resolve_source(spec.model.source, store)
    if path.is_file():  # GGUF: its converted copy, if there is one
        path = store.artifact_dir("gguf", model_fingerprint(spec.model, store))
        if path is None or not path.is_dir():
            return None
    if not (path / "config.json").is_file():
        return None
    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=_torch_dtype(spec.model.dtype))


def _meta_params(model, spec: ScanSpec) -> dict:
    """What the directions act on, as ``Session.directions`` chooses it; a file direction is sized
    as moving every parameter (its names are in the file, read by the workers)."""
    from landscape.core.models import perturbable_parameters

    named = dict(model.named_parameters())
    params: dict = {}
    for d in spec.directions:
        params.update(perturbable_parameters(model, d.include_embeddings) if d.kind == "random" else named)
    return params


def _sync(model) -> None:
    """Wait for the model's device (CUDA work is queued; CPU work is already done)."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda" and torch.cuda.is_available():  # not the fake-CUDA tests' tensors
        torch.cuda.synchronize(device)


def _clean(metrics: dict) -> dict:
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in metrics.items()}


@dataclass(frozen=True)
class PointOutcome:
    """One evaluated grid point as a worker hands it back: the record to store and its responses."""

    i: int
    j: int
    metrics: dict
    responses: list[dict]


class ScanWorker:
    """Evaluates points of one prepared scan with its own loaded model and snapshot θ₀: in this
    process (``scan_grid`` without workers) or inside a Ray actor (``engine.distributed``).

    ``setup`` loads the model and refuses one whose fingerprint is not the driver's: a machine
    with a stale or different copy at the same path must not put its points under this key."""

    def __init__(
        self,
        prep: PreparedScan,
        session: Session,
        worker_id: str,
        node: str | None = None,
        check_each: bool = False,
    ):
        self.prep, self.session, self.worker_id, self.node = prep, session, worker_id, node
        self.check_each = check_each  # auto-range probes: each point's steps checked (bf16)
        self._state = None

    @staticmethod
    def factory(store_root: str, runtime: Runtime, prep: PreparedScan, check_each: bool = False):
        """A picklable ``(worker_id, node) -> ScanWorker`` for remote processes: each opens the
        store at ``store_root`` when that path exists on its machine (models named ``aligned``,
        GGUF conversions), else a private scratch store; it never writes points."""
        import functools

        return functools.partial(_remote_worker, store_root, runtime, prep, check_each=check_each)

    def setup(self) -> dict:
        self._check_inputs()  # hashes files only (memoised), before the model loads
        lm = self.session.model(self.prep.spec)
        self._refuse_if("model", self.prep.spec.model.source, lm.fingerprint, self.prep.model_fp)
        snapshot, dirs, info = self.session.directions(self.prep.spec)
        steps = self._check_steps(lm, snapshot, dirs)
        if steps:
            info = dict(info, step_check=steps)
        self._state = (snapshot, dirs)
        return info

    def _check_steps(self, lm, snapshot, dirs) -> list:
        """Refuse a grid whose smallest step the weights' dtype rounds away (bf16), before any
        point is computed; the check's figures go into the scan record."""
        from landscape.core.perturb import check_step_resolution

        axes = ([p.alpha for p in self.prep.points], [p.beta for p in self.prep.points])[: len(dirs)]
        smallest = [min((abs(v) for v in values if v), default=0.0) for values in axes]
        found = check_step_resolution(snapshot, dirs, smallest, lm.model.dtype)
        for c, err, same in found:
            self.session.log(
                f"{str(lm.model.dtype).removeprefix('torch.')} step check: step {c:g} kept to "
                f"{err:.3f} relative error ({same:.1%} of sampled weights unchanged)"
            )
        return [{"coeff": c, "relative_error": err, "unchanged": same} for c, err, same in found]

    def _check_inputs(self) -> None:
        """Refuse when an interpolation target, a direction file or a model judge has another
        fingerprint here than the driver's (each is read from this machine's own paths)."""
        from landscape.core.models import direction_file_fingerprint, model_fingerprint

        spec = self.prep.spec
        for k, (d, fp) in enumerate(zip(spec.directions, self.prep.target_fps, strict=False)):
            if d.target is not None:
                here = model_fingerprint(d.target, self.session.store)
                self._refuse_if(f"interpolation target of direction {k + 1}", d.target.source, here, fp)
            elif d.path is not None:
                self._refuse_if(f"file of direction {k + 1}", d.path, direction_file_fingerprint(d.path), fp)
        if self.prep.judge_model is not None:  # the rest of its identity comes from the spec
            here = judge_model_identity(spec.judge)["fingerprint"]
            driver = self.prep.judge_model["fingerprint"]
            self._refuse_if(f"{spec.judge.name} judge model", spec.judge.model, here, driver)

    def _refuse_if(self, what: str, source, here: str, driver: str | None) -> None:
        """One-line ModelError when ``here`` (this worker's fingerprint) is not the driver's."""
        if here == driver:
            return
        import socket

        from landscape.core.models import ModelError

        raise ModelError(
            f"worker {self.worker_id} on {socket.gethostname()}: {what} {source} "
            f"has fingerprint {here[:12]} there, the driver's is {(driver or 'none')[:12]}; "
            "refusing a stale or different copy (give every node the same files)"
        )

    def evaluate(self, p: GridPoint) -> PointOutcome:
        from landscape.core.provenance import point_provenance

        if self._state is None:
            self.setup()
        snapshot, dirs = self._state
        coeffs = [p.alpha, p.beta][: len(dirs)]
        if self.check_each:
            check_probe(snapshot, dirs, coeffs, self.session.model(self.prep.spec).model.dtype)
        batch = min(self.session.runtime.batch_size, len(self.prep.prompts))
        try:
            result = self.session.evaluate_at(
                self.prep.spec, self.prep.prompts, snapshot, dirs, coeffs, batch
            )
        except torch_oom() as exc:
            # Out of device memory (replicas sharing a GPU, a long generation): once more at half the
            # batch, then a one-line stop. The point is computed whole either way, never half-stored.
            _free_cached()
            if batch == 1:
                raise self._out_of_memory(p, batch, None) from exc
            self.session.log(
                f"worker {self.worker_id}: out of memory at batch {batch}; retrying at {batch // 2}"
            )
            try:
                result = self.session.evaluate_at(
                    self.prep.spec, self.prep.prompts, snapshot, dirs, coeffs, batch // 2
                )
            except torch_oom():
                _free_cached()
                raise self._out_of_memory(p, batch, batch // 2) from None
            batch //= 2
        where = point_provenance(self.session.runtime.device, self.worker_id, self.node, batch)
        metrics = dict(result.metrics, alpha=p.alpha, beta=p.beta, finished=time.time(), provenance=where)
        return PointOutcome(p.i, p.j, _clean(metrics), result.responses)

    def _out_of_memory(self, p: GridPoint, batch: int, half: int | None) -> SpecError:
        rt = self.session.runtime
        tried = f"batch {batch}" + (f", then {half}" if half else "")
        shared = (
            f"{rt.workers} replicas at {rt.gpus_per_worker:g} GPU each: use fewer --workers or a larger "
            "--gpus-per-worker"
            if rt.workers and 0 < rt.gpus_per_worker < 1
            else "use a smaller --batch-size"
        )
        return SpecError(
            f"worker {self.worker_id} ran out of device memory at point ({p.alpha:g}, {p.beta:g}) "
            f"({tried}); {shared} (finished points are in the store)"
        )


def check_probe(snapshot, dirs, coeffs, dtype) -> None:
    """Refuse a probe whose step the weights' dtype rounds away (bf16; see ``perturb.step_error``),
    before it is measured: a basin narrower than ``start`` is bisected down to ``start / 2**steps``
    (0.003 by default), where a bf16 weight keeps about half its elements unmoved, so the edge
    found there would be the dtype's, not the model's."""
    from landscape.core.perturb import StepResolutionError, check_step_resolution

    try:
        check_step_resolution(snapshot, dirs, [abs(c) for c in coeffs], dtype)
    except StepResolutionError as exc:
        raise StepResolutionError(f"auto range: {exc}") from None


def torch_oom() -> type[BaseException]:
    """PyTorch's out-of-memory error (``torch.OutOfMemoryError``; CUDA's is the same class)."""
    import torch

    return torch.OutOfMemoryError


def _free_cached() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _remote_worker(
    store_root: str,
    runtime: Runtime,
    prep: PreparedScan,
    worker_id: str,
    node=None,
    node_gpus: float = 1,
    check_each: bool = False,
):
    import tempfile
    from pathlib import Path

    root = Path(store_root) if Path(store_root).is_dir() else Path(tempfile.mkdtemp(prefix="landscape-"))
    session = Session(Store(root), runtime, lambda _msg: None, node_gpus)
    return ScanWorker(prep, session, worker_id, node, check_each)


def scan_grid(
    spec: ScanSpec,
    store: Store,
    runtime: Runtime | None = None,
    *,
    log: Log = print,
    session: Session | None = None,
    max_points: int | None = None,
    calibration: bool = False,
) -> ScanResult:
    """Compute every missing point of ``spec`` and return the whole grid with its summary.

    ``max_points`` stops after that many new points (used by ``estimate`` to calibrate; a record it
    creates is marked ``calibration`` and hidden from ``landscape list`` until a real scan of the
    same spec takes it over, keeping the point: ``calibration=True``). The scan's
    lease is held while computing (``engine.lease``): a second driver waits, then computes only
    what is still missing. ``runtime.workers`` spreads the points over that many Ray actors
    (``engine.distributed``); the store is written here, by the driver, either way.
    """
    from landscape.engine.lease import scan_lease

    runtime = runtime or Runtime()
    prep = prepare_scan(spec, store)
    record = store.scan_record(prep.key)
    created = record is None
    if created:  # written now so a running scan is listed (pending) while its first point computes
        store.put_scan_record(
            prep.key, dict(_new_record(prep), **({"calibration": True} if calibration else {}))
        )
    elif record.get("calibration") and not calibration:  # a real scan takes the estimate's point over
        record.pop("calibration")
        store.put_scan_record(prep.key, record)
    computed = 0
    try:
        if missing_points(store, prep, log):
            with scan_lease(store, prep.key, len(prep.points), runtime.lease_ttl_s, log) as lease:
                todo = missing_points(store, prep, log)[:max_points]  # what the last holder left
                if todo:
                    if max_points is None:
                        log(cost_line(prep, len(todo)))
                    computed = _compute(store, prep, todo, runtime, log, session, lease)
    except BaseException:
        # refused or stopped before its first point (non-finite weights, a refused model, Ctrl-C):
        # the record written above goes again, so nothing of this scan is left in the store
        if created and store.progress(prep.key) == 0:
            store.delete_scan_record(prep.key)
        raise
    return finish_scan(store, prep, computed)


def _compute(store, prep, todo, runtime, log, session, lease) -> int:
    def note(info: dict) -> None:  # orthogonalisation cosines, recorded once
        if info:
            store.put_scan_record(prep.key, dict(store.scan_record(prep.key) or _new_record(prep), **info))

    def save(p: GridPoint, outcome: PointOutcome) -> None:
        store.put_point(prep.key, p.i, p.j, outcome.metrics, outcome.responses)

    if runtime.workers:
        from landscape.engine.distributed import run_on_ray

        device = "cuda" if runtime.gpus_per_worker else "cpu"  # Ray gives each actor its GPU share
        factory = ScanWorker.factory(str(store.root), runtime.model_copy(update={"device": device}), prep)
        preflight = replica_preflight(prep, runtime, store, log)
        return run_on_ray(factory, todo, runtime, note, save, log, lease.check, preflight=preflight)
    worker = ScanWorker(prep, session or Session(store, runtime, log), "local")
    note(worker.setup())
    return _run_points(worker, prep, todo, runtime, save, lease.check)


def tokens_per_point(prep: PreparedScan) -> int:
    """The most new tokens one point can generate (harmful prompts plus capability prompts)."""
    spec = prep.spec
    prompts = len(prep.prompts) + (spec.capability.benign_limit if spec.capability else 0)
    return prompts * spec.generation.max_new_tokens


def cost_line(prep: PreparedScan, todo: int) -> str:
    """What a scan will cost before it starts: points × prompts × token budget."""
    per = tokens_per_point(prep)
    whole = prep.spec.generation.early_stop and get_judge(prep.spec.judge.name).decided is None
    return (
        f"scan {prep.key[:12]}: {plural(len(prep.points), 'point')} ({todo} to compute), "
        f"≤{per:,} new tokens a point, ≤{todo * per:,} in all; {judgement_note(prep.spec.generation)}"
        + (f" (judge {prep.spec.judge.name} reads whole responses: early stop never cuts)" if whole else "")
        + ("; `landscape estimate` times one point first" if todo > 20 else "")
    )


def _run_points(worker, prep, todo, runtime, save, check) -> int:
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc=f"scan {prep.key[:10]} ({prep.spec.kind})", unit="pt", disable=not runtime.progress)
    for p in bar:
        check()
        outcome = worker.evaluate(p)
        save(p, outcome)
        bar.set_postfix(asr=f"{outcome.metrics['asr_pct']:.0f}%", s=f"{outcome.metrics['point_s']:.1f}")
    bar.close()
    return len(todo)


def finish_scan(store: Store, prep: PreparedScan, computed: int = 0) -> ScanResult:
    """Read the grid back and summarise it; mark the record complete when every point is in."""
    grid = store.scan_grid(prep.key)
    record = store.scan_record(prep.key) or _new_record(prep)
    summary = scan_summary(record, grid.values["asr_pct"])
    if summary["complete"] and record.get("status") != "complete":
        record.update(status="complete", completed=time.time())
        store.put_scan_record(prep.key, record)
    return ScanResult(prep.key, prep.spec, grid, summary, computed, record)


def read_summary(store: Store, key: str, record: dict | None = None) -> dict:
    """The basin summary of a stored scan, recomputed from its grid (see module docstring)."""
    record = record if record is not None else store.scan_record(key)
    if record is None:
        return {}
    return scan_summary(record, store.scan_grid(key, fields=("asr_pct",), record=record).values["asr_pct"])


def listed_summary(store: Store, record: dict) -> tuple[dict, dict | None]:
    """A listed scan's summary and VISAGE interval (as a dict), for ``landscape list``.

    A complete scan's pair is computed once and kept in the store (``summary:<key>``), stamped with
    what it was computed from: the number of points, the scan's judge and the code (package version
    and commit, so a fix to VISAGE or the interval recomputes it); a scan still running, or whose
    stamp no longer matches, is recomputed. At 1,000 scans ``list`` then reads 1,000 small records
    instead of recomputing every grid and bootstrapping every interval (3.6 s before)."""
    from cache import StoreError
    from landscape import __version__
    from landscape.core.provenance import git_commit
    from landscape.core.uncertainty import visage_interval

    key = record["key"]
    complete = record.get("status") == "complete"
    stamp = {
        "done": record.get("done"),
        "judge": (record.get("spec") or {}).get("judge"),
        "code": [__version__, git_commit()],  # asked of git once a process (functools.cache)
    }
    if complete:
        try:
            memo = store.get_json(f"summary:{key}")
        except StoreError:  # a corrupt memo is recomputed
            memo = None
        if memo and memo.get("stamp") == stamp:
            return memo["summary"], memo["visage_ci"]
    summ = read_summary(store, key, record)
    ci = visage_interval(store, [key]) if summ.get("visage") is not None else None
    ci_dict = None if ci is None else ci._asdict()
    if complete:
        try:
            store.put_json(f"summary:{key}", {"stamp": stamp, "summary": summ, "visage_ci": ci_dict})
        except (TypeError, ValueError):  # a value the store will not hold (NaN): recomputed each time
            pass
    return summ, ci_dict


def estimate_scan(spec: ScanSpec, store: Store, runtime: Runtime, log: Log = print) -> dict:
    """Cost of a scan: points × prompts × tokens, and the time per point.

    The time comes from the scan's own stored points when it has any (the median of their
    ``point_s``: perturb, evaluate, restore), so asking again never computes anything; otherwise one
    missing point is computed and stored like any other (estimating never wastes work), and its
    time is used. Model loading and the snapshot, paid once a scan, are in ``calibration_wall_s``
    when a point was computed. ``timing``: "stored" (``timed_points`` of them), "calibrated" (one
    point computed now) or None (nothing stored, nothing missing)."""
    prep = prepare_scan(spec, store)
    todo = missing_points(store, prep, log)
    per_point = tokens_per_point(prep)
    out = {
        "key": prep.key,
        "points": len(prep.points),
        "missing": len(todo),
        "prompts": len(prep.prompts),
        "max_new_tokens": spec.generation.max_new_tokens,
        "max_tokens": per_point * len(todo),
        "seconds_per_point": None,
        "timing": None,
        "timed_points": 0,
        "estimated_s": 0.0,
    }
    timed = _stored_point_seconds(store, prep.key)
    if timed.size:
        out.update(seconds_per_point=float(np.median(timed)), timing="stored", timed_points=int(timed.size))
        out["estimated_s"] = out["seconds_per_point"] * len(todo)
    elif todo:
        t0 = time.perf_counter()
        quiet = runtime.model_copy(update={"progress": False})
        scan_grid(spec, store, quiet, log=log, max_points=1, calibration=True)
        point = store.point(prep.key, todo[0].i, todo[0].j) or {}
        per = point.get("point_s") or (time.perf_counter() - t0)
        out.update(seconds_per_point=per, timing="calibrated", timed_points=1, missing=len(todo) - 1)
        out["max_tokens"] = per_point * (len(todo) - 1)
        out["estimated_s"] = per * (len(todo) - 1)
        out["calibration_wall_s"] = time.perf_counter() - t0
    return out


def _stored_point_seconds(store: Store, key: str) -> np.ndarray:
    """Every stored point's whole-point time (``point_s``; older points have none)."""
    record = store.scan_record(key)
    if record is None:
        return np.zeros(0)
    values = store.scan_grid(key, ("point_s",), record).values.get("point_s")
    if values is None:
        return np.zeros(0)
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values) & (values > 0)]
