"""Ray replicas sharing a GPU (issue 22 §2), proven on a CPU with fake device sizes.

- each replica plans against its share of the device (``--gpus-per-worker`` × total, less its own
  model) and of the node's host memory, not against what is free when all set up at once;
- the driver refuses a replica count that cannot fit, in one line, before any actor starts: a
  Llama-2-7B-shaped model built from its config on the meta device, an H200's 141 GB;
- a point that runs out of device memory is retried once at half the batch (recorded in its
  provenance), then stops in one line naming the replica count and the flag to change.
"""

from __future__ import annotations

import json
import types

import pytest
import torch

from landscape.core.memory import ReplicaPlanError, check_replicas, free_memory, replica_share
from landscape.core.specs import (
    AxisSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
    SpecError,
)
from landscape.engine.scan import ScanWorker, Session, prepare_scan, replica_preflight

from ..core.test_memory import GB, llama7b

H200 = 141 * GB
HOST = 2000 * GB  # an 8-GPU node's host memory
MODEL_7B = 13_476_839_424  # Llama-2-7B in bfloat16, every parameter


def test_a_replica_plans_against_its_share_not_the_free_device():
    # all four replicas set up at once: each sees 127.5 GB free (the others have not loaded yet)
    free = H200 - MODEL_7B
    assert replica_share(free, HOST, H200, MODEL_7B, HOST, 0.25, node_gpus=8) == (
        int(0.25 * H200) - MODEL_7B,
        int(0.25 * HOST / 8),
    )
    assert replica_share(free, HOST, H200, MODEL_7B, HOST, 0.0) == (free, HOST)  # no share: all free
    assert replica_share(free, HOST, H200, MODEL_7B, HOST, 1.0) == (free, HOST)  # a GPU of its own


def test_free_memory_of_a_replica_on_a_fake_h200(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (H200 - MODEL_7B, H200))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: MODEL_7B)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: MODEL_7B)
    alone = free_memory("cuda")[0]
    shared = free_memory("cuda", 0.25)[0]
    assert alone == H200 - MODEL_7B
    assert shared == int(0.25 * H200) - MODEL_7B  # 21.8 GB, not 127.5


def test_four_7b_replicas_on_one_h200_are_refused_with_the_flag_that_fits():
    budget = llama7b(free_device=0, free_host=0)
    with pytest.raises(ReplicaPlanError) as err:
        check_replicas(budget, MODEL_7B, H200, HOST, 0.25, workers=4, node_gpus=8)
    line = str(err.value)
    assert "\n" not in line and isinstance(err.value, SpecError)
    assert line.startswith("4 Ray replicas at 0.25 GPU each do not fit")
    assert "one needs ≈41.8 GB" in line and "--gpus-per-worker 0.33 (3 per GPU)" in line
    plan = check_replicas(budget, MODEL_7B, H200, HOST, 0.33, workers=3, node_gpus=8)
    assert plan.snapshot == "host"  # 3 per GPU: a pinned snapshot leaves room for decoding
    assert check_replicas(budget, MODEL_7B, H200, HOST, 0.5, workers=2, node_gpus=8).snapshot == "device"
    with pytest.raises(ReplicaPlanError, match="a GPU of its own"):  # none fits a 24 GB card
        check_replicas(budget, MODEL_7B, 24 * GB, HOST, 0.5, workers=2)


def _llama7b_config_dir(tmp_path):
    from transformers import LlamaConfig

    folder = tmp_path / "llama7b"
    folder.mkdir()
    LlamaConfig(  # Llama-2-7B's shape; no weights: the driver sizes it on the meta device
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(folder)
    from safetensors.torch import save_file

    save_file(
        {"stand_in": torch.zeros(1)}, folder / "model.safetensors"
    )  # never read: shapes come from the config
    return folder


def test_the_driver_refuses_before_any_actor_from_the_config_alone(tmp_path, store):
    folder = _llama7b_config_dir(tmp_path)
    spec = ScanSpec(
        model=ModelSpec(source=str(folder), dtype="bfloat16"),
        prompts=PromptSpec(source="builtin:harmful", limit=64),
        alphas=AxisSpec(start=-0.5, stop=0.5, num=5),
        betas=AxisSpec(start=-0.5, stop=0.5, num=5),
        generation=GenerationSpec(max_new_tokens=512),
        directions=({"seed": 0}, {"seed": 1}),
    )
    prep = types.SimpleNamespace(spec=spec)  # the preflight reads the spec only, never weights
    facts = {"device_total": H200, "host_total": HOST, "node_gpus": 8}
    lines = []
    check = replica_preflight(prep, Runtime(workers=4, gpus_per_worker=0.25), store, lines.append)
    with pytest.raises(ReplicaPlanError, match=r"^4 Ray replicas at 0.25 GPU each do not fit.*0.33"):
        check(facts)
    replica_preflight(prep, Runtime(workers=2, gpus_per_worker=0.5), store, lines.append)(facts)
    assert lines[-1].startswith("ray: one replica at 0.5 GPU fits: model 13.5 GB")
    assert replica_preflight(prep, Runtime(workers=2), store, lines.append) is None  # CPU replicas


@pytest.mark.slow
def test_ray_runs_the_preflight_before_any_actor(tmp_path):
    """A real local Ray declaring one GPU (none exists): the preflight sees no CUDA device (None)
    and refuses; no actor was ever constructed."""
    import ray

    from landscape.engine.distributed import run_on_ray

    marker = tmp_path / "actor-started"
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        seen = []

        def refuse(facts):
            seen.append(facts)
            raise ReplicaPlanError("2 Ray replicas at 0.5 GPU each do not fit: …")

        runtime = Runtime(workers=2, gpus_per_worker=0.5, progress=False)
        with pytest.raises(ReplicaPlanError):
            run_on_ray(
                _marking_factory(str(marker)),
                [object()],
                runtime,
                print,
                print,
                print,
                lambda: None,
                preflight=refuse,
            )
        assert seen == [None] and not marker.exists()
    finally:
        ray.shutdown()


def _marking_factory(path: str):
    import functools

    return functools.partial(_mark, path)


def _mark(path, worker_id, node, node_gpus=1):
    open(path, "w").close()
    raise RuntimeError("an actor was started")


def _worker(tiny_model, prompts_file, store, runtime) -> ScanWorker:
    spec = ScanSpec(
        model=ModelSpec(source=str(tiny_model)),
        prompts=PromptSpec(source=str(prompts_file)),
        alphas=AxisSpec(start=-0.5, stop=0.5, num=3),
        generation=GenerationSpec(max_new_tokens=4),
    )
    prep = prepare_scan(spec, store)
    worker = ScanWorker(prep, Session(store, runtime, lambda _m: None), "w0")
    worker.setup()
    return worker


def _oom_above(model, rows: int):
    """A forward hook standing in for a device that holds at most ``rows`` prompts at once."""

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > rows:
            raise torch.OutOfMemoryError(f"fake device: {ids.shape[0]} rows > {rows}")

    return model.register_forward_pre_hook(hook, with_kwargs=True)


def test_a_point_out_of_memory_is_retried_once_at_half_the_batch(tiny_model, prompts_file, store):
    runtime = Runtime(progress=False, batch_size=4)
    worker = _worker(tiny_model, prompts_file, store, runtime)
    point = worker.prep.points[1]
    clean = worker.evaluate(point)  # batch 4, no limit
    lm = worker.session.model(worker.prep.spec)
    handle = _oom_above(lm.model, 2)
    try:
        retried = worker.evaluate(point)
    finally:
        handle.remove()
    assert json.loads(json.dumps(retried.metrics["provenance"]))["batch_size"] == 2
    assert clean.metrics["provenance"]["batch_size"] == 4
    assert retried.metrics["asr_pct"] == clean.metrics["asr_pct"]  # fp32 CPU: the same greedy tokens
    assert [r["response"] for r in retried.responses] == [r["response"] for r in clean.responses]


def test_a_point_out_of_memory_twice_stops_in_one_line_naming_the_replicas(tiny_model, prompts_file, store):
    runtime = Runtime(progress=False, batch_size=4, workers=4, gpus_per_worker=0.25)
    worker = _worker(tiny_model, prompts_file, store, runtime.model_copy(update={"device": "cpu"}))
    lm = worker.session.model(worker.prep.spec)
    handle = _oom_above(lm.model, 1)
    try:
        with pytest.raises(SpecError) as err:
            worker.evaluate(worker.prep.points[0])
    finally:
        handle.remove()
    line = str(err.value)
    assert "\n" not in line and "ran out of device memory" in line and "(batch 4, then 2)" in line
    assert "4 replicas at 0.25 GPU each: use fewer --workers or a larger --gpus-per-worker" in line
    # the weights are θ₀ again: the next point is computed as if nothing happened
    assert worker.evaluate(worker.prep.points[0]).metrics["provenance"]["batch_size"] == 4
