"""Exports that parse: PNG header and size, PDF pages, SVG XML, CSV/JSON data, HTML; and the CLI."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from cache import Store
from dashboard.export import ExportError, chromium_path, export_scan, figure_for

from ..conftest import ROOT

needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="Debian chromium not installed (make system-deps)"
)


@pytest.fixture
def store(filled_store):
    root, keys = filled_store
    with Store(root) as s:
        yield s, keys


@needs_chromium
def test_png_svg_pdf_parse(store, tmp_path):
    s, keys = store
    png = export_scan(s, keys["2d"], "surface", "png", tmp_path / "f.png", "single-column")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert (width, height) == (316 * 3, 249 * 3)  # 3.3 in at 96 px/in, 3x for print
    svg = export_scan(s, keys["1d"], "curve", "svg", tmp_path / "f.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and root.get("width") == "672"
    pdf = export_scan(s, keys["2d"], "contour", "pdf", tmp_path / "f.pdf")
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF-") and raw.count(b"/Type /Page") - raw.count(b"/Type /Pages") >= 1
    assert b"/FontFile" in raw or b"/Font" in raw  # fonts travel with the file


def test_data_and_html_exports(store, tmp_path):
    s, keys = store
    csv = export_scan(s, keys["2d"], "surface", "csv", tmp_path / "d.csv")
    df = pd.read_csv(csv)
    assert len(df) == 12 and {"alpha", "beta", "asr_pct", "incoherent_pct"} <= set(df.columns)
    js = json.loads(export_scan(s, keys["1d"], "curve", "json", tmp_path / "d.json").read_text())
    assert js["key"] == keys["1d"] and len(js["points"]) == 5
    html = export_scan(s, keys["2d"], "surface", "html", tmp_path / "f.html").read_text()
    assert "<html" in html and "plotly" in html.lower() and len(html) > 1_000_000  # plotly.js inlined


def test_wrong_figure_kind_is_explained(store):
    s, keys = store
    with pytest.raises(ExportError, match="needs a 2D scan"):
        figure_for(s, keys["1d"], "surface")
    with pytest.raises(ExportError, match="needs a 1D scan"):
        figure_for(s, keys["2d"], "curve")


@needs_chromium
def test_cli_export_uses_the_same_builders(filled_store, tmp_path):
    root, keys = filled_store
    out = tmp_path / "c.pdf"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "landscape",
            "--store",
            str(root),
            "export",
            keys["2d"][:10],
            "--kind",
            "contour",
            "--format",
            "pdf",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    bad = subprocess.run(
        [sys.executable, "-m", "landscape", "--store", str(root), "export", "zzzz"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no scan")
