"""Scans on Ray actors (a real local Ray cluster, 2 CPUs, one per module) and scan leases.

Same grid and per-prompt verdicts as one process; a killed actor is replaced and nothing is lost; a
SIGKILLed driver resumes; a worker with another model file is refused; two drivers never compute a
point twice; without --workers Ray is never imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cache import Store
from landscape.core.models import ModelError
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    Runtime,
    ScanSpec,
)
from landscape.engine.scan import ScanWorker, prepare_scan, scan_grid

from ...conftest import ROOT, forced_config

ray = pytest.importorskip("ray")
RT = Runtime(progress=False)
RAY2 = Runtime(progress=False, workers=2)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def spec_for(model, prompts_file, n=3, two=False, tokens=6, **kw) -> ScanSpec:
    return ScanSpec(
        model=ModelSpec(source=str(model)),
        prompts=PromptSpec(source=str(prompts_file)),
        generation=GenerationSpec(max_new_tokens=tokens, **kw),
        directions=(DirectionSpec(seed=1), DirectionSpec(seed=2)) if two else (DirectionSpec(seed=1),),
        alphas=AxisSpec(start=-1, stop=1, num=n),
        betas=AxisSpec(start=-1, stop=1, num=2) if two else None,
    )


def verdicts(store, res):
    """Every prompt's row (prompt, response, verdict, incoherence, end) at every point."""
    return {
        (i, j): store.point_responses(res.key, i, j)
        for i in range(len(res.grid.alphas))
        for j in range(1 if res.grid.betas is None else len(res.grid.betas))
    }


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def cli(store_dir, model, prompts_file, *extra) -> list[str]:
    return [
        sys.executable, "-m", "landscape", "--store", str(store_dir), "scan", "1d",
        "--model", str(model), "--prompts", str(prompts_file), "--range", "-1", "1",
        *extra,
    ]  # fmt: skip


def test_two_workers_give_the_grid_and_verdicts_of_one_process(cluster, tmp_path, tiny_model, prompts_file):
    import torch

    spec = spec_for(tiny_model, prompts_file, two=True)
    threads = torch.get_num_threads()
    with Store(tmp_path / "one") as one, Store(tmp_path / "ray") as many:
        # Each actor computes on one CPU thread (num_cpus=1); a CPU's float sums depend on the thread
        # count, so the single process runs on one thread too: same numerics, same answers.
        torch.set_num_threads(1)
        try:
            local = scan_grid(spec, one, RT, log=lambda _m: None)
        finally:
            torch.set_num_threads(threads)
        remote = scan_grid(spec, many, RAY2, log=lambda _m: None)
        assert remote.key == local.key and remote.computed == local.computed == 6
        np.testing.assert_array_equal(remote.grid.values["asr_pct"], local.grid.values["asr_pct"])
        assert verdicts(many, remote) == verdicts(one, local)
        cosines = [s.scan_record(remote.key)["cosine_before"] for s in (many, one)]
        assert cosines[0] == pytest.approx(cosines[1], rel=1e-12)  # float64 sums, rounding only
        assert many.progress(remote.key) == 6  # every point stored once
        here = one.point(local.key, 0, 0)["provenance"]
        there = many.point(remote.key, 0, 0)["provenance"]
        assert here["worker"] == "local" and here["node"] is None and here["torch"] and here["device_name"]
        assert (
            there["worker"].startswith("scan-") and there["node"] and there["host"] and there["transformers"]
        )


def test_a_killed_actor_is_replaced_and_its_point_rerun(cluster, tmp_path, tiny_model, prompts_file):
    spec = spec_for(tiny_model, prompts_file, n=8, tokens=24, early_stop=False)
    logs: list[str] = []
    with Store(tmp_path / "s") as store:
        key = prepare_scan(spec, store).key
        out: dict = {}
        thread = threading.Thread(
            target=lambda: out.update(res=scan_grid(spec, store, RAY2, log=logs.append))
        )
        thread.start()
        deadline = time.time() + 120
        while store.progress(key) < 1 and time.time() < deadline:
            time.sleep(0.02)
        victim = sorted(
            a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "-w" in a["name"]
        )[0]
        ray.kill(ray.get_actor(victim, namespace=next(
            a["namespace"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == victim
        )))  # fmt: skip
        thread.join(timeout=300)
        res = out["res"]
        assert any("died" in m and victim in m for m in logs), logs
        assert res.computed == 8 and res.grid.done == 8 and res.summary["complete"]
        assert store.progress(key) == 8  # nothing stored twice, nothing lost


def test_a_worker_with_another_model_file_is_refused(cluster, tmp_path, tiny_model, prompts_file):
    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    spec = spec_for(copy, prompts_file)
    with Store(tmp_path / "s") as store:
        prep = prepare_scan(spec, store)  # the driver fingerprints the copy …
        config = json.loads((copy / "config.json").read_text())
        config["rms_norm_eps"] = 1e-5  # … then the copy a worker reads changes (a stale node)
        (copy / "config.json").write_text(json.dumps(config))
        from landscape.engine.distributed import run_on_ray

        saved = []
        factory = ScanWorker.factory(str(store.root), RAY2, prep)
        with pytest.raises(ModelError, match="refusing a stale or different copy") as err:
            run_on_ray(
                factory, prep.points, RAY2, lambda _i: None, lambda *a: saved.append(a), print, lambda: None
            )
        assert "\n" not in str(err.value) and prep.model_fp[:12] in str(err.value)
        assert saved == [] and store.progress(prep.key) == 0


def _stale(directory) -> None:
    """Change a model directory's config after the driver fingerprinted it (a stale node's copy)."""
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(dict(config, stale_copy=True)))


@pytest.mark.parametrize("what", ["target", "file", "judge"])
def test_a_worker_with_another_target_file_or_judge_is_refused(
    what, cluster, tmp_path, tiny_model, tiny_model_b, forced_judges, prompts_file
):
    from safetensors.torch import save_file

    from landscape.core.specs import JudgeSpec
    from landscape.engine.distributed import run_on_ray

    spec = spec_for(tiny_model, prompts_file, n=2)
    if what == "target":
        target = shutil.copytree(tiny_model_b, tmp_path / "target")
        direction = DirectionSpec(kind="interpolation", target=ModelSpec(source=str(target)))
        spec = spec.model_copy(update={"directions": (direction,)})
        label, change = "interpolation target of direction 1", lambda: _stale(target)
    elif what == "file":
        import torch

        path = tmp_path / "d.safetensors"
        save_file({"model.norm.weight": torch.ones(32)}, str(path))
        direction = DirectionSpec(kind="file", path=str(path), norm="none")
        spec = spec.model_copy(update={"directions": (direction,)})
        label = "file of direction 1"

        def change():
            save_file({"model.norm.weight": torch.full((32,), 2.0)}, str(path))
    else:
        judge = shutil.copytree(forced_judges["classifier_0"], tmp_path / "judge")
        labels = {"LABEL_0": "safe", "LABEL_1": "harmful"}
        spec = spec.model_copy(
            update={"judge": JudgeSpec(name="classifier", model=str(judge), label_map=labels)}
        )
        label, change = "classifier judge model", lambda: _stale(judge)
    with Store(tmp_path / "s") as store:
        prep = prepare_scan(spec, store)  # the driver fingerprints the inputs …
        change()  # … then the copy a worker reads changes
        saved = []
        factory = ScanWorker.factory(str(store.root), RAY2, prep)
        with pytest.raises(ModelError, match="refusing a stale or different copy") as err:
            run_on_ray(
                factory, prep.points, RAY2, lambda _i: None, lambda *a: saved.append(a), print, lambda: None
            )
        msg = str(err.value)
        assert "\n" not in msg and label in msg and "on " in msg, msg
        driver = prep.judge_model["fingerprint"] if what == "judge" else prep.target_fps[0]
        assert f"the driver's is {driver[:12]}" in msg, msg
        assert saved == [] and store.progress(prep.key) == 0


@pytest.fixture(scope="module")
def refusing_model(tmp_path_factory, tokenizer_dir):
    """A tiny random Llama that answers "Sorry" at θ₀ (every token embeds alike, so its last hidden
    state h is one vector; the head's "Sorry" row is h, every other row −h) and stops refusing
    further out, at different coefficients per prompt, direction and sign: a basin to find."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from landscape.core.models import save_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = forced_config(tok)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:] = emb[0].clone()
        h = model.model(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state[0, -1]
        model.lm_head.weight[:] = -h
        model.lm_head.weight[tok.encode("Sorry", add_special_tokens=False)[0]] = h
    directory = tmp_path_factory.mktemp("refusing")
    save_model(model, tok, directory)
    return directory


def test_auto_range_on_workers_probes_and_finds_what_one_process_does(
    cluster, tmp_path, refusing_model, prompts_file
):
    import torch

    from landscape.engine.autorange import AutoRangeSpec, auto_range, probes_key

    spec = spec_for(refusing_model, prompts_file, two=True)
    cfg = AutoRangeSpec(bisect_steps=2)
    threads = torch.get_num_threads()
    with Store(tmp_path / "one") as one, Store(tmp_path / "ray") as many, Store(tmp_path / "resume") as half:
        key = probes_key(prepare_scan(spec, one).key, cfg)
        torch.set_num_threads(1)  # the actors' thread count: same numerics (see the grid test above)
        try:
            local = auto_range(spec, one, RT, cfg, log=lambda _m: None)
        finally:
            torch.set_num_threads(threads)
        probes = one.get_json(key)
        assert len(set(local.edges)) == 2 and {0.0, 100.0} < set(probes.values())  # a real basin
        remote = auto_range(spec, many, RAY2, cfg, log=lambda _m: None)
        assert remote.edges == local.edges and remote.spec == local.spec
        assert many.get_json(key) == probes and remote.probes == local.probes == len(probes)
        # A driver killed mid-search left some probes: the rerun measures only the rest.
        kept = dict(list(probes.items())[::2])
        half.put_json(key, kept)
        resumed = auto_range(spec, half, RAY2, cfg, log=lambda _m: None)
        assert resumed.edges == local.edges and half.get_json(key) == probes
        assert resumed.probes == len(probes) - len(kept)


@pytest.mark.slow
def test_sigkilled_ray_driver_resumes_without_recomputing(cluster, tmp_path, tiny_model, prompts_file):
    store_dir = tmp_path / "s"
    args = cli(store_dir, tiny_model, prompts_file, "--points", "12", "--max-new-tokens", "24",
               "--no-early-stop", "--workers", "2", "--ray-address", cluster)  # fmt: skip
    with Store(store_dir) as store:
        proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            scans = store.list_scans()
            if scans and store.progress(scans[0]["key"]) >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        key = store.list_scans()[0]["key"]
        before = store.progress(key)
        assert 2 <= before < 12, proc.stderr.read().decode()[-2000:]
        spec = ScanSpec.model_validate(store.scan_record(key)["spec"])
        logs: list[str] = []
        res = scan_grid(spec, store, RAY2, log=logs.append)
        assert not any("is being computed by" in m for m in logs), logs  # dead pid: taken at once
        assert res.computed == 12 - before and res.grid.done == 12
        assert store.progress(key) == 12


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.slow
def test_ctrl_c_stops_the_actors_and_releases_the_lease(cluster, tmp_path, tiny_model, prompts_file):
    store_dir = tmp_path / "s"
    # Enough points that the scan cannot finish between its first stored point and the SIGINT (12
    # tiny points once took 1 s after the first, and the interrupt came after a clean exit).
    args = cli(store_dir, tiny_model, prompts_file, "--points", "60", "--max-new-tokens", "48",
               "--no-early-stop", "--workers", "2", "--ray-address", cluster)  # fmt: skip
    with Store(store_dir) as store:
        # Twice in full CI runs (never alone) the driver ignored the SIGINT and finished the scan:
        # a disposition inherited from the test process (ignored, or blocked in its signal mask).
        # Start the driver as a terminal's Ctrl-C finds it: default disposition, not blocked.
        proc = subprocess.Popen(
            args,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            scans = store.list_scans()
            if scans and store.progress(scans[0]["key"]) >= 1:
                break
            time.sleep(0.02)
        ours = {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("scan-")
        }
        assert ours, "the driver's actors should be running"
        masks = [
            ln for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ln.startswith("Sig")
        ]
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 130 and "interrupted: finished points are in the store" in err, (
            masks,
            err[-1500:],
        )
        key = store.list_scans()[0]["key"]
        assert store.lease(key) is None  # released on the way out, not left to expire
        alive = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
        assert not ours & alive


@pytest.mark.slow
def test_two_drivers_never_compute_a_point_twice(tmp_path, tiny_model, prompts_file):
    store_dir = tmp_path / "s"
    args = cli(store_dir, tiny_model, prompts_file, "--points", "6", "--json")
    procs = [subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    computed = sorted(json.loads(o[0])[0]["computed"] for o in outs)
    assert computed == [0, 6], outs
    assert any("is being computed by" in o[1] for o in outs)
    with Store(store_dir) as store:
        assert store.progress(json.loads(outs[0][0])[0]["key"]) == 6  # six point writes in all


def test_without_workers_ray_is_never_imported(tmp_path, tiny_model, prompts_file):
    code = (
        "import sys; from landscape.cli import run; "
        f"rc = run(['-q'] + {cli(tmp_path / 's', tiny_model, prompts_file, '--points', '2')[3:]!r}); "
        "print(rc, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=600)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stderr[-1500:]


def test_ray_flags_without_workers_are_one_line_errors(
    tmp_path, tiny_model, prompts_file, capsys, monkeypatch
):
    from landscape.cli import run

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # the environment's default alone is no error
    base = cli(tmp_path / "s", tiny_model, prompts_file, "--points", "1")[3:]
    for flags in (["--ray-address", "auto"], ["--gpus-per-worker", "0.5"]):
        assert run(["-q", *base, *flags]) == 2
        err = capsys.readouterr().err
        assert err.strip() == "error: --ray-address and --gpus-per-worker need --workers N"
    assert run(["-q", *base, "--json"]) == 0
