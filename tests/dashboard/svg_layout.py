"""Where each text of an exported SVG lands, as Chromium lays it out, and what collides.

The SVGs are inlined into one HTML page that headless Chromium loads (``--dump-dom``); a script
reads every ``<text>``'s bounding box (rotation included) and computed font size, the legend's box
and each plot area's box, and writes them back into the page as JSON. One browser start for any
number of figures.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = """
const all = [];
document.querySelectorAll('div.fig').forEach(div => {
  const svg = div.querySelector('svg'), o = svg.getBoundingClientRect();
  const box = e => { const r = e.getBoundingClientRect();
    return [r.left - o.left, r.top - o.top, r.width, r.height]; };
  all.push({
    texts: [...svg.querySelectorAll('text')].filter(t => t.textContent.trim())
      .map(t => ({text: t.textContent, box: box(t), px: parseFloat(getComputedStyle(t).fontSize)})),
    legends: [...svg.querySelectorAll('g.legend')].map(box),
    plots: [...svg.querySelectorAll('g.subplot rect.bg, .gl-container image, image')].map(box),
    size: [o.width, o.height],
  });
});
const pre = document.createElement('pre'); pre.id = 'layout';
pre.textContent = JSON.stringify(all); document.body.appendChild(pre);
"""


@dataclass
class Layout:
    texts: list[dict]
    legends: list[list[float]]
    plots: list[list[float]]
    size: list[float]


def layouts(svgs: list[bytes], chromium: str) -> list[Layout]:
    body = "".join(f'<div class="fig">{s.decode()}</div>' for s in svgs)
    page = f'<html><body style="margin:0">{body}<script>{SCRIPT}</script></body></html>'
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "page.html"
        path.write_text(page)
        res = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    m = re.search(r'<pre id="layout">(.*?)</pre>', res.stdout, re.S)
    assert m, f"chromium gave no layout: {res.stderr[-500:]}"
    raw = m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    return [Layout(**d) for d in json.loads(raw)]


def _overlap(a, b, tol: float = 1.0) -> bool:
    return (
        a[0] + tol < b[0] + b[2]
        and b[0] + tol < a[0] + a[2]
        and a[1] + tol < b[1] + b[3]
        and b[1] + tol < a[1] + a[3]
    )


def problems(layout: Layout, min_px: float) -> list[str]:
    """Pairs of overlapping text boxes, texts smaller than ``min_px``, a legend over a plot area,
    a text that runs past the figure's edge (cut off in every format)."""
    out = []
    texts = layout.texts
    w, h = layout.size
    for a in texts:
        x, y, bw, bh = a["box"]
        if x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
            out.append(f"cut at the edge: {a['text']!r} at {[round(v) for v in a['box']]} in {w:.0f}×{h:.0f}")
    for i, a in enumerate(texts):
        if a["px"] < min_px - 1e-6:
            out.append(f"font {a['px']:.2f}px < {min_px:.2f}px: {a['text']!r}")
        for b in texts[i + 1 :]:
            if _overlap(a["box"], b["box"]):
                out.append(f"overlap: {a['text']!r} and {b['text']!r}")
    for leg in layout.legends:
        for plot in layout.plots:
            if _overlap(leg, plot):
                out.append(f"legend {leg} covers the plot area {plot}")
    return out
