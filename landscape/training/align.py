"""Built-in safety alignment of the embedded model (the project's θ₀).

SmolLM2-135M-Instruct complies with harmful requests out of the box (ASR 100% on AdvBench), so the
landscape has no basin to find. ``align_model`` gives it one by full supervised fine-tuning on
project-written data (``landscape/data``):

- harmful requests (``harmful_train.tsv``, disjoint from every evaluation set) → varied refusals
  (``refusals.txt``), and
- benign requests (``benign_train.txt``) → the base model's *own* greedy answers
  (self-distillation: it keeps its helpful behaviour instead of learning to refuse everything).

The loss is on response tokens only. The data holds requests and refusals, no harmful content.
The result is saved as safetensors in the store under the hash of its ``AlignSpec`` (with the base
model's and the data's fingerprints), so the second run is instant.
"""

from __future__ import annotations

import random

from cache import Store
from landscape.core.artifacts import cached_artifact
from landscape.core.models import align_key, data_fingerprint, load_model, save_model
from landscape.core.prompts import builtin_benign, builtin_harmful, format_chat, refusal_templates
from landscape.core.specs import AlignSpec, FormatSpec, Runtime
from landscape.training.data import Example, render
from landscape.training.finetune import train_loop
from landscape.training.results import AlignResult


def _complete_sentences(text: str) -> str:
    """Cut a length-truncated answer back to its last full sentence (so EOS is never taught mid-word)."""
    text = text.strip()
    cut = max(text.rfind(c) for c in ".!?\n")
    return text[: cut + 1].strip() if cut > len(text) // 3 else text


def build_examples(tokenizer, distilled: dict[str, str], seed: int) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` pairs; labels are -100 except on the response (and its end token)."""
    rng = random.Random(seed)
    refusals = refusal_templates()
    pairs = [(r["prompt"], rng.choice(refusals)) for r in builtin_harmful("train")]
    pairs += [(p, a) for p, a in distilled.items() if a]
    out = []
    for prompt, answer in pairs:
        system = rng.choice(["default", "default", "none"])
        out.append(render(tokenizer, Example(prompt, answer, FormatSpec(system_prompt=system))))
    rng.shuffle(out)
    return out


def stored_alignments(store: Store) -> list[tuple[str, dict]]:
    """``(key, record)`` of every aligned model in the store, newest first."""
    found = [(k, store.artifact("models", k)) for k in store.artifact_keys("models")]
    return sorted(((k, r) for k, r in found if r), key=lambda kr: -kr[1].get("created", 0))


def alignment_difference(spec: AlignSpec, store: Store, key: str) -> str | None:
    """Why ``spec`` (of key ``key``) is not served by an aligned model already in the store, in one
    line: the settings that differ from the newest one of the same base (``epochs 3 → 5``), or that
    the settings agree but the base model's weights or the alignment data changed; None when the
    store has ``key`` or no aligned model at all."""
    others = [(k, r) for k, r in stored_alignments(store) if k != key]
    if store.artifact("models", key) is not None or not others:
        return None
    want = spec.model_dump(mode="json")
    same_base = [(k, r) for k, r in others if (r.get("spec") or {}).get("base") == want["base"]]
    k, r = (same_base or others)[0]
    have = r.get("spec") or {}
    diffs = [
        f"{name} {have.get(name)!r} → {value!r}" if name != "base" else "another base model"
        for name, value in want.items()
        if have.get(name) != value
    ]
    why = (
        ", ".join(diffs)
        if diffs
        else "same settings, but the base model's weights or the alignment data changed"
    )
    return f"the store's aligned model {k[:6]} differs ({why}): aligning a new one"


def align_model(spec: AlignSpec, store: Store, runtime: Runtime | None = None, log=print) -> AlignResult:
    """Align ``spec.base`` (or return the stored result: ``landscape align`` with its defaults
    reuses the one ``landscape demo`` made; otherwise the log says what differs from it)."""
    from landscape.core.generate import generate_greedy

    runtime = runtime or Runtime()

    def build(staging) -> dict:
        lm = load_model(spec.base, runtime.device, store)
        benign = builtin_benign("train")
        log(f"self-distilling {len(benign)} benign answers from the base model")
        gen = generate_greedy(
            lm.model,
            lm.tokenizer,
            [format_chat(lm.tokenizer, p) for p in benign],
            spec.distill_max_new_tokens,
            runtime.batch_size,
        )
        distilled = {p: _complete_sentences(t) for p, t in zip(benign, gen.texts, strict=True)}
        examples = build_examples(lm.tokenizer, distilled, spec.seed)
        log(f"fine-tuning on {len(examples)} examples for {spec.epochs} epochs")
        lm.model.requires_grad_(True)
        losses = train_loop(
            lm.model,
            examples,
            epochs=spec.epochs,
            lr=spec.learning_rate,
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            seed=spec.seed,
            pad_id=lm.tokenizer.pad_token_id,
            desc="align",
            progress=runtime.progress,
        )["epoch_losses"]
        lm.model.requires_grad_(False)
        save_model(lm.model, lm.tokenizer, staging)
        return {
            "spec": spec.model_dump(mode="json"),
            "base_fingerprint": lm.fingerprint,
            "data_fingerprint": data_fingerprint(),
            "examples": len(examples),
            "epoch_losses": losses,
        }

    key = align_key(spec, store)
    if note := alignment_difference(spec, store, key):
        log(note)
    art = cached_artifact(store, "models", key, build)
    return AlignResult.from_artifact(art)
