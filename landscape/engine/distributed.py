"""Ray backend: a scan's points evaluated by N Ray actors, the store written by the driver alone.

The only module that imports ``ray``, and only when ``Runtime.workers`` is set. Each actor builds one
worker from a picklable factory (``ScanWorker.factory``): it loads the model once, keeps its own
snapshot θ₀ and refuses a model whose fingerprint is not the driver's. The driver hands out points
in the order given (centre-out) to whichever actor is free (a ``ray.wait`` loop), and stores every
result the moment it arrives through ``save``: SQLite has one writer, and diskcache over a network
file system is not safe, so actors never write points. Fractional ``gpus_per_worker`` packs several
replicas of a small model on one GPU. Auto range uses the same loop for its probes: every
(direction, sign) search has one probe in flight, and ``save`` hands back that search's next one.

Faults: an actor that dies mid-point (killed, OOM, node lost) is replaced and its point re-run; a
point that kills three actors is reported. An error that is the spec's fault (``SpecError``: a
refused fingerprint, non-finite weights) ends the scan with that error's one line. Ctrl-C, or any
error, kills the actors; a Ray started here is shut down again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections import deque
from collections.abc import Callable

from landscape.core.specs import Runtime, SpecError

MAX_TRIES = 3  # a point that kills this many actors is not retried again


class RayError(SpecError):
    """The Ray cluster cannot be reached, or keeps losing the workers."""


class _PointActor:
    """The body of one Ray actor: a worker made on the actor's process, called per point."""

    def __init__(self, factory: Callable, worker_id: str):
        import ray

        node = ray.get_runtime_context().get_node_id()
        self.worker = factory(worker_id, node, node_gpus=_node_gpus(node))

    def setup(self) -> dict:
        return self.worker.setup()

    def evaluate(self, point):
        return self.worker.evaluate(point)

    def pid(self) -> int:
        return os.getpid()


def _node_gpus(node: str) -> float:
    """GPUs of Ray node ``node`` (at least 1: the divisor of a replica's host share)."""
    import ray

    return max((n["Resources"].get("GPU", 0) for n in ray.nodes() if n["NodeID"] == node), default=0) or 1


def _device_facts() -> dict | None:
    """Run as a Ray task holding a replica's GPU share: the device's and the node's memory, or None
    when no CUDA device is visible (a CPU node that declared GPUs)."""
    import psutil
    import ray
    import torch

    if not torch.cuda.is_available():
        return None
    return {
        "device_total": torch.cuda.get_device_properties(0).total_memory,
        "host_total": psutil.virtual_memory().total,
        "node_gpus": _node_gpus(ray.get_runtime_context().get_node_id()),
    }


def _connect(runtime: Runtime, log: Callable[[str], None]) -> bool:
    """Join the configured cluster, or start a local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = runtime.ray_address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"logging_level": "ERROR", "log_to_driver": False}
    if address is None:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    res = ray.cluster_resources()
    log(
        f"ray: {'joined ' + address if address else 'started a local Ray'} "
        f"({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs)"
    )
    return True


@contextlib.contextmanager
def ray_session(runtime: Runtime, log: Callable[[str], None]):
    """Ray connected for the whole block (one start-up for every task and scan of a study or a scan
    family); a Ray started here is shut down at its end. Without ``runtime.workers`` it does nothing
    and Ray is not imported."""
    if not runtime.workers:
        yield
        return
    import ray

    started = _connect(runtime, log)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _cause(exc: Exception) -> Exception:
    """The worker's own exception inside a ``RayTaskError`` (so a SpecError stays one line)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc


def run_on_ray(
    factory: Callable,
    todo: list,
    runtime: Runtime,
    note: Callable[[dict], None],
    save: Callable,
    log: Callable[[str], None],
    check: Callable[[], None],
    name: str = "scan",
    preflight: Callable[[dict | None], None] | None = None,
) -> int:
    """Evaluate every point of ``todo`` on ``runtime.workers`` actors; ``save(point, outcome)`` each
    result as it arrives, ``note(info)`` the first worker's setup info, ``check()`` before handing out
    a point (a lost lease raises). ``save`` may return further points, queued behind the rest (an
    auto-range search hands out its next probe once its last one is measured). Returns the number of
    points stored. Points are ``GridPoint``s: ``(i, j)`` names one for retries, ``(alpha, beta)``
    are its coefficients. ``preflight(facts)``, when given, sees one GPU worker's device facts
    (``_device_facts``) before any actor starts, and may refuse the run with a one-line error."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError
    from tqdm.auto import tqdm

    actor_cls = ray.remote(num_cpus=1, num_gpus=runtime.gpus_per_worker, max_restarts=0)(_PointActor)
    actors: dict[str, object] = {}
    setups: dict[object, str] = {}  # setup call → worker id
    busy: dict[object, tuple[str, object]] = {}  # evaluate call → (worker id, point)
    idle: deque[str] = deque()
    queue = deque(todo)
    tries: dict[tuple[int, int], int] = {}
    serial, run = itertools.count(), uuid.uuid4().hex[:8]
    noted, count, setup_deaths = False, 0, 0

    def spawn() -> None:
        wid = f"{name}-{run}-w{next(serial)}"
        handle = actor_cls.options(name=wid).remote(factory, wid)
        actors[wid] = handle
        setups[handle.setup.remote()] = wid

    def lost(wid: str, what: str) -> None:
        log(f"worker {wid} died {what}; starting a replacement")
        actors.pop(wid, None)
        spawn()

    with ray_session(runtime, log):
        bar = tqdm(
            total=len(todo),
            desc=f"{name} on {runtime.workers} Ray workers",
            unit="pt",
            disable=not runtime.progress,
        )
        try:
            if preflight is not None:
                probe = ray.remote(num_cpus=0, num_gpus=runtime.gpus_per_worker)(_device_facts)
                preflight(ray.get(probe.remote()))
            for _ in range(min(runtime.workers or 1, len(todo))):  # at most one per first point
                spawn()
            while queue or busy:
                while idle and queue:
                    check()
                    wid, p = idle.popleft(), queue.popleft()
                    busy[actors[wid].evaluate.remote(p)] = (wid, p)
                ready, _ = ray.wait(list(busy) + list(setups), num_returns=1)
                ref = ready[0]
                if ref in setups:
                    wid = setups.pop(ref)
                    try:
                        info = ray.get(ref)
                    except RayActorError:
                        setup_deaths += 1
                        if setup_deaths >= MAX_TRIES * (runtime.workers or 1):
                            raise RayError(
                                f"{setup_deaths} workers died while loading the model; giving up"
                            ) from None
                        lost(wid, "while loading the model")
                        continue
                    except RayTaskError as exc:
                        raise _cause(exc) from None
                    if not noted:
                        note(info)
                        noted = True
                    idle.append(wid)
                    continue
                wid, p = busy.pop(ref)
                try:
                    outcome = ray.get(ref)
                except RayActorError:
                    tries[(p.i, p.j)] = tries.get((p.i, p.j), 0) + 1
                    if tries[(p.i, p.j)] >= MAX_TRIES:
                        raise RayError(
                            f"point ({p.alpha:g}, {p.beta:g}) killed {MAX_TRIES} workers; giving up "
                            "(out of memory? finished points are in the store)"
                        ) from None
                    queue.appendleft(p)
                    lost(wid, f"at point ({p.alpha:g}, {p.beta:g}); re-running it")
                    continue
                except RayTaskError as exc:
                    raise _cause(exc) from None
                more = save(p, outcome) or []
                queue.extend(more)
                bar.total += len(more)
                count += 1
                bar.update(1)
                bar.set_postfix(
                    asr=f"{outcome.metrics['asr_pct']:.0f}%", s=f"{outcome.metrics['point_s']:.1f}"
                )
                idle.append(wid)
        finally:
            bar.close()
            for handle in actors.values():
                ray.kill(handle)
    return count


def _call(fn: Callable, args: tuple):
    """The body of one Ray task: ``fn(*args)`` on the worker's process."""
    return fn(*args)


def run_tasks(calls: list[tuple[str, Callable, tuple]], runtime: Runtime, log: Callable[[str], None]) -> list:
    """``fn(*args)`` for every ``(label, fn, args)`` of ``calls`` as Ray tasks, at most
    ``runtime.workers`` at a time, each with ``gpus_per_worker`` GPUs; returns the results in order.

    Unlike scan actors, these tasks write the store themselves (through the same cached code as one
    process), which SQLite/diskcache allows between processes of ONE machine only: every task is
    pinned to the driver's node (``NodeAffinitySchedulingStrategy``, not soft), so a multi-GPU node
    runs them in parallel and a multi-node cluster runs them on the driver's node alone. A task whose
    worker dies is retried (``MAX_TRIES`` in all), then reported; a task's ``SpecError`` ends the run
    with its one line. What a finished task stored stays in the store either way."""
    import ray
    from ray.exceptions import NodeDiedError, OutOfMemoryError, RayTaskError, WorkerCrashedError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    with ray_session(runtime, log):
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        task = ray.remote(_call).options(
            num_cpus=1,
            num_gpus=runtime.gpus_per_worker,
            max_retries=MAX_TRIES - 1,
            scheduling_strategy=here,
        )
        results: list = [None] * len(calls)
        queue = deque(enumerate(calls))
        busy: dict[object, int] = {}
        try:
            while queue or busy:
                while queue and len(busy) < (runtime.workers or 1):
                    k, (_, fn, args) = queue.popleft()
                    busy[task.remote(fn, args)] = k
                ready, _ = ray.wait(list(busy), num_returns=1)
                k = busy.pop(ready[0])
                try:
                    results[k] = ray.get(ready[0])
                except (WorkerCrashedError, OutOfMemoryError, NodeDiedError):
                    raise RayError(
                        f"{calls[k][0]}: its Ray worker died (tried {MAX_TRIES} times); giving up "
                        "(out of memory? finished stages are in the store)"
                    ) from None
                except RayTaskError as exc:
                    raise _cause(exc) from None
                log(f"ray: {calls[k][0]} done ({len(calls) - len(queue) - len(busy)}/{len(calls)})")
        finally:
            for ref in busy:
                ray.cancel(ref, force=True)
    return results
