"""Who is using the server: Streamlit's OIDC ``st.login`` (secrets.toml [auth]) or, behind an
authenticating reverse proxy, the user name the proxy puts in a request header
(``SAFETY_LANDSCAPE_USER_HEADER``, e.g. nginx's ``proxy_set_header X-Forwarded-User $remote_user``).

The header is only as trustworthy as the path to the server: bind Streamlit to loopback or a private
network the proxy alone reaches, and have the proxy set the header itself (overwriting what a client
sent). The launch permission list ``SAFETY_LANDSCAPE_LAUNCHERS`` applies to either identity.
"""

from __future__ import annotations

import streamlit as st

from dashboard.settings import Settings, SettingsError, load_settings


def login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def user_header() -> str:
    """The trusted proxy header naming the user, or "" when none is configured."""
    try:
        return load_settings().user_header
    except SettingsError:  # app.py has already shown the problem and stopped
        return ""


def users_identified() -> bool:
    """Whether each session has a known user (OIDC login or an authenticating proxy)."""
    return login_configured() or bool(user_header())


def current_user() -> str | None:
    header = user_header()
    if header:
        return st.context.headers.get(header) or None
    if not login_configured():
        return None
    return getattr(st.user, "email", None) if st.user.is_logged_in else None


def require_login() -> None:
    if login_configured() and not st.user.is_logged_in:
        st.title("Safety Landscape")
        st.info("Please sign in to use this server.")
        st.button("Sign in", on_click=st.login)
        st.stop()


def may_launch(settings: Settings) -> tuple[bool, str]:
    """Whether this session may start jobs, and why not."""
    if settings.read_only:
        return False, "This server is read-only: scans are launched from the command line."
    if users_identified() and settings.launchers and current_user() not in settings.launchers:
        return False, "Your account may browse but not launch scans."
    return True, ""
