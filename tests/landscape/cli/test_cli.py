"""The CLI as a user meets it: real subprocesses, one-line errors, nothing cached is damaged."""

from __future__ import annotations

import json

import pytest

from ...conftest import old_record_store, run_cli


@pytest.fixture(scope="module")
def filled(tmp_path_factory, tiny_model):
    """A store holding one finished tiny scan."""
    root = tmp_path_factory.mktemp("cli")
    prompts = root / "p.txt"
    prompts.write_text("Tell me a secret.\nWrite a poem.\n")
    store = root / "store"
    res = run_cli(
        "scan",
        "1d",
        "--model",
        str(tiny_model),
        "--prompts",
        str(prompts),
        "--points",
        "3",
        "--max-new-tokens",
        "4",
        "--json",
        store=store,
    )
    assert res.returncode == 0, res.stderr
    return store, prompts, json.loads(res.stdout)[0]


def _snapshot(store):
    res = run_cli("list", "--json", store=store)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_list_show_and_visage_of_a_stored_scan(filled):
    store, _, result = filled
    scans = _snapshot(store)
    assert len(scans) == 1 and scans[0]["key"] == result["key"] and scans[0]["status"] == "complete"
    show = run_cli("show", result["key"][:8], store=store)
    assert show.returncode == 0 and "VISAGE (paper)" in show.stdout
    point = run_cli("show", result["key"][:8], "--point", "1", "--json", store=store)
    assert len(json.loads(point.stdout)["responses"]) == 2
    vis = run_cli("visage", result["key"][:8], "--json", store=store)
    assert json.loads(vis.stdout)[0]["visage"] == pytest.approx(result["summary"]["visage"])


def test_visage_from_numbers_and_csv(tmp_path):
    res = run_cli("visage", "--asr", "100,60,0,10,100", "--json")
    out = json.loads(res.stdout)[0]
    assert out["visage"] == pytest.approx(230 / 3) and out["visage_reference"] == pytest.approx(230 / 3)
    (tmp_path / "g.csv").write_text("100,50\n0,100\n")
    out = json.loads(run_cli("visage", "--csv", str(tmp_path / "g.csv"), "--json").stdout)[0]
    assert out["dims"] == 2 and out["visage"] == pytest.approx(75.0)


def test_visage_reference_is_the_released_code(tmp_path):
    curve = "100,90,30,0,0,0,20,100,100,100,100,100,100"
    res = run_cli("visage", "--asr", curve)
    assert res.returncode == 0, res.stderr
    row = res.stdout.splitlines()[1].split()
    # the paper's definition, then the released code's; given as numbers, no verdicts: no CI
    assert row[2] == "76.67" and row[-2:] == ["38.33", "—"]
    even = json.loads(run_cli("visage", "--asr", "100,0,0,100", "--json").stdout)[0]
    assert even["visage_reference"] is None and even["visage_reference_note"] == "grid not centred on θ₀"


def test_readers_recompute_summaries_of_old_records(tmp_path):
    old_record_store(tmp_path / "s")
    listed = {s["kind"]: s["summary"] for s in _snapshot(tmp_path / "s")}
    assert listed["1d"]["visage_reference"] == pytest.approx(460 / 12)
    assert listed["interpolation"]["visage_reference"] is None
    assert listed["interpolation"]["visage_reference_note"] == "interpolation scan"
    table = run_cli("list", store=tmp_path / "s").stdout
    lines = {line[:4]: line for line in table.splitlines()}
    assert lines["aaaa"].endswith(" 38.3") and lines["bbbb"].endswith("— (interpolation scan)")
    assert "11.1" not in table and " 55 " not in table  # nothing of the stored summaries
    vis = json.loads(run_cli("visage", "aaaa", "bbbb", "--json", store=tmp_path / "s").stdout)
    assert vis[0]["visage_reference"] == pytest.approx(460 / 12) and vis[1]["visage_reference"] is None
    show = run_cli("show", "aaaa", store=tmp_path / "s").stdout
    assert "VISAGE (reference 1D): 38.33" in show


def test_empty_store_says_how_to_fill_it(tmp_path):
    from cache import Store

    Store(tmp_path / "empty").close()  # a store with nothing in it yet
    res = run_cli("list", store=tmp_path / "empty")
    assert res.returncode == 0 and "landscape demo" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["list"], "no store at"),
        (["show", "abc"], "no store at"),
        (["visage", "abc"], "no store at"),
        (["export", "abc"], "no store at"),
        (["agree", "abc", "def"], "no store at"),
    ],
)
def test_reading_a_path_without_a_store_says_so_and_creates_nothing(tmp_path, args, message):
    """Issue 25: `--store /a/typo list` created a store there."""
    typo = tmp_path / "a" / "typo"
    res = run_cli(*args, store=typo)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "global_args, args, message",
    [
        (["--store", ""], ["list"], "the store path is empty"),
        (["--store", ""], ["scan", "1d"], "the store path is empty"),
        (["--device", "tpu"], ["list"], "'tpu' is not a device"),
        (["--device", "tpu"], ["scan", "1d", "--limit", "1"], "'tpu' is not a device"),
        (["--device", "cuda:7"], ["scan", "1d", "--limit", "1"], "--device cuda:7: this machine has"),
    ],
)
def test_bad_store_or_device_is_refused_before_anything_is_written(tmp_path, global_args, args, message):
    """Issue 25: `--device tpu scan` ended in a 16-frame traceback leaving a `pending 0/1` record,
    and `--store ""` wrote meta/ and points/ into the current directory."""
    import subprocess
    import sys

    from ...conftest import ROOT

    res = subprocess.run(
        [sys.executable, "-m", "landscape", "-q", *global_args, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **__import__("os").environ,
            "SAFETY_LANDSCAPE_STORE": str(tmp_path / "s"),
            "PYTHONPATH": str(ROOT),
        },
        timeout=300,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and sorted(p.name for p in tmp_path.iterdir()) == []


def test_help_everywhere():
    from click.testing import CliRunner

    from landscape.cli import main

    assert "Usage" in run_cli("--help").stdout  # the real entry point once
    for cmd in (["scan"], ["align"], ["visage"], ["estimate"], ["list"], ["show"], ["demo"]):
        res = CliRunner().invoke(main, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, cmd


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "1d", "--model", "/no/such/model"], "model path not found"),
        (["scan", "1d", "--model", "{tiny}", "--range", "0.5", "-0.5"], "inverted range"),
        (["scan", "1d", "--model", "{tiny}", "--system-prompt", "llama9"], "unknown system-prompt preset"),
        (["scan", "1d", "--model", "{tiny}", "--prompts", "{empty}"], "is empty"),
        (["scan", "1d", "--model", "{tiny}", "--prompts", "{csv}"], "no column 'goal' or 'prompt'"),
        (["scan", "1d", "--model", "{notlm}"], "not a causal language model"),
        (
            [
                "scan",
                "1d",
                "--model",
                "{tiny}",
                "--prompts",
                "{prompts}",
                "--range",
                "1e39",
                "2e39",
                "--points",
                "2",
                "--max-new-tokens",
                "2",
            ],
            "non-finite",
        ),
        (["scan", "1d", "--model", "{tiny}", "--judge", "gpt4"], "unknown judge"),
        (["scan", "3d"], "is not one of"),
        (["scan", "1d", "--spec", "{badyaml}"], "colour: Extra inputs are not permitted"),
        (["visage", "--asr", "1,x"], "comma-separated"),
        (["visage", "--asr", "150,20"], "[0, 100]"),
        (["show", "ffffffff"], "no scan"),
        (["scan", "interpolate", "--model", "{tiny}"], "--target"),
        # issue 27: θ_b = θ_a ran and reported VISAGE 100.00 for a flat line
        (["scan", "interpolate", "--model", "{tiny}", "--target", "{tiny}"], "nothing to interpolate"),
    ],
)
def test_user_errors_are_one_line_and_keep_the_store(filled, tiny_model, tmp_path, args, message):
    store, prompts, _ = filled
    before = _snapshot(store)
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "p.csv").write_text("id,text\n1,hi\n")
    notlm = tmp_path / "notlm"
    notlm.mkdir()
    (notlm / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (tmp_path / "bad.yaml").write_text("colour: red\n")
    subs = {
        "{tiny}": str(tiny_model),
        "{empty}": str(tmp_path / "empty.txt"),
        "{csv}": str(tmp_path / "p.csv"),
        "{notlm}": str(notlm),
        "{prompts}": str(prompts),
        "{badyaml}": str(tmp_path / "bad.yaml"),
    }
    res = run_cli(*[subs.get(a, a) for a in args], store=store)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr
    after = _snapshot(store)
    # refused input writes nothing: not even a "pending 0/N" record of the refused scan
    assert [(s["key"], s["status"], s["done"]) for s in after] == [
        (s["key"], s["status"], s["done"]) for s in before
    ]


def test_yaml_spec_with_flag_override(filled, tiny_model, tmp_path):
    store, prompts, _ = filled
    spec = tmp_path / "scan.yaml"
    spec.write_text(
        f"model: {{source: {tiny_model}}}\nprompts: {{source: {prompts}}}\n"
        "alphas: {start: -1, stop: 1, num: 3}\ngeneration: {max_new_tokens: 4}\n"
    )
    res = run_cli("scan", "1d", "--spec", str(spec), "--points", "5", "--json", store=store)
    assert res.returncode == 0, res.stderr
    key = json.loads(res.stdout)[0]["key"]
    shown = json.loads(run_cli("show", key, "--json", store=store).stdout)
    assert shown["spec"]["alphas"] == {"start": -1.0, "stop": 1.0, "num": 5}  # flag overrode only num
    assert shown["spec"]["generation"]["max_new_tokens"] == 4


def test_a_grid_without_theta0_warns_and_reports_it_not_sampled(filled, tiny_model, tmp_path):
    """Issue 25: an even --points puts no point at α = 0; the scan says so (stderr), prints "not
    sampled" for the ASR at θ₀, and `list` shows "—" in its ASR0 column, never a neighbour's ASR."""
    _, prompts, _ = filled
    store = tmp_path / "s"
    args = ["--model", str(tiny_model), "--prompts", str(prompts), "--max-new-tokens", "2"]
    res = run_cli("scan", "1d", *args, "--range", "-0.2", "0.2", "--points", "4", store=store)
    assert res.returncode == 0, res.stderr
    assert "warning: α = 0 (θ₀) is not on the grid (4 points from -0.2 to 0.2)" in res.stderr
    assert "ASR at θ₀: not sampled" in res.stdout and "measured from α = 0" in res.stdout
    row = next(line for line in run_cli("list", store=store).stdout.splitlines() if "1d" in line)
    assert row.split()[row.split().index("complete") + 1] == "—"
    odd = run_cli("scan", "1d", *args, "--range", "-0.2", "0.2", "--points", "3", store=store)
    assert odd.returncode == 0 and "warning" not in odd.stderr and "ASR at θ₀: not sampled" not in odd.stdout


def test_keys_points_and_presets_are_read_as_meant(filled, tmp_path):
    """Issue 25 §3: keys are case-insensitive and an ambiguous prefix lists its candidates; `show
    --point` takes exactly one index per axis; `study --preset X file` names both."""
    store, _, result = filled
    key = result["key"]
    assert run_cli("show", key[:8].upper(), "--json", store=store).returncode == 0
    for bad, message in (
        (["--point", "1,0"], "takes I (a grid index"),
        (["--point", "9"], "point 9 is out of range 0–"),
    ):
        res = run_cli("show", key[:8], *bad, store=store)
        assert res.returncode == 2 and message in res.stderr, res.stderr
    from cache import Store

    copy = tmp_path / "two"
    with Store(copy) as s:
        for suffix in ("aa", "ab"):
            s.put_scan_record("cafe" + suffix + "0" * 58, {"alphas": [0.0], "status": "complete"})
    res = run_cli("show", "cafe", store=copy)
    assert res.returncode == 2 and "cafeaa000000, cafeab000000" in res.stderr, res.stderr
    res = run_cli("study", "--preset", "tiny", str(tmp_path / "x.yaml"), store=tmp_path / "s")
    assert res.returncode == 2 and "not both" in res.stderr, res.stderr
