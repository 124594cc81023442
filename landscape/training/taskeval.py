"""Task accuracy of a fine-tuned model on the built-in sentiment test split, in the user's format.

Scored like lm-eval-harness multiple choice: for each test review the prompt is written in the
run's structure (Benign, AOA, AutoIF, …) with the format's answer prefix prefilled, and the model's
log-likelihood of each label's answer opening (``Structure.candidate``) is compared; the more
likely one is the prediction. One forward pass per candidate, no sampling, no parsing of free text,
so AOA's long pledge or AutoIF's long answers cost nothing extra.
"""

from __future__ import annotations

from landscape.core.prompts import format_chat
from landscape.training.data import LABELS, task_items


def candidate_logprobs(
    lm, contexts: list[str], continuations: list[str], batch_size: int = 16
) -> list[float]:
    """Σ log p(continuation | context) for each pair (right-padded batches, float32 log-softmax)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    seqs = []
    for ctx, cont in zip(contexts, continuations, strict=True):
        c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
        x_ids = tok(cont, add_special_tokens=False)["input_ids"]
        seqs.append((c_ids, x_ids))
    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for k in range(0, len(seqs), batch_size):
            chunk = seqs[k : k + batch_size]
            width = max(len(c) + len(x) for c, x in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (c, x) in enumerate(chunk):
                ids[r, : len(c) + len(x)] = torch.tensor(c + x)
                mask[r, : len(c) + len(x)] = 1
            logp = (
                model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().log_softmax(-1)
            )
            for r, (c, x) in enumerate(chunk):
                pos = torch.arange(len(c) - 1, len(c) + len(x) - 1, device=device)  # predicts x
                out.append(float(logp[r, pos, torch.tensor(x, device=device)].sum()))
    return out


def task_accuracy(lm, structure, limit: int, batch_size: int = 16) -> dict:
    """Accuracy (percent) of label prediction on the first ``limit`` test reviews."""
    items = task_items("test")[:limit]
    fmt = structure.fmt
    contexts, conts = [], []
    for item in items:
        prompt = structure.prompt(item["review"], 0)
        ctx = format_chat(lm.tokenizer, prompt, fmt.system_prompt, fmt.user_template, fmt.answer_prefix)
        for label in LABELS:
            contexts.append(ctx)
            conts.append(structure.candidate(label))
    scores = candidate_logprobs(lm, contexts, conts, batch_size)
    correct = 0
    for k, item in enumerate(items):
        pair = scores[2 * k : 2 * k + 2]
        correct += LABELS[pair.index(max(pair))] == item["label"]
    return {
        "task_accuracy_pct": 100.0 * correct / len(items),
        "task_n": len(items),
        "structure": structure.name,
    }
