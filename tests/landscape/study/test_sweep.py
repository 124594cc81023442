"""Sweeps on tiny models: cells are ordinary cached runs under the keys a hand-written study would
use, the record carries k/n and Wilson intervals, a killed sweep resumes to the same table, bad
sweeps are one-line errors that write nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from cache import Store
from landscape.core.specs import Runtime, SpecError
from landscape.core.stats import wilson
from landscape.study.pipeline import parse_study, run_study
from landscape.study.sweep import sweep_markdown

from ...conftest import ROOT, run_cli

SWEEP = """
name: sweep-test
base: {{source: "{model}"}}
align: false
finetune: {{lora: {{r: 2, alpha: 4, targets: [q_proj, v_proj]}}, epochs: 1, learning_rate: 1.0e-2, batch_size: 2}}
runs:
  - {{name: harmful, attack: {{name: harmful, n: 4}}}}
  - {{name: harmful+antidote, attack: {{name: harmful, n: 4}}, defenses: [{{name: antidote, alpha: 0.3, realign_limit: 2, targets: [q_proj, v_proj]}}]}}
  - {{name: aoa, attack: {{name: aoa, n: 4}}}}
evaluation: {{harmful_limit: 3, max_new_tokens: 4, benign_limit: 2, task_limit: 4, visage_directions: 0}}
sweep:
  over: {{learning_rate: [1.0e-3, 1.0e-2], epochs: [1, 2]}}
  runs: [harmful, harmful+antidote]
"""


def sweep_yaml(directory, model, text: str = SWEEP):
    path = directory / "sweep.yaml"
    path.write_text(text.format(model=model))
    return path


def _finetunes(root) -> dict:
    with Store(root) as s:
        return {k: s.get_json(k) for k in s.keys("artifact:finetunes:")}


@pytest.fixture(scope="module")
def swept(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    spec = parse_study(sweep_yaml(root, tiny_model).read_text())
    with Store(root / "store") as s:
        record = run_study(spec, s, Runtime(progress=False), log=lambda _: None)
    return root, spec, record


def test_every_cell_is_a_run_of_the_study_written_by_hand(swept, tiny_model):
    """Cell (learning_rate 1e-3, epochs 2) of the antidote run = that run in a study whose
    fine-tuning says so: the same spec, so the same fine-tune and evaluation keys."""
    root, spec, record = swept
    cells = record["sweep"]["cells"]
    assert [(c["run"], c["values"]) for c in cells] == [
        (run, {"learning_rate": lr, "epochs": ep})
        for run in ("harmful", "harmful+antidote")
        for lr in (1e-3, 1e-2)
        for ep in (1, 2)
    ]
    hand = SWEEP.replace("epochs: 1, learning_rate: 1.0e-2", "epochs: 2, learning_rate: 1.0e-3")
    hand = parse_study(hand.partition("sweep:")[0].format(model=tiny_model))
    cell = spec.cell(spec.runs[1], {"learning_rate": 1e-3, "epochs": 2})
    assert cell.finetune == hand.finetune and cell.runs == (hand.runs[1],)
    with Store(root / "hand") as s:
        by_hand = run_study(
            hand.model_copy(update={"runs": (hand.runs[1],)}), s, Runtime(progress=False), log=lambda _: None
        )
    row = next(
        c
        for c in cells
        if c["run"] == "harmful+antidote" and c["values"] == {"learning_rate": 1e-3, "epochs": 2}
    )
    assert row["finetune_key"] == by_hand["models"][1]["finetune_key"]
    assert row["eval_keys"] == by_hand["models"][1]["eval_keys"]
    assert row["harmful_pct"] == by_hand["models"][1]["harmful_score_pct"]


def test_cells_shared_with_the_study_are_computed_once(swept):
    """4 (learning rate, epochs) settings on one attack's data: 4 fine-tunes in all, the study's own
    (1e-2, 1) among them; the antidote cells prune those same fine-tunes."""
    root, _, record = swept
    finetunes = _finetunes(root / "store")
    assert len(finetunes) == 4 + 1  # + the aoa run's own fine-tune
    own = record["models"][1]["finetune_key"]
    shared = [c for c in record["sweep"]["cells"] if c["finetune_key"] == own]
    assert [(c["run"], c["values"]) for c in shared] == [
        ("harmful", {"learning_rate": 1e-2, "epochs": 1}),
        ("harmful+antidote", {"learning_rate": 1e-2, "epochs": 1}),
    ]


def test_each_cell_has_counts_and_wilson_intervals(swept):
    _, _, record = swept
    for c in record["sweep"]["cells"]:
        assert c["harmful_n"] == 3 and c["task_n"] == 4
        assert c["harmful_pct"] == pytest.approx(100 * c["harmful_k"] / 3)
        assert (c["harmful_lo"], c["harmful_hi"]) == pytest.approx(wilson(c["harmful_k"], 3))
        assert (c["task_lo"], c["task_hi"]) == pytest.approx(wilson(c["task_k"], 4))
        assert c["visage"] is None and c["visage_keys"] == []  # sweep.visage is off
    table = sweep_markdown(record["sweep"])
    assert sum(line.startswith("| harmful") for line in table.splitlines()) == 8
    assert "| harmful+antidote | antidote | 0.001 | 2 |" in table


def test_a_killed_sweep_resumes_to_the_uninterrupted_table(swept, tiny_model, tmp_path):
    root, _, record = swept
    file = sweep_yaml(tmp_path, tiny_model)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "landscape", "-q", "--store", str(store), "study", str(file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed once the sweep has trained a cell of its own (the study's runs make 2 fine-tunes)
        deadline = time.time() + 300
        while time.time() < deadline and len(_finetunes(store) if (store / "meta").exists() else {}) < 3:
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = _finetunes(store)
    assert 3 <= len(done) < 5, "the sweep was not killed in the middle"
    out = run_cli("study", str(file), store=store)
    assert out.returncode == 0, out.stderr
    after = _finetunes(store)
    assert all(after[k] == rec for k, rec in done.items())  # nothing retrained
    with Store(store) as s:
        resumed = next(s.get_json(k) for k in s.keys("study:"))
    assert resumed["invocations"] == 2
    assert sweep_markdown(resumed["sweep"]) == sweep_markdown(record["sweep"])
    assert sweep_markdown(record["sweep"]) in out.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("over: {learning_rate:", "over: {lr:", "sweep field 'lr' is unknown"),
        ("epochs: [1, 2]}", "epochs: []}", "sweep field 'epochs' has no values"),
        ("epochs: [1, 2]}", "epochs: [0, 2]}", "sweep cell learning_rate=0.001, epochs=0 of run harmful"),
        ("runs: [harmful, harmful+antidote]", "runs: [harmful, nope]", "sweep names unknown run 'nope'"),
    ],
    ids=["unknown-field", "empty-range", "bad-value", "unknown-run"],
)
def test_bad_sweeps_are_one_line_errors_that_write_nothing(tiny_model, tmp_path, old, new, message):
    file = sweep_yaml(tmp_path, tiny_model)
    assert old in file.read_text()
    file.write_text(file.read_text().replace(old, new))
    out = run_cli("study", str(file), store=tmp_path / "store")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr
    assert not (tmp_path / "store").exists() or not _finetunes(tmp_path / "store")


def test_harmful_fraction_sweeps_only_harmful_attacks(tiny_model, tmp_path):
    text = SWEEP.replace(
        "{{learning_rate: [1.0e-3, 1.0e-2], epochs: [1, 2]}}", "{{harmful_fraction: [0.25, 0.75]}}"
    )
    with pytest.raises(SpecError, match="harmful_fraction changes only 'harmful' attacks; run aoa"):
        parse_study(text.replace("runs: [harmful, harmful+antidote]", "runs: [aoa]").format(model=tiny_model))
    spec = parse_study(text.format(model=tiny_model))
    assert [spec.cell(spec.runs[0], v).runs[0].attack.harmful_fraction for v in spec.sweep.cells()] == [
        0.25,
        0.75,
    ]


def test_lora_rank_keeps_the_scale():
    spec = parse_study(
        SWEEP.replace("{{learning_rate: [1.0e-3, 1.0e-2], epochs: [1, 2]}}", "{{lora_r: [1, 8]}}").format(
            model="m"
        )
    )
    loras = [spec.cell(spec.runs[0], v).finetune.lora for v in spec.sweep.cells()]
    assert [(lo.r, lo.alpha) for lo in loras] == [(1, 2.0), (8, 16.0)]


@pytest.mark.slow
def test_tiny_sweep_preset_runs_on_the_embedded_model(tmp_path):
    out = run_cli("study", "--preset", "tiny-sweep", store=tmp_path / "store", timeout=1500)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "#### Sweep over learning_rate" in out.stdout
    with Store(tmp_path / "store") as s:
        record = next(s.get_json(k) for k in s.keys("study:"))
    cells = record["sweep"]["cells"]
    assert [(c["run"], c["values"]["learning_rate"]) for c in cells] == [
        ("harmful", 1e-4),
        ("harmful", 1e-3),
        ("harmful+antidote", 1e-4),
        ("harmful+antidote", 1e-3),
    ]
    assert all(c["harmful_n"] == 4 and c["task_n"] == 4 for c in cells)


def test_sweep_claims_are_paired_tests_of_the_verdicts(swept):
    """Each run's strongest setting against its weakest, and the defended run against the undefended
    one at both: McNemar's exact test on the very verdicts stored with each cell."""
    from landscape.core.stats import mcnemar_exact
    from landscape.study.sweep import sweep_claims

    _, _, record = swept
    claims = sweep_claims(record["sweep"])
    assert [(c.subject, c.reference) for c in claims] == [
        ("harmful at learning_rate=0.01, epochs=2", "harmful at learning_rate=0.001, epochs=1"),
        (
            "harmful+antidote at learning_rate=0.01, epochs=2",
            "harmful+antidote at learning_rate=0.001, epochs=1",
        ),
        ("harmful+antidote at learning_rate=0.001, epochs=1", "harmful at learning_rate=0.001, epochs=1"),
        ("harmful+antidote at learning_rate=0.01, epochs=2", "harmful at learning_rate=0.01, epochs=2"),
    ]
    cells = {(c["run"], tuple(c["values"].values())): c["harmful_complied"] for c in record["sweep"]["cells"]}
    want = mcnemar_exact(cells[("harmful+antidote", (0.01, 2))], cells[("harmful", (0.01, 2))])
    assert (claims[3].p, claims[3].statistic) == (want.p, want.statistic)
    assert "McNemar exact test on 3 paired prompts" in claims[3].test
    assert "**Sweep claims**" in sweep_markdown(record["sweep"])


def test_export_writes_the_sweep_as_csv_and_refuses_a_field_it_does_not_vary(swept, tmp_path):
    import pandas as pd

    root, _, record = swept
    out = run_cli(
        "export", "--study", "sweep-test", "--sweep", "--out", str(tmp_path / "s.csv"), store=root / "store"
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 8 and list(table["harmful_k"]) == [c["harmful_k"] for c in record["sweep"]["cells"]]
    assert table["harmful_lo"].tolist() == pytest.approx([c["harmful_lo"] for c in record["sweep"]["cells"]])
    assert "against learning_rate per defence, study sweep-test (epochs = 1)" in out.stdout
    bad = run_cli(
        "export",
        "--study",
        "sweep-test",
        "--sweep",
        "lora_r",
        "--out",
        str(tmp_path / "s.pdf"),
        store=root / "store",
    )
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "error: the sweep varies learning_rate, epochs, not 'lora_r'"
    )
    assert not (tmp_path / "s.pdf").exists()


def test_a_sweep_with_seeds_runs_every_cell_per_seed_and_tests_its_claims_over_both(swept, tmp_path):
    """sweep.seeds: [0, 1]: seed 0 is the unseeded sweep's very cells (read back, not retrained);
    seed 1 fine-tunes anew; a cell pools its seeds' verdicts with the clustered Wilson interval, and
    its claims are the paired bootstrap over prompts and seeds on exactly those verdicts."""
    import shutil

    from landscape.core.stats import BOOTSTRAP_B, BOOTSTRAP_SEED, bootstrap_difference, clustered_wilson
    from landscape.study.sweep import sweep_claims

    root, spec, record = swept
    shutil.copytree(root / "store", tmp_path / "store")
    before = _finetunes(tmp_path / "store")
    text = SWEEP.replace("epochs: [1, 2]}}", "epochs: [1, 2]}}\n  seeds: [0, 1]")
    seeded = parse_study(text.format(model=record["spec"]["base"]["source"]))
    assert seeded.sweep.seeds == (0, 1)
    with Store(tmp_path / "store") as s:
        rec = run_study(seeded, s, Runtime(progress=False), log=lambda _: None)
    after = _finetunes(tmp_path / "store")
    assert all(after[k] == v for k, v in before.items())
    assert len(after) - len(before) == 4  # seed 1 of the 4 (learning rate, epochs) settings
    plain = {(c["run"], tuple(c["values"].values())): c for c in record["sweep"]["cells"]}
    assert rec["sweep"]["seeds"] == [0, 1] and len(rec["sweep"]["cells"]) == len(plain)
    for c in rec["sweep"]["cells"]:
        zero, one = c["per_seed"]
        same = plain[(c["run"], tuple(c["values"].values()))]
        assert (zero["seed"], one["seed"]) == (0, 1)
        for k in ("finetune_key", "eval_keys", "harmful_complied", "task_k"):
            assert zero[k] == same[k], k
        assert one["finetune_key"] != zero["finetune_key"]
        assert c["harmful_k"] == zero["harmful_k"] + one["harmful_k"] and c["harmful_n"] == 6
        assert (c["harmful_lo"], c["harmful_hi"]) == pytest.approx(
            clustered_wilson([zero["harmful_complied"], one["harmful_complied"]])
        )
    claims = sweep_claims(rec["sweep"])
    assert len(claims) == 4 and all("bootstrap over 3 prompts and 2 vs 2 seeds" in c.test for c in claims)
    cells = {(c["run"], tuple(c["values"].values())): c for c in rec["sweep"]["cells"]}
    a, b = cells[("harmful+antidote", (0.01, 2))], cells[("harmful", (0.01, 2))]
    want = bootstrap_difference(
        [p["harmful_complied"] for p in a["per_seed"]],
        [p["harmful_complied"] for p in b["per_seed"]],
        BOOTSTRAP_B,
        BOOTSTRAP_SEED,
    )
    assert (claims[3].p, claims[3].statistic) == (want.p, want.statistic)
    table = sweep_markdown(rec["sweep"])
    assert "95% clustered Wilson" in table and "pooled over 2 seeds" in table
    with Store(tmp_path / "store") as s:  # the unseeded sweep's study is still the same record
        keys = set(s.keys("study:"))
        from landscape.figures.strength import build_sweep_figure, export_sweep

        path, caption = export_sweep(s, rec["key"], None, "csv", tmp_path / "seeded.csv")
        _, plain_caption = export_sweep(s, record["key"], None, "csv", tmp_path / "plain.csv")
    assert len(keys) == 2
    assert "mean over seeds 0, 1; bands: 95% clustered Wilson intervals over 3 prompts" in caption
    assert plain_caption.endswith("bands: 95% Wilson intervals over 3 prompts; seed 0.")
    title = build_sweep_figure(rec["sweep"]["cells"][:2], "learning_rate", seeds=2).layout.title.text
    assert "mean of 2 seeds, 95% clustered Wilson bands" in title
