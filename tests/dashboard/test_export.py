"""Exports that parse: PNG header and size, PDF pages, SVG XML, CSV/JSON data, HTML; and the CLI."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from cache import Store
from landscape.figures.export import ExportError, chromium_path, export_scan, figure_for

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
    # no linspace noise in the coordinates, counts written as integers (issue 25)
    lines = csv.read_text().splitlines()
    assert all(len(v) < 16 for row in lines[1:] for v in row.split(",")[2:4]), lines[:3]
    assert df["n_prompts"].dtype.kind == "i" and df["tokens"].dtype.kind == "i"
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


@pytest.mark.parametrize(
    "flags, name, head, error",
    [
        (["--out", "x.csv"], "x.csv", b"i,j,alpha", None),  # was a PDF named x.csv
        (["--out", "y.svg"], "y.svg", b"<", None),
        (["--out", "noext"], "noext.pdf", b"%PDF-", None),
        (["--format", "svg", "--out", "z.png"], None, None, "--format svg contradicts --out"),
        (["--out", "w.txt"], None, None, ".txt is not an export format"),
        (["--out", "missing/v.pdf"], None, None, "does not exist"),
        (["--out", "."], None, None, "is a directory"),
    ],
)
def test_export_writes_the_format_its_file_name_says(filled_store, tmp_path, flags, name, head, error):
    """Issue 25: `--out x.csv` wrote a PDF named x.csv, `--format svg --out z.png` an SVG."""
    root, keys = filled_store
    res = subprocess.run(
        [sys.executable, "-m", "landscape", "--store", str(root), "export", keys["1d"][:10], *flags],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    if error:
        assert res.returncode == 2 and error in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
    else:
        assert res.returncode == 0, res.stderr
        assert (tmp_path / name).read_bytes().lstrip()[: len(head)] == head
