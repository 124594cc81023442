"""Serve the dashboard from several processes, sticky per browser, on one port.

    python -m dashboard.replicas            (the image's command; SAFETY_LANDSCAPE_REPLICAS=N)

Streamlit serves every session from one Python process, so one server uses about one core however
large its machine. With ``SAFETY_LANDSCAPE_REPLICAS=N`` (N > 1) this starts N Streamlit processes on
loopback ports and nginx on the public address and port (``STREAMLIT_SERVER_ADDRESS`` /
``STREAMLIT_SERVER_PORT``, as a single server would use), balancing browsers over them. A browser
stays on its replica: the first response sets a ``landscape_replica`` cookie, and nginx picks the
replica by a consistent hash of it, so a session's WebSocket, its uploads and its reloads reach the
process that holds the session. Each response names its replica in ``X-Landscape-Replica`` (a
loopback port), for tests and for anyone asking "which process am I on".

Every replica reads the one store, and jobs are processes verified by pid in the one process
namespace (one container), so a job started through one replica is seen, counted against
``SAFETY_LANDSCAPE_MAX_JOBS`` and cancellable on every other (``dashboard.jobs`` takes a lock in the
store around the count and the launch). With N = 1 (the default) this simply becomes Streamlit.

If any replica or nginx exits, the others are stopped and this exits with its status, so the
container's restart policy brings the whole server back rather than leaving a hole in the pool.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
NGINX = os.environ.get("SAFETY_LANDSCAPE_NGINX", "/usr/sbin/nginx")
COOKIE = "landscape_replica"

CONF = """\
{user}daemon off;
pid {tmp}/nginx.pid;
worker_processes 1;
events {{}}
http {{
  access_log off;
  # every temporary path nginx was built with, here: as the image's user it cannot create the
  # compiled-in /var/lib/nginx/* (and nginx creates them all at start, used or not)
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  client_max_body_size 1m;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  # A browser without the cookie is placed by this request's id, and given that id as its cookie,
  # so its next requests hash to the same replica.
  map $cookie_{cookie} $replica_key {{ '' $request_id; default $cookie_{cookie}; }}
  map $cookie_{cookie} $replica_cookie {{
    '' "{cookie}=$request_id; Path=/; HttpOnly; SameSite=Lax";
    default '';
  }}
  upstream replicas {{
    hash $replica_key consistent;
{servers}
  }}
  server {{
    listen {address}:{port};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 86400;
      add_header Set-Cookie $replica_cookie always;
      add_header X-Landscape-Replica $upstream_addr always;
    }}
  }}
}}
"""


class ReplicaError(RuntimeError):
    pass


def replica_at(url: str, cookie: str | None = None) -> tuple[str, str | None]:
    """Ask the server at ``url`` which replica answers a browser holding ``cookie`` (none: a new
    browser): ``(its loopback address, the landscape_replica cookie it was given, if any)``."""
    req = urllib.request.Request(url.rstrip("/") + "/_stcore/health")
    if cookie:
        req.add_header("Cookie", f"{COOKIE}={cookie}")
    with urllib.request.urlopen(req, timeout=10) as res:
        given = [c for c in res.headers.get_all("Set-Cookie") or [] if c.startswith(f"{COOKIE}=")]
        return res.headers["X-Landscape-Replica"], given[0].split("=", 1)[1].split(";")[0] if given else None


def _whole(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ReplicaError(f"{name}={raw!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise ReplicaError(f"{name}={value} must be between 1 and 64")
    return value


def replica_ports(port: int, replicas: int) -> list[int]:
    """The loopback ports of the replicas: SAFETY_LANDSCAPE_REPLICA_PORT (default: the public port
    + 1) and the ones after it."""
    first = _port("SAFETY_LANDSCAPE_REPLICA_PORT", port + 1)
    if first + replicas - 1 > 65535 or first <= port < first + replicas:
        raise ReplicaError(
            f"replica ports {first}–{first + replicas - 1} overlap the public port {port} or pass 65535"
        )
    return [first + i for i in range(replicas)]


def nginx_conf(tmp: Path, address: str, port: int, ports: list[int]) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in ports)
    # As root (a test, or an image run with --user 0), nginx's workers would otherwise run as nobody
    # and could not read the private temporary directory.
    user = "user root;\n" if os.getuid() == 0 else ""
    return CONF.format(user=user, tmp=tmp, cookie=COOKIE, servers=servers, address=address, port=port)


def _streamlit(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--server.headless=true",
    ]


def _healthy(port: int, deadline: float, procs: list[subprocess.Popen]) -> None:
    base = os.environ.get("STREAMLIT_SERVER_BASE_URL_PATH", "").strip("/")
    url = f"http://127.0.0.1:{port}{'/' + base if base else ''}/_stcore/health"
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise ReplicaError("a replica exited while starting (its output is above)")
        try:
            if urllib.request.urlopen(url, timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.3)
    raise ReplicaError(f"the replica on port {port} did not become healthy")


def serve() -> int:
    replicas = _whole("SAFETY_LANDSCAPE_REPLICAS", 1)
    if replicas == 1:
        os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(APP)])
    port = _port("STREAMLIT_SERVER_PORT", 8501)
    address = os.environ.get("STREAMLIT_SERVER_ADDRESS", "").strip() or "0.0.0.0"
    ports = replica_ports(port, replicas)
    if not os.path.exists(NGINX):
        raise ReplicaError(f"{replicas} replicas need nginx at {NGINX} (apt-get install nginx-light)")
    tmp = Path(tempfile.mkdtemp(prefix="landscape-replicas-"))
    (tmp / "nginx.conf").write_text(nginx_conf(tmp, address, port, ports))
    # One XSRF cookie secret for all: a token one replica issued is valid on the others (a browser
    # moved by a replica restart keeps working). Given by environment, never on a command line.
    env = dict(os.environ)
    env.setdefault("STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32))
    procs = [subprocess.Popen(_streamlit(p), env=env) for p in ports]
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        deadline = time.monotonic() + 120
        for p in ports:
            _healthy(p, deadline, procs)
        procs.append(subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"]))
        print(
            f"dashboard: {replicas} replicas on 127.0.0.1:{ports[0]}–{ports[-1]}, nginx on {address}:{port}",
            flush=True,
        )
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        code = next((p.returncode for p in procs if p.poll() is not None), 0)
        return code if not stopping else 0
    finally:
        stop(signal.SIGTERM, None)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ReplicaError(f"{name}={raw!r} is not a port")
    return int(raw)


def main() -> int:
    try:
        return serve()
    except ReplicaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
