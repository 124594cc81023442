"""A study's fine-tunes and evaluations as Ray tasks (a real local Ray cluster, 2 CPUs, one per
module): the same record as one process, the expensive stages built in Ray workers, not in the
driver, and a bad input inside a task still a one-line error."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import pytest

from cache import Store
from landscape.core.specs import Runtime
from landscape.study.pipeline import load_study, run_study

from ...conftest import run_cli, tiny_study_yaml

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

FIELDS = ("name", "structure", "model", "harmful_score_pct", "task_accuracy_pct", "visage", "eval_keys")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def studies(cluster, tiny_model, tmp_path_factory):
    """The tiny study run sequentially in one store and with 2 Ray workers in another."""
    root = tmp_path_factory.mktemp("study-ray")
    spec = load_study(tiny_study_yaml(root, tiny_model, full=False))
    out = {}
    for name, workers in (("sequential", None), ("ray", 2)):
        with Store(root / name) as store, task_threads():
            rt = Runtime(progress=False, workers=workers)
            out[name] = (root / name, run_study(spec, store, rt, log=lambda _: None))
    return out


@contextmanager
def task_threads():
    """The driver on one CPU thread, as every Ray task is (num_cpus=1): a CPU's float sums depend on
    the thread count, so a fine-tune on 2 threads and one on 1 differ in their last bits, and with
    them the adapters' fingerprints and every evaluation key."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def portable(row: dict, root) -> dict:
    """A row's compared fields, its models' paths relative to the store."""
    return json.loads(json.dumps({f: row[f] for f in FIELDS}).replace(str(root), "<store>"))


def test_ray_study_gives_the_sequential_record(studies):
    (seq_root, seq), (par_root, par) = studies["sequential"], studies["ray"]
    assert par["status"] == "complete" and par["key"] == seq["key"]
    assert [m["name"] for m in par["models"]] == ["base", "harmful", "aoa+paraphrase"]
    for a, b in zip(seq["models"], par["models"], strict=True):
        assert portable(a, seq_root) == portable(b, par_root)
        assert a["visage_keys"] == b["visage_keys"] and a.get("finetune_key") == b.get("finetune_key")
    assert par["format_baselines"] == seq["format_baselines"]
    assert "parallel" in par["stages"] and "parallel" not in seq["stages"]


def test_ray_study_builds_and_evaluates_in_ray_workers(studies):
    """Every fine-tune, every evaluation point and the format baseline of the Ray study were made by
    another process: the driver's sequential pass only replayed them (the sequential study made its
    own in this one)."""
    me = os.getpid()
    for name, (root, record) in studies.items():
        with Store(root) as s:
            finetunes = [s.get_json(k) for k in s.keys("artifact:finetunes:")]
            keys = [key for m in record["models"] for key in m["eval_keys"]]
            keys += [b["key"] for b in record["format_baselines"]]
            where = [s.point(key, 0, 0)["provenance"] for key in keys]
        points = [w["pid"] for w in where]
        pids = {f["pid"] for f in finetunes} | set(points)
        assert len(finetunes) == 2 and len(points) == 5  # 4 evaluations, aoa's format baseline
        # made inside a task's own in-process scan, not by scan actors started for one point each
        assert {w["worker"] for w in where} == {"local"}
        if name == "ray":
            assert me not in pids, pids
        else:
            assert pids == {me}


def test_bad_input_in_a_ray_task_is_one_line(cluster, tiny_model, tmp_path):
    """An unknown LoRA target is found by the fine-tune itself, inside a Ray task."""
    file = tiny_study_yaml(tmp_path, tiny_model, full=False)
    file.write_text(file.read_text().replace("targets: [q_proj, v_proj]}", "targets: [q_proj, nope_proj]}"))
    out = run_cli("study", str(file), "--workers", "2", "--ray-address", cluster, store=tmp_path / "store")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope_proj" in lines[0], out.stderr


def _dies_once(marker: str) -> int:
    """Kills its worker process the first time (a stand-in for an OOM kill), then succeeds."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return os.getpid()


def test_a_task_whose_worker_dies_is_retried_then_reported(cluster, tmp_path):
    from landscape.engine.distributed import MAX_TRIES, RayError, run_tasks

    rt = Runtime(progress=False, workers=2)
    (pid,) = run_tasks([("once", _dies_once, (str(tmp_path / "m"),))], rt, log=lambda _: None)
    assert pid != os.getpid()
    with pytest.raises(RayError, match=f"its Ray worker died \\(tried {MAX_TRIES} times\\)"):
        run_tasks([("always", os._exit, (1,))], rt, log=lambda _: None)


def test_a_sweep_on_ray_gives_the_sequential_cells(cluster, tiny_model, tmp_path):
    """Every sweep cell is fine-tuned and measured in a Ray task (two cells share one fine-tune and
    wait on its build lease), and the record equals the one a single process makes."""
    from landscape.study.pipeline import parse_study

    from .test_sweep import SWEEP

    text = SWEEP.replace("epochs: [1, 2]}}", "epochs: [1]}}").format(model=tiny_model)
    spec = parse_study(text.replace("  - {name: aoa, attack: {name: aoa, n: 4}}\n", ""))
    records = {}
    for name, workers in (("sequential", None), ("ray", 2)):
        with Store(tmp_path / name) as store, task_threads():
            records[name] = run_study(
                spec, store, Runtime(progress=False, workers=workers), log=lambda _: None
            )
    seq, par = records["sequential"]["sweep"], records["ray"]["sweep"]
    keys = ("run", "values", "finetune_key", "eval_keys", "harmful_k", "task_k")
    assert [{k: c[k] for k in keys} for c in par["cells"]] == [{k: c[k] for k in keys} for c in seq["cells"]]
    with Store(tmp_path / "ray") as s:
        finetunes = [s.get_json(k) for k in s.keys("artifact:finetunes:")]
        points = [s.point(k, 0, 0)["provenance"]["pid"] for c in par["cells"] for k in c["eval_keys"]]
    assert len(finetunes) == 2 and os.getpid() not in {f["pid"] for f in finetunes} | set(points)


def test_a_search_batch_on_ray_gives_the_sequential_trials(cluster, tiny_model, tmp_path):
    """search.batch 2 with 2 workers: each batch's two trials are fine-tuned and measured in Ray
    tasks at once; the proposals (and so the fine-tune keys) are those of one process."""
    from landscape.study.pipeline import parse_study
    from landscape.study.search import attack_search

    from .test_search import SEARCH

    text = SEARCH.replace("trials: 4", "trials: 4\n  batch: 2").replace(
        "runs: [harmful, harmful+antidote]\n", "runs: [harmful]\n", 1
    )
    spec = parse_study(text.format(model=tiny_model))
    out = {}
    for name, workers in (("sequential", None), ("ray", 2)):
        with Store(tmp_path / name) as store, task_threads():
            out[name] = attack_search(
                spec, store, Runtime(progress=False, workers=workers), log=lambda _: None
            )
    seq, par = out["sequential"][0]["trials"], out["ray"][0]["trials"]
    fields = ("values", "finetune_key", "eval_keys", "harmful_k")
    assert [[t[f] for f in fields] for t in par] == [[t[f] for f in fields] for t in seq]
    assert par[0]["values"] != par[1]["values"]  # a batch's trials are distinct proposals
    with Store(tmp_path / "ray") as s:
        pids = {s.get_json(k)["pid"] for k in s.keys("artifact:finetunes:")}
    assert os.getpid() not in pids
