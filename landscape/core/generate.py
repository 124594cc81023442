"""Batched greedy generation with per-response early stopping.

All prompts of a point go through in as few batches as ``batch_size`` allows, left-padded, sorted
by length so padding is small. The loop is a plain KV-cached greedy decoder rather than
``model.generate`` so that a response whose verdict can no longer change (its ``stop`` predicate)
leaves the batch at once: its row is dropped from the KV cache and later steps run on fewer rows.
An aligned model decides most refusals in a handful of tokens, so this is where the speed comes from.
Greedy decoding means the tokens produced are exactly those ``model.generate`` would produce, up to
the point where a response stops.

Early stopping must not change what is measured. A response may leave early only once it has at
least ``window`` new tokens (the incoherence window, judged on exactly those tokens whether or not
the response is cut later) and ``stop`` holds; the judge's ``decided`` guarantees its verdict
cannot change after that. Every response records how it ended (``eos``, ``budget`` or
``early_stop``) and after how many new tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

END_EOS, END_BUDGET, END_EARLY_STOP = "eos", "budget", "early_stop"


@dataclass
class Generation:
    texts: list[str]
    tokens: list[int]  # new tokens per response (the EOS token itself is not counted)
    ends: list[str]  # how each response ended: "eos", "budget" or "early_stop"
    windows: list[str]  # the first ``window`` new tokens of each response, decoded

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(src, "eos_token_id", None)
        if eos is None:
            continue
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return ids


@torch.no_grad()
def generate_greedy(
    model,
    tokenizer,
    inputs: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 64,
    stop: Callable[[str], bool] | None = None,
    check_every: int = 2,
    window: int = 16,
) -> Generation:
    """Greedy responses to chat-formatted ``inputs`` (in input order).

    ``stop(text)`` may end a response early, but only once it has ``window`` new tokens; the
    decoded first ``window`` tokens come back in ``windows`` either way.
    """
    if window < 1:
        raise ValueError(f"window must be at least one token, got {window}")
    rows: list[tuple[str, int, str, str]] = [("", 0, END_BUDGET, "")] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda k: len(inputs[k]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [inputs[k] for k in idx]
        out = _generate_batch(model, tokenizer, batch, max_new_tokens, stop, check_every, window)
        for k, row in zip(idx, out, strict=True):
            rows[k] = row
    if not rows:
        return Generation([], [], [], [])
    texts, counts, ends, windows = (list(col) for col in zip(*rows, strict=True))
    return Generation(texts, counts, ends, windows)


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Tokens shared by every sequence at its start, leaving each at least one token of its own."""
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for k in range(max(n, 0)):
        if any(s[k] != first[k] for s in seqs):
            return k
    return max(n, 0)


def _prefill(model, token_lists: list[list[int]], pad_id: int, device, cache: DynamicCache):
    """Fill ``cache`` with the prompts; returns (attention mask, last-position logits).

    The chat template and system prompt make every prompt start with the same tokens, often half of
    the input. That shared prefix is run once at batch size 1 and its KV cache repeated across the
    batch; each prompt's own suffix follows, left-padded *after* the prefix (the pads are masked
    and positions come from the mask, so the result equals padding the whole prompt).
    """
    p = common_prefix_len(token_lists) if len(token_lists) > 1 else 0
    if p < 4:  # too little shared to be worth a separate pass: plain left padding
        p = 0
    width = max(len(t) for t in token_lists) - p
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for r, toks in enumerate(token_lists):
        own = toks[p:]
        ids[r, width - len(own) :] = torch.tensor(own)
        mask[r, width - len(own) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    if p:
        prefix = torch.tensor([token_lists[0][:p]], device=device)
        model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(token_lists))
        mask = torch.cat([mask.new_ones(len(token_lists), p), mask], dim=-1)
    return mask, _step(model, ids, mask, cache)


def _step(model, ids, mask, cache: DynamicCache):
    """One cached forward pass over ``ids`` (the newest tokens); logits of the last position.

    Positions come from the attention mask, so left padding and the pads after a shared prefix
    never shift a prompt's positions.
    """
    pos = (mask.cumsum(-1) - 1).clamp_min(0)[:, -ids.shape[1] :]
    return model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1, :]


def _generate_batch(model, tokenizer, batch, max_new_tokens, stop, check_every, window):
    device = next(model.parameters()).device
    token_lists = [tokenizer(b, add_special_tokens=False)["input_ids"] for b in batch]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = torch.tensor(sorted(_eos_ids(model, tokenizer)), device=device)
    cache = DynamicCache()
    rows = torch.arange(len(batch), device=device)  # original row of each live row
    generated: list[list[int]] = [[] for _ in batch]
    ends = [END_BUDGET] * len(batch)
    mask, logits = _prefill(model, token_lists, pad_id, device, cache)
    ids = None  # the previous step's tokens, fed from step 1 on
    for step in range(max_new_tokens):
        if step > 0:
            logits = _step(model, ids, mask, cache)
        nxt = logits.argmax(-1)  # (live,)
        finished = torch.isin(nxt, eos) if eos.numel() else torch.zeros_like(nxt, dtype=torch.bool)
        for r, tok, fin in zip(rows.tolist(), nxt.tolist(), finished.tolist(), strict=True):
            if fin:
                ends[r] = END_EOS
            else:
                generated[r].append(tok)
        done = finished.clone()
        last = step == max_new_tokens - 1  # every live row ends at the budget anyway
        if stop is not None and not last and (step % check_every == check_every - 1):
            # Only rows past the incoherence window may leave: the window is judged in full.
            live = [
                r
                for r, f in zip(rows.tolist(), finished.tolist(), strict=True)
                if not f and len(generated[r]) >= window
            ]
            if live:  # batch_decode([]) is not an empty list
                decoded = tokenizer.batch_decode([generated[r] for r in live], skip_special_tokens=True)
                # A text ending in U+FFFD is a character cut mid-bytes: the next token may change it.
                stopped = {
                    r
                    for r, text in zip(live, decoded, strict=True)
                    if not text.endswith("\ufffd") and stop(text)
                }
                for r in stopped:
                    ends[r] = END_EARLY_STOP
                done |= torch.tensor([r in stopped for r in rows.tolist()], device=device)
        if done.all() or last:
            break
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, mask, nxt = rows[keep], mask[keep], nxt[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        ids = nxt[:, None]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    windows = tokenizer.batch_decode([g[:window] for g in generated], skip_special_tokens=True)
    return list(zip(texts, [len(g) for g in generated], ends, windows, strict=True))


@torch.no_grad()
def mean_nll(model, tokenizer, text: str) -> float:
    """Mean negative log-likelihood per token of ``text`` (nats); lower is a better LM."""
    device = next(model.parameters()).device
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    logits = model(input_ids=ids).logits[:, :-1, :].float()
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[0, 1:]))
