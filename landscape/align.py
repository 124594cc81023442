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

import hashlib
import random
import time
from pathlib import Path

from cache import Store
from landscape.models import ModelError, load_model, model_fingerprint, save_model
from landscape.prompts import (
    builtin_benign,
    builtin_harmful,
    chat_messages,
    data_text,
    format_chat,
    refusal_templates,
)
from landscape.provenance import provenance
from landscape.specs import AlignSpec, Runtime, spec_hash

DATA_FILES = ("harmful_train.tsv", "refusals.txt", "benign_train.txt")


def data_fingerprint() -> str:
    h = hashlib.sha256()
    for name in DATA_FILES:
        h.update(name.encode() + data_text(name).encode())
    return h.hexdigest()


def align_key(spec: AlignSpec, store: Store | None) -> str:
    return spec_hash("align", spec.identity(model_fingerprint(spec.base, store), data_fingerprint()))


def aligned_model_dir(store: Store | None, spec: AlignSpec = AlignSpec()) -> Path:
    """Where the aligned model of ``spec`` lives; a one-line error when it was never made."""
    if store is None:
        raise ModelError("the 'aligned' model needs a store")
    key = align_key(spec, store)
    if store.artifact("models", key) is None:
        raise ModelError("the aligned model is not in the store yet: run `landscape align` first")
    return store.artifact_dir("models", key)


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
        prefix = format_chat(tokenizer, prompt, system)
        full = tokenizer.apply_chat_template(chat_messages(prompt, system, answer), tokenize=False)
        if not full.startswith(prefix):
            raise ModelError("the chat template does not extend the prompt with the answer")
        p_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        f_ids = tokenizer(full.rstrip("\n"), add_special_tokens=False)["input_ids"]
        out.append((f_ids, [-100] * len(p_ids) + f_ids[len(p_ids) :]))
    rng.shuffle(out)
    return out


def length_buckets(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within windows of 4 batches): less padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 4 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def train_sft(model, examples, *, epochs, lr, batch_size, max_length, seed, pad_id, progress=True):
    """Plain AdamW SFT loop (the HF Trainer refuses GGUF-loaded models). Returns mean loss per epoch."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model.train()
    model.requires_grad_(True)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    losses = []
    for epoch in range(epochs):
        batches = length_buckets([len(ids) for ids, _ in examples], batch_size, rng)
        total, n = 0.0, 0
        for batch in tqdm(batches, desc=f"align epoch {epoch + 1}/{epochs}", disable=not progress):
            seqs = [examples[k] for k in batch]
            width = min(max(len(ids) for ids, _ in seqs), max_length)
            ids = torch.full((len(seqs), width), pad_id)
            labels = torch.full((len(seqs), width), -100)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, (x, y) in enumerate(seqs):
                x, y = x[:width], y[:width]
                ids[r, : len(x)], labels[r, : len(y)], mask[r, : len(x)] = (
                    torch.tensor(x),
                    torch.tensor(y),
                    1,
                )
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(out.loss.detach()) * len(seqs)
            n += len(seqs)
        losses.append(total / n)
    model.eval()
    model.requires_grad_(False)
    return losses


def align_model(spec: AlignSpec, store: Store, runtime: Runtime | None = None, log=print) -> dict:
    """Align ``spec.base`` (or return the stored result). Returns the model's artifact record."""
    from landscape.generate import generate_greedy

    runtime = runtime or Runtime()
    key = align_key(spec, store)
    record = store.artifact("models", key)
    if record is not None:
        return dict(record, key=key, path=str(store.artifact_dir("models", key)), cached=True)
    t0 = time.perf_counter()
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
    losses = train_sft(
        lm.model,
        examples,
        epochs=spec.epochs,
        lr=spec.learning_rate,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        seed=spec.seed,
        pad_id=lm.tokenizer.pad_token_id,
        progress=runtime.progress,
    )
    staging = store.staging_dir("models")
    save_model(lm.model, lm.tokenizer, staging)
    record = {
        "spec": spec.model_dump(mode="json"),
        "base_fingerprint": lm.fingerprint,
        "data_fingerprint": data_fingerprint(),
        "examples": len(examples),
        "epoch_losses": losses,
        "elapsed_s": time.perf_counter() - t0,
        **provenance(),
    }
    store.commit_artifact("models", key, staging, record)
    return dict(record, key=key, path=str(store.artifact_dir("models", key)), cached=False)
