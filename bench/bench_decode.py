"""Benchmark: decoding tokens/s at the demo's batch sizes, our decoder against the alternatives.

Decoding dominates a point once directions are free (``bench_directions.py``). This measures, in one
run and on the same prompts, new tokens per second of greedy decoding on the embedded model:

- ``ours``: ``landscape.core.generate.generate_greedy`` as the scans run it (shared-prefix prefill,
  rows sorted by length, a ``DynamicCache`` that grows by concatenation); early stop off here, so
  every variant decodes the same tokens and only the speed differs;
- ``hf``: ``model.generate`` (greedy, the same batch, left padding): the stock decoder;
- ``prealloc``: ours with a KV cache preallocated to prompt + budget and written in place (no
  per-step ``torch.cat`` of the whole cache: on a GPU at 512 tokens that copy grows with T²);
- ``compiled`` (``--compile``): ours with each decoder layer wrapped in ``torch.compile``
  (dynamic shapes; the first call compiles and is timed apart).

Shapes are the demo's: the 1D scan's point (32 prompts × 32 new tokens, one batch), the 2D scan's
(12 prompts × 24), and a longer budget (``--long``, 32 × 128) where the cache's growth matters.
Each variant runs ``--repeats`` times after a warm-up; the best time is kept, and the texts are
compared with ``ours`` (greedy: identical, unless float rounding flips a near-tie).

    OMP_NUM_THREADS=2 python bench/bench_decode.py [--device cpu] [--dtype float32] [--long] [--compile]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_7b import sync  # noqa: E402  (bench/ is on sys.path when a bench script runs)


def preallocated_cache(capacity: int):
    """A ``DynamicCache`` whose layers write into buffers of ``capacity`` positions (doubling if
    ever exceeded) and hand attention a view of the filled part."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class Layer(DynamicLayer):
        def lazy_initialization(self, key_states, value_states):
            super().lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self.n = 0

        def _view(self):
            self.keys, self.values = self._k[:, :, : self.n], self._v[:, :, : self.n]

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            b, h, t, d = key_states.shape
            need = self.n + t
            if self._k is None or need > self._k.shape[-2]:
                cap = max(need, capacity if self._k is None else 2 * self._k.shape[-2])
                k, v = key_states.new_empty(b, h, cap, d), value_states.new_empty(b, h, cap, d)
                if self.n:
                    k[:, :, : self.n], v[:, :, : self.n] = self.keys, self.values
                self._k, self._v = k, v
            self._k[:, :, self.n : need] = key_states
            self._v[:, :, self.n : need] = value_states
            self.n = need
            self._view()
            return self.keys, self.values

        def batch_repeat_interleave(self, repeats):
            if self.n:
                self._k, self._v = (
                    self._k.repeat_interleave(repeats, 0),
                    self._v.repeat_interleave(repeats, 0),
                )
                self._view()

        def batch_select_indices(self, indices):
            if self.n:
                self._k, self._v = self._k[indices], self._v[indices]
                self._view()

    cache = DynamicCache()
    cache.layer_class_to_replicate = Layer
    return cache


def hf_generate(model, tokenizer, inputs, max_new_tokens):
    import torch

    enc = tokenizer(inputs, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    eos = set(
        model.generation_config.eos_token_id
        if isinstance(model.generation_config.eos_token_id, list)
        else [model.generation_config.eos_token_id]
    )
    texts, tokens = [], 0
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        kept = []
        for t in row:
            if t in eos:
                break
            kept.append(t)
        tokens += len(kept)
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts, tokens


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--long", action="store_true", help="also 32 prompts × 128 new tokens")
    ap.add_argument("--compile", action="store_true", help="also torch.compile'd decoder layers")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    import tempfile

    import torch

    import landscape.core.generate as gen
    from cache import Store
    from landscape.core.models import load_model
    from landscape.core.prompts import load_prompts
    from landscape.core.specs import ModelSpec, PromptSpec

    tmp = tempfile.TemporaryDirectory()  # the GGUF's conversion, kept until the end (weights may be mapped)
    store = Store(tmp.name)
    lm = load_model(ModelSpec(dtype=args.dtype), args.device, store)
    model, tok = lm.model, lm.tokenizer
    prompts = load_prompts(PromptSpec(source="builtin:harmful", limit=32))
    chat = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    shapes = [("1d", 32, 32), ("2d", 12, 24)] + ([("long", 32, 128)] if args.long else [])
    dynamic = gen.DynamicCache

    def ours(inputs, budget, cache=None):
        gen.DynamicCache = cache or dynamic
        try:
            g = gen.generate_greedy(model, tok, inputs, budget)
        finally:
            gen.DynamicCache = dynamic
        return g.texts, g.total_tokens

    variants = {
        "ours": lambda inputs, budget: ours(inputs, budget),
        "hf": lambda inputs, budget: hf_generate(model, tok, inputs, budget),
        "prealloc": lambda inputs, budget: ours(inputs, budget, lambda: preallocated_cache(96 + budget)),
    }
    results: dict = {"device": args.device, "dtype": args.dtype, "threads": torch.get_num_threads()}
    print(f"embedded model, {args.device} {args.dtype}, {torch.get_num_threads()} threads")
    compiled_layers = None
    for name, n, budget in shapes:
        inputs = chat[:n]
        row = {}
        for variant in list(variants) + (["compiled"] if args.compile else []):
            fn = variants.get(variant)
            if variant == "compiled":
                if compiled_layers is None:
                    compiled_layers = [layer.forward for layer in model.model.layers]
                    for layer in model.model.layers:
                        layer.forward = torch.compile(layer.forward, dynamic=True)
                    t0 = time.perf_counter()
                    ours(inputs, budget)
                    results["compile_first_call_s"] = time.perf_counter() - t0
                fn = variants["ours"]
            else:
                fn(inputs[:2], 4)  # warm-up
            times = []
            for _ in range(args.repeats):
                sync(args.device)
                t0 = time.perf_counter()
                texts, tokens = fn(inputs, budget)
                sync(args.device)
                times.append(time.perf_counter() - t0)
            row[variant] = {
                "s": min(times),
                "tokens": tokens,
                "tokens_per_s": tokens / min(times),
                "texts": texts,
            }
        base = row["ours"]
        for variant, r in row.items():
            same = sum(a == b for a, b in zip(r["texts"], base["texts"], strict=True))
            print(
                f"  {name} ({n} prompts × {budget} tokens) {variant:9s} {r['s']:7.2f} s  {r['tokens_per_s']:7.1f} tokens/s"
                f"  ×{base['s'] / r['s']:.2f} vs ours  texts same as ours {same}/{n}"
            )
            r["same_as_ours"] = same
        for r in row.values():
            del r["texts"]
        results[name] = row
    if compiled_layers is not None:
        print(f"  compiled: first call (compiling) {results['compile_first_call_s']:.1f} s")
        for layer, fwd in zip(model.model.layers, compiled_layers, strict=True):
            layer.forward = fwd
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
