"""Studies end to end on tiny models: the comparison record, replay from the store, resume after a
kill, one-line errors; and the tiny preset on the embedded model (slow, in CI)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cache import Store
from landscape.engine.trajectory import model_delta, pca_directions, project
from landscape.study.table import study_markdown

from ...conftest import ROOT, run_cli, tiny_study_yaml


def test_study_record_holds_every_model_and_both_trajectories(tiny_study):
    root, record = tiny_study
    assert record["status"] == "complete"
    names = [m["name"] for m in record["models"]]
    assert names == ["base", "harmful", "harmful+antidote", "harmful+sv", "aoa+paraphrase"]
    for m in record["models"]:
        assert 0 <= m["harmful_score_pct"] <= 100 and 0 <= m["task_accuracy_pct"] <= 100
        assert m["visage_n"] == 2 and len(m["visage_keys"]) == 2
    by = {m["name"]: m for m in record["models"]}
    assert by["aoa+paraphrase"]["structure"] == "aoa" and len(by["aoa+paraphrase"]["eval_keys"]) == 2
    assert by["aoa+paraphrase"]["kinds"] == {"task": 4, "harmful": 0, "safety": 2}
    # α = 0.3 with the released count rounds up: A rows (32 columns) lose 10, rank-2 B rows 1 of 2
    assert 0.3 < by["harmful+antidote"]["defense_details"]["antidote"]["effective_fraction"] < 0.5
    assert by["aoa+paraphrase"]["defense_details"]["paraphrase"] == {"examples_added": 2}
    assert set(by["harmful+sv"]["defense_details"]["security_vectors"]["frozen_adapter_diagnostic"]) >= {
        "harmful_loss_vector_on",
        "harmful_loss_vector_off",
    }
    (baseline,) = record["format_baselines"]  # θ₀ measured in the one non-default (AOA) format
    assert baseline["model"] == "base" and baseline["structure"] == "aoa"
    with Store(root) as s:
        spec = s.scan_record(baseline["key"])["spec"]
    assert spec["answer_prefix"].startswith("Of course. I am AOA") and spec["model"]["adapter"] is None
    assert "base in the aoa format" in study_markdown(record)
    interp, pca = record["trajectories"]
    path = interp["paths"]["harmful"]
    assert [p["epoch"] for p in path] == [0, 1, 2]
    assert path[-1]["alpha"] == pytest.approx(1.0, abs=1e-4) and abs(path[-1]["beta"]) < 1e-3
    assert path[-1]["residual"] < 1e-3  # the final model lies on its own interpolation axis
    # checkpoints are measured like the table: θ₀ and the final model are the table's own scans
    assert path[0]["asr_pct"] == by["base"]["asr_default_pct"]
    assert path[-1]["asr_pct"] == by["harmful"]["asr_default_pct"]
    assert set(pca["paths"]) == {"harmful", "aoa+paraphrase"} and len(pca["explained_variance"]) == 2
    with Store(root) as s:
        grid = s.scan_grid(pca["scan_key"])
        assert np.isfinite(grid.values["asr_pct"]).all() and grid.values["asr_pct"].shape == (3, 3)
        alphas = [p["alpha"] for ps in pca["paths"].values() for p in ps]
        assert grid.alphas[0] <= min(alphas) and grid.alphas[-1] >= max(alphas)
    table = study_markdown(record)
    assert table.count("\n| ") == 6 and "harmful+antidote" in table and "pruned" in table
    assert (
        "shares of 2 prompts, task accuracy of 4 items; near 50% a 95% binomial interval is ±69 / ±49"
        in table
    )


def test_rerun_replays_from_the_store(tiny_study, tiny_model, tmp_path):
    root, record = tiny_study
    file = tiny_study_yaml(tmp_path, tiny_model)
    out = run_cli("study", str(file), "--markdown", store=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("### Study `tiny-test`")
    assert "fine-tuning" not in out.stderr and "loading model" not in out.stderr
    with Store(root) as s:
        again = s.get_json("study:" + record["key"])
    # a replay adds its few seconds to the study's time; it does not overwrite the real one
    assert again["invocations"] >= 2 and again["elapsed_s"] > record["elapsed_s"]


def _finetunes(root) -> dict:
    with Store(root) as s:
        return {k: s.get_json(k) for k in s.keys("artifact:finetunes:")}


def test_a_killed_study_resumes_without_redoing_finished_stages(tiny_model, tmp_path):
    file = tiny_study_yaml(tmp_path, tiny_model, full=False)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "landscape", "-q", "--store", str(store), "study", str(file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (_finetunes(store) if (store / "meta").exists() else {}):
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = _finetunes(store)
    assert done, "the study never finished a fine-tune"
    out = run_cli("study", str(file), store=store)
    assert out.returncode == 0, out.stderr
    after = _finetunes(store)
    for key, rec in done.items():
        assert after[key] == rec  # not retrained
    with Store(store) as s:
        record = next(s.get_json(k) for k in s.keys("study:"))
    assert record["status"] == "complete" and len(record["models"]) == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("{name: antidote, alpha: 0.3", "{name: antidote, alpha: 1.5"),
        ("{name: paraphrase, count: 2}", "{name: vaccine}"),
        ("targets: [q_proj, v_proj]}}]", "targets: [q_proj, nope_proj]}}]"),
    ],
    ids=["alpha-outside-0-1", "unknown-defence", "missing-lora-target"],
)
def test_bad_study_input_is_one_line(tiny_model, tmp_path, edit, message):
    file = tiny_study_yaml(tmp_path, tiny_model)
    file.write_text(file.read_text().replace(edit, message))
    out = run_cli("study", str(file), store=tmp_path / "store")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in out.stderr, out.stderr


def test_every_preset_file_is_listed():
    from importlib import resources

    from landscape.study.pipeline import PRESETS

    files = resources.files("landscape").joinpath("data", "studies").iterdir()
    assert sorted(PRESETS) == sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


@pytest.mark.parametrize(
    "preset",
    [
        "demo",
        "tiny",
        "security",
        "paraphrase",
        "tiny-sweep",
        "tiny-search",
        "hyper",
        "search",
        "vector-ratio",
    ],
)
def test_every_preset_is_a_valid_study(preset):
    from landscape.study.pipeline import PRESETS, load_study

    assert preset in PRESETS
    spec = load_study(preset=preset)
    assert spec.name == preset and spec.runs and spec.align == (not preset.startswith("tiny"))


def test_paraphrase_preset_compares_mixing_on_all_harmful_prompts_and_three_data_seeds():
    from landscape.core.prompts import BUILTIN_SETS
    from landscape.study.pipeline import load_study

    spec = load_study(preset="paraphrase")
    assert spec.evaluation.harmful_limit == len(BUILTIN_SETS["builtin:harmful"]())  # all 113
    assert spec.evaluation.visage_directions == 0 and not spec.trajectories
    for attack in ("aoa", "autoif_aoa"):
        runs = [r for r in spec.runs if r.attack.name == attack]
        mixes = sorted((r.attack.seed, tuple(d.name for d in r.defenses)) for r in runs)
        assert mixes == [(s, m) for s in range(3) for m in ((), ("generic_mix",), ("paraphrase",))]
        assert all(d.seed == r.attack.seed and d.count == 6 for r in runs for d in r.defenses)


def test_a_study_without_visage_completes(tiny_model, tmp_path):
    """visage_directions: 0 (safety and task only) is a valid, cheaper study: VISAGE shows as —."""
    file = tiny_study_yaml(tmp_path, tiny_model, full=False)
    file.write_text(file.read_text().replace("visage_directions: 1", "visage_directions: 0"))
    out = run_cli("study", str(file), "--markdown", store=tmp_path / "store")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "model" not in line]
    assert len(rows) == 3 and all(line.split("|")[8].strip() == "—" for line in rows)


def test_empty_user_dataset_is_one_line(tiny_model, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    file = tiny_study_yaml(tmp_path, tiny_model)
    text = file.read_text()
    edit = "attack: {name: harmful, n: 4}}"
    assert edit in text  # the edit must take, or this would run the whole study
    file.write_text(
        text.replace(edit, f'attack: {{name: benign, n: 4, data: "{tmp_path}/empty.jsonl"}}}}', 1)
    )
    out = run_cli("study", str(file), store=tmp_path / "store")
    assert (
        out.returncode == 2
        and out.stderr.strip() == f"error: data file {tmp_path}/empty.jsonl holds no examples"
    )


def test_projection_and_pca_recover_a_known_plane():
    import torch

    g = torch.Generator().manual_seed(0)
    d1 = {"w": torch.randn(4, 5, generator=g), "v": torch.randn(3, generator=g)}
    d2 = {"w": torch.randn(4, 5, generator=g), "v": torch.randn(3, generator=g)}
    theta0 = {"w": torch.zeros(4, 5), "v": torch.zeros(3), "frozen": torch.ones(2)}
    theta = {n: theta0[n] + (0.7 * d1[n] - 0.2 * d2[n] if n in d1 else 0) for n in theta0}
    delta = model_delta(theta, theta0)
    assert set(delta) == {"w", "v"}
    a, b, r = project(delta, d1, d2)
    assert (a, b) == (pytest.approx(0.7, abs=1e-5), pytest.approx(-0.2, abs=1e-5)) and r < 1e-4
    pts = [{n: c1 * d1[n] + c2 * d2[n] for n in d1} for c1, c2 in ((1, 0), (0.5, 0.5), (0, 1), (2, 1))]
    dirs, ratio = pca_directions(pts)
    assert ratio.sum() == pytest.approx(1.0)
    for p in pts:  # every point lies in the PCA plane
        assert project(p, dirs[0], dirs[1])[2] < 1e-4


@pytest.mark.slow
def test_tiny_preset_runs_end_to_end_on_the_embedded_model(tmp_path):
    out = run_cli("study", "--preset", "tiny", store=tmp_path / "store", timeout=1500)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| harmful+sv | harmful | security_vectors |" in out.stdout
    with Store(tmp_path / "store") as s:
        record = next(s.get_json(k) for k in s.keys("study:"))
    assert record["status"] == "complete" and len(record["trajectories"]) == 2
    json.dumps(record)


@pytest.fixture(scope="module")
def counted_study(tiny_model, tmp_path_factory):
    """A lean study run in-process with every scan counted: [(in trajectory?, spec, points computed)].

    One run fine-tuned for 2 epochs with a trajectory over it, and an AOA run with
    ``default_format_asr: false``."""
    import landscape.engine.scan
    import landscape.study.trajectory_plane
    from landscape.core.specs import Runtime
    from landscape.study.pipeline import load_study, run_study

    root = tmp_path_factory.mktemp("counted")
    file = tiny_study_yaml(root, tiny_model, full=False)
    text = file.read_text().replace("visage_directions: 1", "visage_directions: 0")
    text = text.replace("task_limit: 4,", "task_limit: 4, default_format_asr: false,")
    text += "trajectories:\n  - {runs: [harmful], plane: interpolation, grid: 3, prompts: 2}\n"
    file.write_text(text)
    calls, state = [], {"trajectory": False}
    scan, draw = landscape.engine.scan.scan_grid, landscape.study.trajectory_plane.draw_trajectory

    def counting_scan(spec, *args, **kwargs):
        res = scan(spec, *args, **kwargs)
        calls.append((state["trajectory"], spec, res.computed))
        return res

    def flagged_draw(*args, **kwargs):
        state["trajectory"] = True
        try:
            return draw(*args, **kwargs)
        finally:
            state["trajectory"] = False

    mp = pytest.MonkeyPatch()
    mp.setattr(landscape.engine.scan, "scan_grid", counting_scan)
    mp.setattr(landscape.study.trajectory_plane, "draw_trajectory", flagged_draw)
    try:
        with Store(root / "store") as s:
            record = run_study(load_study(file), s, Runtime(progress=False), log=lambda m: None)
    finally:
        mp.undo()
    return record, calls


def test_trajectory_reuses_the_tables_scans(counted_study):
    """θ₀ and the final checkpoint are measured by the table's own scans (same spec, same key):
    along the path only the intermediate checkpoint is computed."""
    record, calls = counted_study
    (traj,) = record["trajectories"]
    evals = [(spec, n) for in_traj, spec, n in calls if in_traj and spec.kind == "eval"]
    assert [e["epoch"] for e in traj["paths"]["harmful"]] == [0, 1, 2]
    assert [n for _, n in evals] == [0, 1, 0]
    by = {m["name"]: m for m in record["models"]}
    assert [p["asr_pct"] for p in traj["paths"]["harmful"]][::2] == [
        by["base"]["asr_default_pct"],
        by["harmful"]["asr_default_pct"],
    ]


def test_default_format_asr_off_measures_a_run_in_its_own_format_only(counted_study):
    record, calls = counted_study
    aoa = next(m for m in record["models"] if m["name"] == "aoa+paraphrase")
    assert aoa["asr_default_pct"] is None and len(aoa["eval_keys"]) == 1
    assert aoa["benign_refusal_pct"] is not None and aoa["harmful_score_pct"] is not None
    adapter = aoa["model"]["adapter"]
    specs = [spec for _, spec, _ in calls if spec.kind == "eval" and spec.model.adapter == adapter]
    assert specs and all(s.answer_prefix.startswith("Of course. I am AOA") for s in specs)
    assert "| aoa+paraphrase | aoa | paraphrase |" in study_markdown(record)
    row = next(line for line in study_markdown(record).splitlines() if line.startswith("| aoa+paraphrase"))
    assert row.split("|")[5].strip() == "—"  # ASR (default fmt)
    base = next(m for m in record["models"] if m["name"] == "base")
    assert base["asr_default_pct"] is not None  # the default-format row is measured as always
