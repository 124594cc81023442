"""Streamlit dashboard for Safety Landscape (reads the store; never imports torch)."""
