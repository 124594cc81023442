"""How numbers and durations read in every report: CLI, demo, study tables and the dashboard.

One formatter each, so "no number" reads the same everywhere ("—", never "nan" or "None").
"""

from __future__ import annotations

import math

MISSING = "—"


def format_number(v, nd: int = 1) -> str:
    """``v`` with ``nd`` decimals, or "—" where there is no number (None, NaN or inf)."""
    if v is None:
        return MISSING
    v = float(v)
    return f"{v:.{nd}f}" if math.isfinite(v) else MISSING


def format_duration(seconds: float) -> str:
    """``1m05s`` under an hour, ``2h03m`` above; "?" for an unknown (non-finite) time."""
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
