"""How numbers and durations read in every report: CLI, demo, study tables and the dashboard.

One formatter each, so "no number" reads the same everywhere ("—", never "nan" or "None").
"""

from __future__ import annotations

import math
import re

MISSING = "—"


def format_number(v, nd: int = 1) -> str:
    """``v`` with ``nd`` decimals, or "—" where there is no number (None, NaN or inf)."""
    if v is None:
        return MISSING
    v = float(v)
    return f"{v:.{nd}f}" if math.isfinite(v) else MISSING


def format_setting(v, digits: int | None = None) -> str:
    """A hyperparameter's value as a person reads it: a float in ``%g`` (``digits`` significant
    digits when given: 0.000443), anything else as written (3, lora)."""
    if isinstance(v, float):
        return f"{v:.{digits}g}" if digits is not None else f"{v:g}"
    return str(v)


def format_duration(seconds: float) -> str:
    """``1m05s`` under an hour, ``2h03m`` above; "?" for an unknown (non-finite) time."""
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def axis_decimals(values) -> int:
    """Decimals for every coordinate of an axis: the fewest (2 to 6) that write each one exactly
    (0.125 → 3), else two significant digits of the smallest step (linspace(-0.2, 0.2, 4), step
    0.133 → 3: −0.200, −0.067, 0.067, 0.200)."""
    v = sorted({float(x) for x in values if math.isfinite(float(x))})
    scale = max((abs(x) for x in v), default=1.0) or 1.0
    for d in range(2, 7):
        if all(abs(round(x, d) - x) <= 1e-9 * scale for x in v):
            return d
    steps = [b - a for a, b in zip(v, v[1:], strict=False) if b - a > 0]
    if not steps:
        return 3
    return int(min(6, max(2, 2 - math.floor(math.log10(min(steps))))))


def format_coordinate(v: float, nd: int) -> str:
    """One coordinate with ``nd`` decimals and no signed zero (``-0.000`` prints as ``0.000``)."""
    text = f"{float(v):.{nd}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 point``, ``3 points``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


# a model built by the store is a directory named by its 64-hex key: name it by what it is
ARTIFACT_NAMES = {
    "models": "aligned",
    "finetunes": "fine-tuned",
    "defended": "defended",
    "security": "security vector",
    "gguf": "converted",
}
_ARTIFACT = re.compile(r"artifacts/(?P<kind>[a-z]+)/(?P<key>[0-9a-f]{64})(?:/(?P<sub>[^/]+))?$")


def source_name(source: str | None) -> str:
    """A readable name for a model or adapter path: ``aligned b46521`` for the store's aligned
    model of key b46521…, ``fine-tuned 8791ca epoch 3`` for a checkpoint of a fine-tuning run,
    else the file or directory name (``smollm2-135m-instruct``)."""
    text = str(source or "?").rstrip("/").replace("\\", "/")
    m = _ARTIFACT.search(text)
    if m is None:
        return text.rsplit("/", 1)[-1] or "?"
    name = f"{ARTIFACT_NAMES.get(m['kind'], m['kind'])} {m['key'][:6]}"
    if m["sub"]:
        name += " " + m["sub"].replace("epoch_", "epoch ")
    return name


_READABLE = re.compile(
    r"^(?P<kind>" + "|".join(map(re.escape, ARTIFACT_NAMES.values())) + r") (?P<key>[0-9a-f]{4,64})"
    r"(?: epoch (?P<epoch>\d+))?$"
)
_ARTIFACT_KINDS = {v: k for k, v in ARTIFACT_NAMES.items()}


def parse_source_name(name: str) -> tuple[str, str, str | None] | None:
    """``source_name`` read back: ``(artifact kind, key prefix, epoch or None)`` of a readable name
    (``fine-tuned 8791ca epoch 3`` → ``("finetunes", "8791ca", "3")``), None for any other text."""
    m = _READABLE.match(name.strip())
    return None if m is None else (_ARTIFACT_KINDS[m["kind"]], m["key"], m["epoch"])


def model_name(model: dict) -> str:
    """A model spec's readable name: its source's, then `` + `` its adapter's."""
    name = source_name(model.get("source"))
    return name + (f" + {source_name(model['adapter'])}" if model.get("adapter") else "")
