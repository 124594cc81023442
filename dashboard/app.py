"""Safety Landscape dashboard: ``streamlit run dashboard/app.py``.

Pages live in ``dashboard/views`` (a folder named ``pages/`` would also be auto-registered by
Streamlit); each wires widgets → ``dashboard.data`` → ``landscape.figures.plots``.
When OIDC login is configured in ``.streamlit/secrets.toml`` ([auth]), every page needs a signed-in
user; otherwise the server is open (put it behind an authenticating reverse proxy for a team).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` from a checkout
    sys.path.insert(0, str(ROOT))

from dashboard.auth import require_login  # noqa: E402
from dashboard.settings import SettingsError, load_settings  # noqa: E402

# an emoji, not ":material/…:": a Material icon as page_icon makes every visitor's browser fetch it
# from an internet font host (a failed request on an air-gapped server; a tell-tale on a connected one)
st.set_page_config(page_title="Safety Landscape", page_icon="⛰️", layout="wide")

try:
    settings = load_settings()
except SettingsError as exc:
    st.error(f"Settings problem: {exc}")
    st.stop()

require_login()

PAGES = Path(__file__).parent / "views"
pages = [
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/table_chart:", default=True),
    st.Page(PAGES / "curve.py", title="1D landscape", icon=":material/show_chart:", url_path="curve"),
    st.Page(PAGES / "basin.py", title="2D basin", icon=":material/landscape:", url_path="basin"),
    st.Page(PAGES / "inspector.py", title="Point inspector", icon=":material/search:", url_path="inspector"),
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(PAGES / "study.py", title="Study", icon=":material/science:", url_path="study"),
    st.Page(
        PAGES / "strength.py", title="Attack strength", icon=":material/trending_up:", url_path="strength"
    ),
    st.Page(PAGES / "export.py", title="Export", icon=":material/download:", url_path="export"),
]
if not settings.read_only:  # the launchers are gone, not just refused
    pages[7:7] = [
        st.Page(PAGES / "run_scan.py", title="Run a scan", icon=":material/play_arrow:", url_path="run"),
        st.Page(PAGES / "run_study.py", title="Run a study", icon=":material/labs:", url_path="run-study"),
    ]
pages.append(st.Page(PAGES / "about.py", title="About", icon=":material/info:", url_path="about"))
st.navigation(pages).run()
