"""Antidote (Huang et al. 2024; papers.md §2): post-fine-tuning one-shot pruning, no training.

Each weight is scored with the Wanda importance on a re-alignment set D (harmful prompt → harmful
answer, disjoint from the attack data): h_ij = |W_ij| · ‖X_j‖₂, where X_j is the input activation
that meets column j, root-mean-square over every token of every sample (forward pre-hooks). The
top-α fraction by score is set to zero once: W̃ = (1 − m) ⊙ Ŵ. ``scope='row'`` compares scores
within each output row (Wanda and the reference code: k = ⌊α · columns⌋ per row, so small LoRA
ranks round down and the *effective* fraction is reported); ``'global'`` pools every scored matrix.
As in the reference code the mask acts on the user's LoRA A/B matrices of q/k/v by default, or on
dense weights (the merged model) with ``apply_to='dense'``. Ablations: ``score='magnitude'`` (|W|
only) and ``score='random'``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cache import Store
from landscape.core.artifacts import cached_artifact
from landscape.core.models import ModelError, load_model, model_fingerprint, save_adapter, save_model
from landscape.core.specs import FormatSpec, ModelSpec, Runtime, Spec, SpecError, spec_hash
from landscape.training.data import examples_fingerprint, harmful_examples, render_all
from landscape.training.defenses.base import Defended, Defense, DefenseContext, register
from landscape.training.finetune import TASK_ADAPTER


class AntidoteSpec(Spec):
    """Antidote (papers.md §2): one-shot pruning of the weights that matter most on harmful data."""

    name: Literal["antidote"] = "antidote"
    alpha: float = Field(0.1, gt=0, lt=1, description="Fraction of weights to prune.")
    scope: Literal["row", "global"] = Field("row", description="Top-α per output row or overall.")
    score: Literal["wanda", "magnitude", "random"] = Field(
        "wanda", description="|w|·‖X‖₂ (paper), |w| only, or random (ablations)."
    )
    apply_to: Literal["lora", "dense"] = Field("lora", description="LoRA A/B matrices or dense weights.")
    targets: tuple[str, ...] = Field(("q_proj", "k_proj", "v_proj"), min_length=1)
    realign_limit: int = Field(30, ge=1, description="Re-alignment samples for the activations.")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> AntidoteSpec:
        from landscape.training.data import harmful_items

        have = len(harmful_items("realign"))
        if self.realign_limit > have:
            raise SpecError(
                f"antidote realign_limit {self.realign_limit}: the built-in re-alignment set has {have}"
            )
        return self


def top_alpha_mask(scores: dict, alpha: float, scope: str) -> dict:
    """``{name: bool mask}`` marking the top-α scores, per output row or over all matrices pooled.

    scores: ``{name: (rows, cols) tensor}``. Row scope keeps k = ⌊α·cols⌋ per row; global scope
    keeps k = ⌊α·N⌋ over all N entries. Ties break by position (torch.topk), so k is exact.
    """
    import torch

    masks = {}
    if scope == "row":
        for name, s in scores.items():
            k = int(s.shape[-1] * alpha)
            m = torch.zeros_like(s, dtype=torch.bool)
            if k:
                m.scatter_(-1, s.topk(k, dim=-1).indices, True)
            masks[name] = m
        return masks
    if scope != "global":
        raise ValueError(f"unknown scope {scope!r}")
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    k = int(flat.numel() * alpha)
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    if k:
        chosen[flat.topk(k).indices] = True
    start = 0
    for name, s in scores.items():
        masks[name] = chosen[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return masks


def importance(weight, input_sq_sum, n_tokens: int, score: str, generator=None):
    """Antidote's per-weight score. weight: (rows, cols); input_sq_sum: (cols,) Σ x² over tokens."""
    import torch

    w = weight.detach().float().abs()
    if score == "magnitude":
        return w
    if score == "random":
        return torch.rand(w.shape, generator=generator)
    return w * (input_sq_sum / max(n_tokens, 1)).sqrt().unsqueeze(0)  # |W| · RMS‖X_j‖


def _targets(model, spec: AntidoteSpec) -> dict:
    """``{name: Linear}`` the mask acts on: LoRA A/B of the target modules, or their dense layers."""
    import torch

    out = {}
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in spec.targets:
            continue
        if spec.apply_to == "lora":
            if not hasattr(mod, "lora_A") or TASK_ADAPTER not in mod.lora_A:
                continue
            out[f"{name}.lora_A"] = mod.lora_A[TASK_ADAPTER]
            out[f"{name}.lora_B"] = mod.lora_B[TASK_ADAPTER]
        elif isinstance(mod, torch.nn.Linear):
            out[name] = mod
    if not out:
        where = "LoRA adapters" if spec.apply_to == "lora" else "linear layers"
        raise ModelError(f"antidote found no {where} named {', '.join(spec.targets)}")
    return out


def collect_input_norms(model, modules: dict, examples) -> tuple[dict, int]:
    """Σ x² per input column of each module over every token of ``examples`` (batch of one: no pads)."""
    import torch

    sums = {n: torch.zeros(m.in_features) for n, m in modules.items()}
    count = 0

    def hook(name):
        def fn(_mod, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])  # (tokens, in)
            sums[name] += x.pow(2).sum(0).cpu()

        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules.items()]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for ids, _ in examples:
                model(input_ids=torch.tensor([ids], device=device))
                count += len(ids)
    finally:
        for h in handles:
            h.remove()
    return sums, count


def prune(modules: dict, sums: dict, n_tokens: int, spec: AntidoteSpec) -> dict:
    """Zero the top-α weights in place; returns the effective pruned fractions."""
    import torch

    gen = torch.Generator().manual_seed(spec.seed)
    scores = {n: importance(m.weight, sums[n], n_tokens, spec.score, gen) for n, m in modules.items()}
    masks = top_alpha_mask(scores, spec.alpha, spec.scope)
    by_kind: dict[str, list[int]] = {}
    with torch.no_grad():
        for n, m in modules.items():
            mask = masks[n].to(m.weight.device)
            m.weight[mask] = 0
            kind = n.rsplit(".", 1)[-1] if spec.apply_to == "lora" else "dense"
            pruned, total = by_kind.setdefault(kind, [0, 0])
            by_kind[kind] = [pruned + int(mask.sum()), total + mask.numel()]
    pruned = sum(v[0] for v in by_kind.values())
    total = sum(v[1] for v in by_kind.values())
    return {
        "effective_fraction": pruned / total,
        "pruned": pruned,
        "scored": total,
        "by_matrix": {k: v[0] / v[1] for k, v in by_kind.items()},
    }


def apply_antidote(
    spec: AntidoteSpec, model: ModelSpec, fmt: FormatSpec, store: Store, runtime: Runtime, log=print
) -> dict:
    """Prune the fine-tuned ``model`` (θ₀ + LoRA adapter, or dense); returns the defended model's record."""
    if spec.apply_to == "lora" and not model.adapter:
        raise ModelError("antidote on LoRA matrices needs a LoRA fine-tuned model (or apply_to: dense)")
    realign = harmful_examples("realign", spec.realign_limit, fmt, spec.seed)
    identity = {
        "model": model_fingerprint(model, store),
        "dtype": model.dtype,
        "spec": spec.model_dump(mode="json"),
        "data": examples_fingerprint(realign),
    }
    key = spec_hash("antidote", identity)

    def build(staging) -> dict:
        from peft import PeftModel

        base = model.model_copy(update={"adapter": None}) if spec.apply_to == "lora" else model
        lm = load_model(base, runtime.device, store)
        net = PeftModel.from_pretrained(lm.model, model.adapter) if spec.apply_to == "lora" else lm.model
        net.eval()
        modules = _targets(net, spec)
        sums, n_tokens = collect_input_norms(net, modules, render_all(lm.tokenizer, realign))
        stats = prune(modules, sums, n_tokens, spec)
        log(
            f"antidote α={spec.alpha} ({spec.score}, {spec.scope}, {spec.apply_to}): "
            f"pruned {stats['effective_fraction']:.1%} of {stats['scored']:,} weights"
        )
        if spec.apply_to == "lora":
            save_adapter(net, staging)
        else:
            save_model(net, lm.tokenizer, staging)
        return {"spec": spec.model_dump(mode="json"), **stats, "n_tokens": n_tokens}

    art = cached_artifact(store, "defended", key, build)
    path = str(art.path)
    out = (
        model.model_copy(update={"adapter": path})
        if spec.apply_to == "lora"
        else ModelSpec(source=path, dtype=model.dtype)
    )
    return dict(art.record, key=art.key, model=out.model_dump(mode="json"))


@register
class Antidote(Defense):
    """Post-hoc: prune the fine-tuned model; the study measures the pruned one."""

    spec = AntidoteSpec

    def on_model(self, spec: AntidoteSpec, model: ModelSpec, ctx: DefenseContext) -> Defended:
        rec = apply_antidote(spec, model, ctx.fmt, ctx.store, ctx.runtime, ctx.log)
        details = {k: rec[k] for k in ("effective_fraction", "by_matrix", "pruned", "scored")}
        return Defended(ModelSpec(**rec["model"]), rec["key"], details)

    def summary(self, details: dict) -> str:
        return f"Antidote pruned {details['effective_fraction']:.1%} of {details['scored']:,} weights"
