"""Paper figures at their printed size: every kind × print preset rendered by the real exporter (kaleido +
Chromium) to SVG and PDF; no two texts overlap, no legend covers a plot, no font under 7 pt, the 3D
surface keeps its axis titles, fonts travel inside the PDF; the composed Figure 1 carries its panels.

Text boxes come from Chromium's own layout of the SVG (``svg_layout``), not from estimates.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cache import Store
from landscape.figures.export import chromium_path, figure_bytes, figure_for, render_session
from landscape.figures.figure1 import build_figure1, figure1_bytes, scan_panels
from landscape.figures.paper import MIN_FONT_PT, PAPER_PRESETS, apply_paper_preset, pt_to_px
from landscape.figures.plots import (
    Curve,
    build_curve_figure,
    build_difference_figure,
    build_study_figure,
    build_trajectory_figure,
)

from ..conftest import ROOT
from .svg_layout import layouts, problems

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian chromium not installed (make system-deps)"),
]
PRINT = [p for p, v in PAPER_PRESETS.items() if v["print"]]
KINDS = (("curve", "1d"), ("surface", "2d"), ("contour", "2d"))
FORMATS = ("svg", "pdf", "png")


@pytest.fixture(scope="module")
def rendered(filled_store):
    """{(what, preset): {"svg": bytes, "pdf": bytes}} for every kind and Figure 1, one Chromium."""
    root, keys = filled_store
    out = {}
    with Store(root) as s, render_session():
        for kind, scan in KINDS:
            fig = figure_for(s, keys[scan], kind)
            for preset in PRINT:
                out[kind, preset] = {fmt: figure_bytes(fig, fmt, preset) for fmt in FORMATS}
        for preset in PRINT:
            out["figure1", preset] = {
                fmt: figure1_bytes(s, keys["2d"], None, fmt, preset)[0] for fmt in FORMATS
            }
        for kind, fig in _synthetic_figures().items():  # the kinds only the pages draw
            for preset in PRINT:
                out[kind, preset] = {fmt: figure_bytes(fig, fmt, preset) for fmt in FORMATS}
        if png_dir := os.environ.get("FIGURES_PNG_DIR"):  # to look at them: FIGURES_PNG_DIR=/tmp/x pytest …
            for kind, scan in KINDS:
                for preset in PRINT:
                    blob = figure_bytes(figure_for(s, keys[scan], kind), "png", preset)
                    (Path(png_dir) / f"{kind}-{preset}.png").write_bytes(blob)
            for preset in PRINT:
                blob = figure1_bytes(s, keys["2d"], None, "png", preset)[0]
                (Path(png_dir) / f"figure1-{preset}.png").write_bytes(blob)
    return out


def _synthetic_figures() -> dict:
    a, b = np.linspace(-1, 1, 7), np.linspace(-0.5, 1.5, 9)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    z = np.clip(100 * (aa**2 + (bb - 0.5) ** 2), 0, 100)
    path = [
        {"epoch": e, "alpha": 0.1 * e, "beta": 0.05 * e, "asr_pct": 20 * e, "residual": 0.1} for e in range(4)
    ]
    models = [
        {"name": n, "harmful_score_pct": h, "task_accuracy_pct": t, "benign_refusal_pct": 5}
        for n, h, t in (("aligned", 3, 40), ("fine-tuned", 60, 55), ("antidote", 12, 50))
    ]
    long = "aligned b46521 + fine-tuned 8791ca epoch 3 · random d₁ (seed 0)"  # the demo's real label
    curve = Curve(long, a, np.linspace(100, 0, 7), incoherent=np.zeros(7), benign_refusal=np.full(7, 5.0))
    return {
        "long-legend": build_curve_figure([curve]),  # its legend ran past the right edge, cut
        "difference": build_difference_figure(a, b, z, z / 2, "aligned", "fine-tuned"),
        "trajectory": build_trajectory_figure(a, b, z, {"sft": path}, "interpolation"),
        "study-bars": build_study_figure(models),
    }


def _texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_no_overlapping_text_no_covering_legend_no_small_font(rendered):
    names = list(rendered)
    found = layouts([rendered[n]["svg"] for n in names], chromium_path())
    report = {n: problems(lay, pt_to_px(MIN_FONT_PT)) for n, lay in zip(names, found, strict=True)}
    assert all(lay.texts for lay in found)  # the page did lay the SVGs out
    assert not {n: p for n, p in report.items() if p}, report


def _ink_box(image) -> tuple[float, float, float, float]:
    """Left, top, right, bottom of everything darker than near-white, as fractions of the size."""
    a = np.asarray(image.convert("L")) < 200
    ys, xs = np.nonzero(a)
    h, w = a.shape
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


def _pdf_image(raw: bytes, size: tuple[int, int]):
    import pypdfium2

    page = pypdfium2.PdfDocument(raw)[0]
    width_pt, _ = page.get_size()
    return page.render(scale=size[0] / width_pt).to_pil().resize(size)


def _svg_images(svgs: list[bytes], sizes: list[tuple[int, int]], tmp: Path) -> list:
    """Each SVG as Chromium draws it, at its PNG's size (one headless screenshot each)."""
    from PIL import Image

    from landscape.figures.export import CHROMIUM_ARGS

    out = []
    for n, (svg, (w, h)) in enumerate(zip(svgs, sizes, strict=True)):
        src, shot = tmp / f"f{n}.svg", tmp / f"f{n}.png"
        src.write_bytes(svg)
        root = ET.fromstring(svg)
        css_w, css_h = (round(float(root.get(k))) for k in ("width", "height"))
        subprocess.run(
            [
                chromium_path(),
                "--headless",
                *CHROMIUM_ARGS,
                "--hide-scrollbars",
                f"--window-size={css_w},{css_h}",
                f"--force-device-scale-factor={w / css_w}",
                f"--screenshot={shot}",
                src.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        out.append(Image.open(shot).convert("RGB").resize((w, h)))
    return out


def test_pdf_and_svg_hold_the_same_picture_as_the_png(rendered, tmp_path):
    """Issue 23: every PDF sat ≈0.1 in lower and further right than its PNG and was cut at the
    bottom and right (kaleido prints with a 0.1 in margin on a page the figure's size). Rasterised
    to the PNG's size, the ink of the PDF and of the SVG covers the PNG's within 1% on every side."""
    from PIL import Image

    names = list(rendered)
    pngs = {n: Image.open(io.BytesIO(rendered[n]["png"])) for n in names}
    svgs = _svg_images([rendered[n]["svg"] for n in names], [pngs[n].size for n in names], tmp_path)
    bad = {}
    for n, svg in zip(names, svgs, strict=True):
        want = _ink_box(pngs[n])
        for fmt, image in (("pdf", _pdf_image(rendered[n]["pdf"], pngs[n].size)), ("svg", svg)):
            got = _ink_box(image)
            if max(abs(g - w) for g, w in zip(got, want, strict=True)) > 0.01:
                bad[n, fmt] = [round(v, 3) for v in (*want, *got)]
    assert not bad, bad  # (png left, top, right, bottom, then the other format's)


def test_pdf_pages_are_the_preset_size_with_fonts_embedded(rendered):
    for (what, preset), files in rendered.items():
        raw = files["pdf"]
        assert raw.startswith(b"%PDF-")
        assert b"/FontFile2" in raw or b"/FontFile3" in raw or b"/FontFile " in raw, (what, preset)
        box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", raw)
        assert box and float(box.group(1)) == pytest.approx(PAPER_PRESETS[preset]["width_in"] * 72, abs=1)


def test_print_presets_put_the_title_and_visage_in_the_caption_not_the_figure(rendered, filled_store):
    for (what, preset), files in rendered.items():
        texts = " ".join(_texts(files["svg"]))
        if what != "figure1":
            assert "Safety basin" not in texts and "1D safety landscape" not in texts, (what, preset)
    root, keys = filled_store
    with Store(root) as s:
        fig = figure_for(s, keys["2d"], "contour")
    titled, _, _ = apply_paper_preset(fig, "single-column", show_title=True)
    assert titled.layout.title.text.startswith("Safety basin")


def test_curve_lines_are_labelled_from_the_spec(rendered, filled_store):
    _root, keys = filled_store
    texts = _texts(rendered["curve", "single-column"]["svg"])
    legend = [t for t in texts if "ASR" in t and "·" in t]
    assert legend and "random d₁ (seed 0)" in legend[0], texts
    assert not any(keys["1d"][:8] in t for t in texts)


def test_surface_keeps_its_alpha_beta_asr_titles(filled_store):
    """The 3D titles are drawn into WebGL, not SVG text: paint each a pure colour, find it in the PNG,
    and away from the image's edges (a title cut by the scene's edge touches them)."""
    from PIL import Image

    root, keys = filled_store
    with Store(root) as s:
        fig = figure_for(s, keys["2d"], "surface")
        panels, _ = scan_panels(s, keys["2d"], 50.0, {})
    colours = {"xaxis": (255, 0, 0), "yaxis": (0, 0, 255), "zaxis": (255, 0, 255)}
    with render_session():
        images = {}
        for preset in PRINT:
            for what, sized in (
                ("surface", apply_paper_preset(fig, preset)[0]),
                ("figure1", build_figure1(panels, preset)),
            ):
                for axis, rgb in colours.items():
                    sized.layout.scene[axis].title.font.color = "rgb({},{},{})".format(*rgb)
                w, h = sized.layout.width, sized.layout.height
                images[what, preset] = sized.to_image(format="png", width=w, height=h, scale=2)
    for preset in images:
        img = np.asarray(Image.open(io.BytesIO(images[preset])))
        h, w = img.shape[:2]
        for axis, rgb in colours.items():
            hit = np.all(np.abs(img[..., :3].astype(int) - rgb) < 40, axis=-1)
            assert hit.sum() >= 4, f"{preset}: the {axis} title is not drawn"
            ys, xs = np.nonzero(hit)
            assert xs.min() > 3 and ys.min() > 3 and xs.max() < w - 4 and ys.max() < h - 4, (preset, axis)


def test_figure1_has_its_panels_axis_titles_and_visage_under_each(rendered):
    for preset in PRINT:
        texts = _texts(rendered["figure1", preset]["svg"])
        joined = " ".join(texts)
        for needle in ("(a) basin surface", "(b) contour", "(c) slice at β", "VISAGE", "ASR (%)", "α", "β"):
            assert needle in joined, (preset, needle, texts)
        assert joined.count("VISAGE") == 3
    root = ET.fromstring(rendered["figure1", "double-column"]["svg"])
    assert root.get("width") == str(int(7.0 * 96))
    assert len(root.findall(".//{http://www.w3.org/2000/svg}image")) == 1  # the 3D surface panel


def test_cli_figure1_and_labels(filled_store, tmp_path):
    root, keys = filled_store
    out = tmp_path / "f1.svg"
    cmd = [sys.executable, "-m", "landscape", "--store", str(root), "export", keys["1d"][:10]]
    res = subprocess.run(
        [
            *cmd,
            "--figure1",
            "--format",
            "svg",
            "--preset",
            "single-column",
            "--label",
            "curve=my model",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == str(out) and res.stdout.splitlines()[1].startswith("caption: 1D")
    assert "(a) 1D landscape" in " ".join(_texts(out.read_bytes()))
    bad = subprocess.run(
        [*cmd, "--label", "colour=red"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: unknown label 'colour'")


def test_export_page_edits_labels_and_renders_figure1(app_env):
    from streamlit.testing.v1 import AppTest

    _store, keys = app_env
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("views/export.py").run()
    at.selectbox(key="export_scan").set_value(keys["2d"]).run()
    at.selectbox(key="export_kind:True").set_value("contour").run()  # the 2D figures' picker
    at.text_input(key=f"export_label_alpha:{keys['2d']}").set_value("α (random d₁)").run()
    assert not at.exception, [e.message for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "α (random d₁)"
    assert "VISAGE" in at.text_area(key=f"export_caption:{keys['2d']}:contour").value
    at.selectbox(key="figure1_format").set_value("svg").run()
    at.button(key="figure1_render").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _selection, (blob, name, fmt, caption) = at.session_state["figure1_blob"]
    assert name == f"{keys['2d'][:12]}-figure1-single-column.svg" and fmt == "svg"
    texts = " ".join(_texts(blob))
    assert "(a) basin surface" in texts and "α (random d₁)" in texts and caption.startswith("Safety basin")
    assert [d for d in at.get("download_button") if "figure1" in d.proto.label]


def test_figure1_of_a_study_has_a_panel_per_model_with_visage(tiny_study, tmp_path):
    root, record = tiny_study
    out = tmp_path / "study.svg"
    cmd = [sys.executable, "-m", "landscape", "--store", str(root), "export", "--study", record["name"]]
    res = subprocess.run(
        [*cmd, "--figure1", "--format", "svg", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    texts = " ".join(_texts(out.read_bytes()))
    models = [m["name"] for m in record["models"] if m.get("visage_keys")]
    assert len(models) >= 2
    for k, name in enumerate(models):
        assert f"({chr(97 + k)}) {name}" in texts, (name, texts)
    assert texts.count("VISAGE") == len(models) and "std over 2 directions" in texts
    [lay] = layouts([out.read_bytes()], chromium_path())
    assert not problems(lay, pt_to_px(MIN_FONT_PT))
    if png_dir := os.environ.get("FIGURES_PNG_DIR"):
        subprocess.run(
            [*cmd, "--figure1", "--format", "png", "--out", f"{png_dir}/study-figure1.png"], cwd=ROOT
        )
    missing = subprocess.run(
        [*cmd[:-1], "nope", "--figure1"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no study matches 'nope'"
