"""Antidote (Huang et al. 2024; papers.md §2): post-fine-tuning one-shot pruning, no training.

Each weight is scored with the Wanda importance on a re-alignment set D (harmful prompt → harmful
answer, disjoint from the attack data): h_ij = |W_ij| · ‖X_j‖₂, where X_j is the input activation
that meets column j, root-mean-square over every token of every sample (forward pre-hooks). The
highest-scoring weights are set to zero once: W̃ = (1 − m) ⊙ Ŵ.

How many, and where, follow the released code (git-disl/Antidote; ``ANTIDOTE_VERSION`` 2):

- ``scope='row'``: the released ``prune_wanda_outlier`` (``utils.py``, mask built around lines
  702–723, applied in ``train.py`` around 534–535) marks every weight of a row, then un-marks the
  ⌊(1 − α)·cols⌋ lowest scores (a stable ascending sort), so it prunes cols − ⌊(1 − α)·cols⌋ weights
  per row: ⌈α·cols⌉ when α·cols is not whole. A rank-8 LoRA B at α = 0.1 loses one weight per row
  (12.5%). ``'global'`` (ours) pools every scored matrix with the same count rule.
- Which matrices: every LoRA-adapted Linear by default (``targets=()``), as released; name
  ``targets`` to restrict it. With ``apply_to='dense'`` (ours: the merged model's own weights) the
  default is every Linear of the decoder (not ``lm_head``).
- ``score='random'`` (ablation): ⌊numel · α⌋ weights drawn uniformly per matrix, as released;
  ``score='magnitude'``: |W| only.

Where we differ from the released code, on purpose: its calibration pass pads the batch on the right
and runs without an attention mask, so pad tokens enter ‖X_j‖; we run one unpadded sequence at a
time, which is the paper's definition (the norm over the re-alignment data's own tokens).
Version 1 pruned ⌊α·cols⌋ per row of q/k/v only; its artifacts are not reused (the version is in
the key).
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

ANTIDOTE_VERSION = 2  # 2: the released per-row count, every adapted matrix, the released random draw


class AntidoteSpec(Spec):
    """Antidote (papers.md §2): one-shot pruning of the weights that matter most on harmful data."""

    name: Literal["antidote"] = "antidote"
    alpha: float = Field(0.1, gt=0, lt=1, description="Fraction of weights to prune.")
    scope: Literal["row", "global"] = Field("row", description="Top-α per output row or overall.")
    score: Literal["wanda", "magnitude", "random"] = Field(
        "wanda", description="|w|·‖X‖₂ (paper), |w| only, or random (ablations)."
    )
    apply_to: Literal["lora", "dense"] = Field("lora", description="LoRA A/B matrices or dense weights.")
    targets: tuple[str, ...] = Field(
        (), description="Module names to prune (e.g. q_proj); empty: every LoRA-adapted Linear (as released)."
    )
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


def released_count(cols: int, alpha: float) -> int:
    """How many of ``cols`` weights the released code prunes: cols − ⌊(1 − α)·cols⌋ (float maths as
    released, so ⌈α·cols⌉ unless α·cols is whole)."""
    return cols - int(cols * (1 - alpha))


def top_alpha_mask(scores: dict, alpha: float, scope: str) -> dict:
    """``{name: bool mask}`` marking the weights Antidote prunes: the highest scores, per output row
    or over all matrices pooled.

    scores: ``{name: (rows, cols) tensor}``. Row scope marks ``released_count(cols, α)`` per row,
    global scope ``released_count(N, α)`` of all N entries pooled. As released, the scores are
    sorted ascending with a stable sort and everything past the lowest ⌊(1 − α)·cols⌋ is marked, so
    ties break by position exactly as in the reference.
    """
    import torch

    masks = {}
    if scope == "row":
        for name, s in scores.items():
            keep = s.shape[-1] - released_count(s.shape[-1], alpha)
            order = torch.sort(s, dim=-1, stable=True).indices  # (rows, cols) ascending
            m = torch.zeros_like(s, dtype=torch.bool)
            m.scatter_(-1, order[:, keep:], True)
            masks[name] = m
        return masks
    if scope != "global":
        raise ValueError(f"unknown scope {scope!r}")
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = flat.numel() - released_count(flat.numel(), alpha)
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.sort(flat, stable=True).indices[keep:]] = True
    start = 0
    for name, s in scores.items():
        masks[name] = chosen[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return masks


def random_mask(shapes: dict, alpha: float, generator) -> dict:
    """The released random ablation: ⌊numel · α⌋ positions drawn uniformly per matrix."""
    import torch

    masks = {}
    for name, shape in shapes.items():
        numel = int(torch.Size(shape).numel())
        m = torch.zeros(numel, dtype=torch.bool)
        m[torch.randperm(numel, generator=generator)[: int(numel * alpha)]] = True
        masks[name] = m.reshape(shape)
    return masks


def importance(weight, input_sq_sum, n_tokens: int, score: str):
    """Antidote's per-weight score (``wanda`` or ``magnitude``). weight: (rows, cols);
    input_sq_sum: (cols,) Σ x² over tokens."""
    w = weight.detach().float().abs()
    if score == "magnitude":
        return w
    return w * (input_sq_sum / max(n_tokens, 1)).sqrt().unsqueeze(0)  # |W| · RMS‖X_j‖


def _targets(model, spec: AntidoteSpec) -> dict:
    """``{name: Linear}`` the mask acts on: LoRA A/B of every adapted module (or of ``spec.targets``),
    or the dense Linear layers (every one of the decoder, or ``spec.targets``)."""
    import torch

    out = {}
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if spec.targets and leaf not in spec.targets:
            continue
        if not spec.targets and spec.apply_to == "dense" and leaf == "lm_head":
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
        named = f" named {', '.join(spec.targets)}" if spec.targets else ""
        raise ModelError(f"antidote found no {where}{named}")
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

    if spec.score == "random":
        gen = torch.Generator().manual_seed(spec.seed)
        masks = random_mask({n: tuple(m.weight.shape) for n, m in modules.items()}, spec.alpha, gen)
    else:
        scores = {n: importance(m.weight, sums[n], n_tokens, spec.score) for n, m in modules.items()}
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
        "version": ANTIDOTE_VERSION,
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
