"""About this server: its own settings, version and commit (nothing secret: no OIDC values)."""

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.auth import login_configured, users_identified
from landscape import __version__
from landscape.core.provenance import git_commit

st.title("About this server")
settings = data.settings()
if settings.read_only:
    launch = "nobody (read-only: scans are launched from the command line)"
elif users_identified():
    launch = ", ".join(settings.launchers) or "any signed-in user"
else:
    launch = "anyone who can reach the server (no login configured)"
rows = [
    ("store", str(settings.store)),
    ("model roots", ", ".join(str(r) for r in settings.model_roots) or "none: built-in models only"),
    ("read-only", "yes" if settings.read_only else "no"),
    ("who may launch", launch),
    ("concurrent jobs", str(settings.max_jobs)),
    ("finished jobs kept", str(settings.job_history)),
    ("base URL path", "/" + settings.base_url_path),
    (
        "scan jobs run on",
        f"Ray, {settings.ray_workers} workers at {settings.ray_address or 'a local Ray'}"
        + (f", {settings.ray_gpus_per_worker:g} GPU each" if settings.ray_gpus_per_worker else "")
        if settings.ray_workers
        else "the job's own process (no Ray configured)",
    ),
    (
        "login",
        "OIDC (st.login)"
        if login_configured()
        else f"reverse proxy (header {settings.user_header})"
        if settings.user_header
        else "off",
    ),
    ("version", __version__),
    ("commit", git_commit()),
]
# a static table shows every row (a dataframe stopped after ten, hiding the commit)
st.table(pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting"))
st.caption(
    "Settings come from SAFETY_LANDSCAPE_* environment variables or the SAFETY_LANDSCAPE_SETTINGS file."
)
st.markdown(
    "**Documentation**: the `docs/` folder of the repository, built into a site by `make docs` "
    "(getting started, tutorials, methods and fidelity, results, and the CLI and API references); "
    "`landscape --help` for the command line."
)
