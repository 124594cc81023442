"""Optional sign-in through Streamlit's OIDC ``st.login`` (configured in secrets.toml [auth])."""

from __future__ import annotations

import streamlit as st

from dashboard.settings import Settings


def login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def current_user() -> str | None:
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
    if login_configured() and settings.launchers and current_user() not in settings.launchers:
        return False, "Your account may browse but not launch scans."
    return True, ""
