"""Dashboard settings: environment variables, optionally a TOML file, validated once.

| variable | meaning | default |
| --- | --- | --- |
| SAFETY_LANDSCAPE_STORE | result store directory | ~/.cache/safety-landscape |
| SAFETY_LANDSCAPE_MODEL_ROOTS | directories models may be loaded from (os.pathsep-separated); the built-in names are always allowed | (none: built-ins only) |
| SAFETY_LANDSCAPE_READ_ONLY | 1: browse only, no job launching | 0 |
| SAFETY_LANDSCAPE_MAX_JOBS | concurrent scan jobs | 1 |
| SAFETY_LANDSCAPE_JOB_HISTORY | finished jobs whose record and log are kept (older ones are pruned when a job starts; running jobs are always kept) | 200 |
| SAFETY_LANDSCAPE_BASE_URL_PATH | URL prefix behind a reverse proxy; defaults to STREAMLIT_SERVER_BASE_URL_PATH, which Streamlit itself serves under | "" |
| SAFETY_LANDSCAPE_LAUNCHERS | comma-separated e-mails (or proxy user names) allowed to launch jobs when users are identified | (any signed-in user) |
| SAFETY_LANDSCAPE_USER_HEADER | behind an authenticating reverse proxy: the request header naming the user (e.g. X-Forwarded-User); trust it only when the proxy is the sole way in and sets it itself | "" (no proxy identity) |
| SAFETY_LANDSCAPE_RAY_ADDRESS | scan jobs run their points on this Ray cluster (`auto` or HOST:PORT) | (none: in the job's process) |
| SAFETY_LANDSCAPE_RAY_WORKERS | Ray actors per scan job (with a Ray address; without one, a local Ray) | (none) |
| SAFETY_LANDSCAPE_RAY_GPUS_PER_WORKER | GPUs each actor reserves (0.25: four replicas per GPU) | 0 |
| SAFETY_LANDSCAPE_SETTINGS | a TOML file with the same keys in lower case (store, model_roots, ...) | |

Environment variables win over the file. No Streamlit here: pages and tests share it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

BUILTIN_SOURCES = ("aligned", "smollm2-135m-instruct")
JOB_HISTORY = 200


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    store: Path
    model_roots: tuple[Path, ...] = ()
    read_only: bool = False
    max_jobs: int = 1
    job_history: int = JOB_HISTORY
    base_url_path: str = ""
    launchers: tuple[str, ...] = field(default_factory=tuple)
    user_header: str = ""
    ray_address: str | None = None
    ray_workers: int | None = None
    ray_gpus_per_worker: float = 0.0

    def ray_args(self) -> list[str]:
        """The ``landscape scan`` flags that send a scan job's points to the configured Ray cluster
        (none when no workers are configured: the job computes in its own process)."""
        if not self.ray_workers:
            return []
        out = ["--workers", str(self.ray_workers)]
        if self.ray_address:
            out += ["--ray-address", self.ray_address]
        if self.ray_gpus_per_worker:
            out += ["--gpus-per-worker", f"{self.ray_gpus_per_worker:g}"]
        return out

    def model_allowed(self, source: str) -> str | None:
        """None when the server may load ``source``; otherwise why not (one line)."""
        if source in BUILTIN_SOURCES:
            return None
        try:
            path = Path(source).expanduser().resolve()
        except (OSError, RuntimeError):
            return f"model path {source!r} cannot be resolved"
        for root in self.model_roots:
            if path == root or root in path.parents:
                return None
        roots = ", ".join(str(r) for r in self.model_roots) or "none configured"
        return f"model path {source} is outside the allowed model roots ({roots})"

    def models_available(self) -> list[str]:
        """Built-in names plus model directories and .gguf files directly under the roots."""
        found = list(BUILTIN_SOURCES)
        for root in self.model_roots:
            if not root.is_dir():
                continue
            for child in sorted(root.iterdir()):
                if (child / "config.json").is_file() or child.suffix == ".gguf":
                    found.append(str(child))
        return found


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"not a boolean: {value!r}")


def load_settings(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    data: dict = {}
    if env.get("SAFETY_LANDSCAPE_SETTINGS"):
        path = Path(env["SAFETY_LANDSCAPE_SETTINGS"]).expanduser()
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from None
    if "STREAMLIT_SERVER_BASE_URL_PATH" in env:  # what Streamlit itself serves under
        data["base_url_path"] = env["STREAMLIT_SERVER_BASE_URL_PATH"]
    keys = ("store", "model_roots", "read_only", "max_jobs", "job_history", "base_url_path", "launchers")
    for key in keys + ("user_header", "ray_address", "ray_workers", "ray_gpus_per_worker"):
        var = f"SAFETY_LANDSCAPE_{key.upper()}"
        if var in env:
            data[key] = env[var]
    roots = data.get("model_roots", ())
    if isinstance(roots, str):
        roots = [r for r in roots.split(os.pathsep) if r]
    launchers = data.get("launchers", ())
    if isinstance(launchers, str):
        launchers = [x.strip() for x in launchers.split(",") if x.strip()]
    max_jobs = _whole(data, "max_jobs", 1, 1, "at least 1")
    job_history = _whole(data, "job_history", JOB_HISTORY, 0, "0 or more")
    base = str(data.get("base_url_path", "")).strip("/")
    header = str(data.get("user_header", "")).strip()
    if header and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        raise SettingsError(f"user_header must be an HTTP header name, not {header[:70]!r}")
    workers, gpus = _ray(data)
    return Settings(
        store=Path(data.get("store", "~/.cache/safety-landscape")).expanduser(),
        model_roots=tuple(Path(r).expanduser().resolve() for r in roots),
        read_only=_bool(data.get("read_only", False)),
        max_jobs=max_jobs,
        job_history=job_history,
        base_url_path=base,
        launchers=tuple(launchers),
        user_header=header,
        ray_address=str(data["ray_address"]).strip() or None if data.get("ray_address") else None,
        ray_workers=workers,
        ray_gpus_per_worker=gpus,
    )


def _whole(data: dict, key: str, default: int, minimum: int, bound: str) -> int:
    """Setting ``key`` as a whole number ≥ ``minimum`` (``bound`` says so in the error)."""
    try:
        value = int(data.get(key, default))
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, not {data.get(key)!r}") from None
    if value < minimum:
        raise SettingsError(f"{key} must be {bound}")
    return value


def _ray(data: dict) -> tuple[int | None, float]:
    """``ray_workers`` (a whole number ≥ 1, or unset) and ``ray_gpus_per_worker`` (0 to 8)."""
    raw = data.get("ray_workers")
    try:
        workers = None if raw in (None, "") else int(raw)
        gpus = float(data.get("ray_gpus_per_worker") or 0)
    except ValueError:
        raise SettingsError("ray_workers must be a whole number and ray_gpus_per_worker a number") from None
    if workers is not None and workers < 1:
        raise SettingsError("ray_workers must be at least 1")
    if not 0 <= gpus <= 8:
        raise SettingsError("ray_gpus_per_worker must be between 0 and 8")
    if data.get("ray_address") and workers is None:
        raise SettingsError("ray_address needs ray_workers (how many actors a scan job uses)")
    return workers, gpus
