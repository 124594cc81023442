"""Supervised fine-tuning with loss on response tokens only: LoRA (peft) or full, per-epoch checkpoints.

The user's fine-tuning step of the shared protocol (papers.md). A plain AdamW loop, because the HF
Trainer refuses GGUF-loaded models. The loss is cross-entropy on the answer tokens only; the LM
head is applied only at those positions (for a 49k vocabulary most of a step's head cost sits on
prompt tokens that carry no loss). LoRA adapters are saved after every epoch (a few MB each) so the
fine-tuning trajectory can be drawn; full fine-tuning saves whole safetensors checkpoints.

A run is keyed by the hash of its ``FinetuneSpec``, the base model's fingerprint, the data's
fingerprint and the security vector's key (if one is active), so rerunning is instant. CPU runs in
float32; CUDA in the model's dtype (bfloat16), with peft keeping adapter weights in float32.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

from cache import Store
from landscape.core.artifacts import cached_artifact
from landscape.core.models import ModelError, load_model, model_fingerprint, save_adapter, save_model
from landscape.core.specs import ModelSpec, Runtime, spec_hash
from landscape.training.data import Example, examples_fingerprint, render_all
from landscape.training.results import FinetuneResult, FrozenAdapter
from landscape.training.specs import FinetuneSpec, LoraSpec

TASK_ADAPTER = "default"  # peft saves the default adapter at the top of its directory
SECURITY_ADAPTER = "security"


def finetune_key(base_fp: str, dtype: str, data_fp: str, spec: FinetuneSpec, security_key: str | None) -> str:
    identity = {
        "base": {"fingerprint": base_fp, "dtype": dtype},
        "data": data_fp,
        "finetune": spec.key_dump(),
        "security": security_key,
    }
    return spec_hash("finetune", identity)


def lora_config(spec: LoraSpec):
    from peft import LoraConfig

    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        target_modules=list(spec.targets),
        lora_dropout=spec.dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )


def check_targets(model, targets) -> None:
    """A LoRA target that matches no module is a one-line error (peft's own is a traceback)."""
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in leaves]
    if missing:
        raise ModelError(f"LoRA target module {missing[0]!r} does not exist in this model")


def _inner(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model, base.get_output_embeddings()


def batch_tensors(seqs: list[tuple[list[int], list[int]]], pad_id: int, max_length: int):
    """Right-padded ``(ids, mask, labels)`` tensors of shape (batch, width)."""
    import torch

    width = min(max(len(ids) for ids, _ in seqs), max_length)
    ids = torch.full((len(seqs), width), pad_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, (x, y) in enumerate(seqs):
        x, y = x[:width], y[:width]
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
        mask[r, : len(x)] = 1
    return ids, mask, labels


def response_loss(model, ids, mask, labels, reduction: str = "mean"):
    """Cross-entropy of the answer tokens; the LM head runs only where a label is set.

    ids/mask/labels: (batch, width). Position t predicts token t+1. ``reduction``: 'mean' over all
    answer tokens, 'sum', or 'example' (each row's token mean, then the mean over rows).
    """
    import torch

    body, head = _inner(model)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # (batch, width, d)
    target = labels[:, 1:]
    keep = target != -100  # (batch, width-1)
    logits = head(hidden[:, :-1][keep]).float()  # (n_kept, vocab)
    if reduction != "example":
        return torch.nn.functional.cross_entropy(logits, target[keep], reduction=reduction)
    per_token = torch.nn.functional.cross_entropy(logits, target[keep], reduction="none")
    rows = keep.nonzero()[:, 0]  # row of each kept token, in the same (row-major) order
    sums = torch.zeros(ids.shape[0], device=per_token.device).index_add(0, rows, per_token)
    counts = keep.sum(1)
    has = counts > 0
    return (sums[has] / counts[has]).mean()


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


def train_loop(
    model,
    examples,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int,
    pad_id: int,
    schedule: str = "constant",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    loss_average: str = "token",
    extra_loss=None,
    on_epoch=None,
    desc: str = "train",
    progress: bool = True,
) -> dict:
    """AdamW over the parameters that require grad; returns per-epoch and per-step losses.

    ``extra_loss(step) -> tensor`` adds a term (the security vector's KL); ``on_epoch(k)`` saves.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ModelError("nothing to train: no parameter requires a gradient")
    device = params[0].device
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(examples) // batch_size)
    sched = get_scheduler(
        schedule, opt, num_warmup_steps=warmup_steps, num_training_steps=epochs * steps_per_epoch
    )
    epoch_losses, step_losses = [], []
    model.train()
    for epoch in range(epochs):
        batches = length_buckets([len(ids) for ids, _ in examples], batch_size, rng)
        total, n = 0.0, 0
        for batch in tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress):
            ids, mask, labels = (
                t.to(device) for t in batch_tensors([examples[k] for k in batch], pad_id, max_length)
            )
            loss = response_loss(model, ids, mask, labels, "mean" if loss_average == "token" else "example")
            total_loss = loss + extra_loss(len(step_losses)) if extra_loss else loss
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step_losses.append(float(loss.detach()))
            total += float(loss.detach()) * len(batch)
            n += len(batch)
        epoch_losses.append(total / n)
        if on_epoch is not None:
            model.eval()
            on_epoch(epoch + 1)
            model.train()
    model.eval()
    return {"epoch_losses": epoch_losses, "step_losses": step_losses}


def mean_response_loss(model, examples, pad_id: int, max_length: int, batch_size: int = 16) -> float:
    """Token-mean answer loss over ``examples`` (no gradients)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(examples), batch_size):
            ids, mask, labels = (
                t.to(device) for t in batch_tensors(examples[k : k + batch_size], pad_id, max_length)
            )
            total += float(response_loss(model, ids, mask, labels, reduction="sum"))
            count += int((labels[:, 1:] != -100).sum())
    return total / max(count, 1)


def attach_lora(model, spec: FinetuneSpec, security_dir: Path | None):
    """The model with a trainable task adapter (and, if given, the frozen, active security vector)."""
    import torch
    from peft import PeftModel, get_peft_model

    check_targets(model, spec.lora.targets)
    torch.manual_seed(spec.seed)  # LoRA A is initialised at random
    if security_dir is None:
        return get_peft_model(model, lora_config(spec.lora), adapter_name=TASK_ADAPTER)
    peft_model = PeftModel.from_pretrained(model, str(security_dir), adapter_name=SECURITY_ADAPTER)
    peft_model.add_adapter(TASK_ADAPTER, lora_config(spec.lora))
    peft_model.base_model.set_adapter([SECURITY_ADAPTER, TASK_ADAPTER])  # both act in forward …
    for name, p in peft_model.named_parameters():  # … set_adapter made both trainable: re-freeze
        p.requires_grad = f".{TASK_ADAPTER}." in name and "lora_" in name
    return peft_model


def finetune(
    base: ModelSpec,
    examples: list[Example],
    spec: FinetuneSpec,
    store: Store,
    runtime: Runtime | None = None,
    *,
    security: FrozenAdapter | None = None,
    log=print,
) -> FinetuneResult:
    """Fine-tune ``base`` on ``examples`` (or return the stored run), with ``security`` (a frozen,
    active adapter) during training if given; the result lists one checkpoint per epoch."""
    runtime = runtime or Runtime()
    if spec.method == "full" and security is not None:
        raise ModelError("security vectors need LoRA fine-tuning (method: lora)")
    data_fp = examples_fingerprint(examples)
    key = finetune_key(model_fingerprint(base, store), base.dtype, data_fp, spec, security and security.key)
    build = partial(_train, base, examples, spec, store, runtime, security, data_fp, log)
    if store.artifact("finetunes", key) is None:  # one process trains it; another waits, then reads it
        from landscape.engine.lease import build_lease

        with build_lease(store, "finetunes", key, runtime.lease_ttl_s, log):
            art = cached_artifact(store, "finetunes", key, build)
    else:
        art = cached_artifact(store, "finetunes", key, build)
    return FinetuneResult.from_record(art.record, key, art.path)


def _train(base, examples, spec, store, runtime, security, data_fp, log, staging: Path) -> dict:
    lm = load_model(base, runtime.device, store)
    tokenizer = lm.tokenizer
    rendered = render_all(tokenizer, examples)
    model = lm.model
    model.requires_grad_(spec.method == "full")
    if spec.method == "lora":
        model = attach_lora(model, spec, Path(security.path) if security else None)
    dirs: list[str] = []

    def save(epoch: int) -> None:
        name = f"epoch_{epoch}"
        if spec.method == "lora":
            save_adapter(model, staging / name, selected_adapters=[TASK_ADAPTER])
        else:
            save_model(model, tokenizer, staging / name)
        dirs.append(name)

    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(
        f"fine-tuning ({spec.method}, {n_train:,} trainable) on {len(examples)} examples for {spec.epochs} epochs"
    )
    losses = train_loop(
        model,
        rendered,
        epochs=spec.epochs,
        lr=spec.learning_rate,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        seed=spec.seed,
        pad_id=tokenizer.pad_token_id,
        schedule=spec.schedule,
        warmup_steps=spec.warmup_steps,
        weight_decay=spec.weight_decay,
        loss_average=spec.loss_average,
        on_epoch=save,
        desc="finetune",
        progress=runtime.progress,
    )
    record = {
        "spec": spec.model_dump(mode="json"),
        "base": base.model_dump(mode="json"),
        "base_fingerprint": lm.fingerprint,
        "data_fingerprint": data_fp,
        "examples": len(examples),
        "kinds": {k: sum(e.kind == k for e in examples) for k in ("task", "harmful", "safety")},
        "trainable_params": n_train,
        "checkpoint_dirs": dirs,
        "security": security and security.key,
        **losses,
    }
    if security is not None:
        record["security_diagnostic"] = security_diagnostic(
            model, examples, rendered, spec, tokenizer.pad_token_id
        )
    return record


def security_diagnostic(model, examples, rendered, spec, pad_id) -> dict:
    """Harmful-data loss of the trained model with the security vector on vs off (papers.md §4)."""
    harmful = [r for e, r in zip(examples, rendered, strict=True) if e.kind == "harmful"]
    if not harmful:
        return {}
    model.base_model.set_adapter([SECURITY_ADAPTER, TASK_ADAPTER])
    on = mean_response_loss(model, harmful, pad_id, spec.max_length)
    model.base_model.set_adapter(TASK_ADAPTER)
    off = mean_response_loss(model, harmful, pad_id, spec.max_length)
    return {"harmful_loss_vector_on": on, "harmful_loss_vector_off": off, "n_harmful": len(harmful)}


def checkpoint_model(theta0: ModelSpec, run: FinetuneResult, epoch: int | None = None) -> ModelSpec:
    """The ModelSpec of a fine-tuning run's checkpoint (``None``: the final one)."""
    path = run.checkpoints[-1 if epoch is None else epoch - 1]
    if run.method == "lora":
        return theta0.model_copy(update={"adapter": path})
    return ModelSpec(source=path, dtype=theta0.dtype)
