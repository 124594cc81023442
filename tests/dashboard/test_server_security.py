"""The team server's security properties that hold without Docker: what pages may read, uploads,
and the Streamlit server settings the image ships (the image itself: docker/smoke.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cache import Store
from dashboard import jobs

from ..conftest import ROOT
from .conftest import copy_store
from .test_pages import open_page

PAGES = (
    None,
    "curve",
    "basin",
    "inspector",
    "compare",
    "study",
    "strength",
    "export",
    "run_scan",
    "run_study",
    "about",
)
_OPENED: list[str] | None = None  # paths opened while a test listens (audit hooks cannot be removed)


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event in ("open", "os.listdir", "os.scandir") and args:
        path = args[0]
        if isinstance(path, str | bytes | Path):
            _OPENED.append(str(path if not isinstance(path, bytes) else path.decode(errors="replace")))


sys.addaudithook(_audit)


@pytest.fixture
def hostile_store(filled_store, tmp_path, monkeypatch):
    """A copy of the filled store whose scan, job and study records name files outside the store
    and the model roots, all of which exist (so any read of them would succeed)."""
    store_dir = copy_store(filled_store[0], tmp_path / "store")
    outside = tmp_path / "outside"
    (outside / "model").mkdir(parents=True)
    for name in ("prompts.txt", "log", "spec.yaml", "direction.safetensors", "model/config.json"):
        (outside / name).write_text("secret\n")
    with Store(store_dir) as store:
        for key in [r["key"] for r in store.list_scans()]:
            rec = store.scan_record(key)
            spec = rec["spec"]
            spec["model"]["source"] = str(outside / "model")
            spec["prompts"]["source"] = str(outside / "prompts.txt")
            for d in spec.get("directions") or []:
                d.update(kind="file", norm="none", path=str(outside / "direction.safetensors"))
            rec["log"] = rec["path"] = str(outside / "log")
            store.put_scan_record(key, rec)
        job = "c" * 64
        store.put_json(
            f"job:{job}",
            {
                "kind": "scan",
                "user": None,
                "label": "hostile",
                "log": str(outside / "log"),
                "spec": str(outside / "spec.yaml"),
                "pid_file": str(outside / "log"),
                "scans": [job],
            },
        )
        store.put_json(
            f"study:{'d' * 64}",
            {
                "name": "hostile",
                "status": "done",
                "spec": {"base": {"source": str(outside / "model")}},
                "stages": {"align": {"status": "done", "path": str(outside / "model")}},
                "artifacts": {"model": str(outside / "model")},
            },
        )
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(store_dir))
    monkeypatch.setenv("SAFETY_LANDSCAPE_MODEL_ROOTS", str(tmp_path / "models"))
    monkeypatch.delenv("SAFETY_LANDSCAPE_READ_ONLY", raising=False)
    return store_dir, outside


def test_no_page_reads_a_path_named_by_a_record(hostile_store):
    global _OPENED
    _, outside = hostile_store
    _OPENED = []
    try:
        for page in PAGES:
            open_page(page)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    assert opened, "the audit hook saw nothing: it is not listening"
    leaks = sorted({p for p in opened if Path(p).resolve().is_relative_to(outside)})
    assert not leaks, leaks


def test_an_uploaded_study_naming_files_outside_the_roots_is_refused(tmp_path, tiny_model, monkeypatch):
    """Not just the base model: adapters, attack data and direction files are paths too."""
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("SAFETY_LANDSCAPE_MODEL_ROOTS", str(tiny_model.parent))
    monkeypatch.delenv("SAFETY_LANDSCAPE_READ_ONLY", raising=False)
    outside = ROOT / "requirements.txt"  # the model root is pytest's whole basetemp: tmp_path is in it
    base = f'base: {{source: "{tiny_model}"'
    for study in (
        f"{base}, adapter: /etc}}\nalign: false\nruns: [{{name: a}}]\n",
        f'{base}}}\nalign: false\nruns: [{{name: a, attack: {{name: benign, data: "{outside}"}}}}]\n',
    ):
        at = open_page("run_study")
        at.radio(key="study_source").set_value("upload").run()
        at.file_uploader(key="study_upload").set_value(("s.yaml", study.encode(), "text/yaml")).run()
        assert any("outside the allowed model roots" in e.value for e in at.error), [
            e.value for e in at.error
        ]
        at.button(key="study_start").click().run()
        assert "study_job" not in at.session_state
    with Store(tmp_path / "store") as store:
        assert jobs.all_jobs(store) == []


def test_a_study_upload_runs_no_code(tmp_path, monkeypatch):
    """yaml.safe_load: a Python tag is an error line, and its code never runs."""
    monkeypatch.setenv("SAFETY_LANDSCAPE_STORE", str(tmp_path / "store"))
    marker = tmp_path / "ran"
    evil = f"!!python/object/apply:os.system ['touch {marker}']\n".encode()
    at = open_page("run_study")
    at.radio(key="study_source").set_value("upload").run()
    at.file_uploader(key="study_upload").set_value(("s.yaml", evil, "text/yaml")).run()
    assert len(at.error) == 1 and not marker.exists()


def test_the_shipped_server_config_keeps_xsrf_on_and_caps_uploads():
    """What `streamlit run` reads from /app/.streamlit/config.toml in the image (and the repo root)."""
    code = (
        "from streamlit import config; config.get_config_options(); "
        "print(config.get_option('server.enableXsrfProtection'), config.get_option('server.maxUploadSize'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    xsrf, max_mb = out.stdout.split()
    assert xsrf == "True" and int(max_mb) <= 1
    for shipped in ("Dockerfile", "docker/compose.yaml", "docker/compose.local.yaml"):  # nothing turns it off
        assert "XSRF" not in (ROOT / shipped).read_text().upper(), shipped


def test_the_proxy_user_header_setting_must_be_a_header_name():
    from dashboard.settings import SettingsError, load_settings

    ok = load_settings({"SAFETY_LANDSCAPE_USER_HEADER": "X-Forwarded-User", "SAFETY_LANDSCAPE_STORE": "/s"})
    assert ok.user_header == "X-Forwarded-User" and load_settings({}).user_header == ""
    with pytest.raises(SettingsError, match="user_header must be an HTTP header name"):
        load_settings({"SAFETY_LANDSCAPE_USER_HEADER": "X-User: alice"})
