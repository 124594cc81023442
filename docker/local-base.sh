#!/usr/bin/env bash
# Local plumbing for building and testing the team-server image on a machine that has no Docker
# engine running and cannot reach Docker Hub (this project's development machines and CI).
# Nothing here belongs in the Dockerfile: a team builds that on their own server from the official
# Python image. This script, run as root (or with sudo), makes sure that
#   1. Debian's docker.io, docker-compose, debootstrap are installed;
#   2. dockerd runs (no iptables, no default bridge: all a sandboxed VM allows, so builds and
#      containers use the host's network, `--network host`), storing layers with overlay2 where the
#      kernel mounts overlay (vfs copies every layer whole: a build of this image took minutes per
#      step) and vfs otherwise; DOCKER_STORAGE_DRIVER chooses;
#   3. a stand-in for python:3.11-slim-bookworm exists, tagged $LOCAL_BASE: Debian bookworm
#      (debootstrap minbase) + python3.11 + pip, trusting this machine's CA bundle ($PIP_CERT)
#      for the package registries.
# The CPU torch wheel in $PIP_FIND_LINKS is handed to the build by docker/smoke.py, which serves
# that folder on 127.0.0.1 for the build's pip (--build-arg PIP_EXTRA_ARGS=--find-links ...).
# Idempotent: each step is skipped when already done. Prints the base image's tag last.
set -euo pipefail

LOCAL_BASE=${LOCAL_BASE:-local/python:3.11-slim-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd-local.log}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
DOCKER="$SUDO docker"

log() { echo "local-base: $*" >&2; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
  log "installing docker.io docker-compose debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi

overlay_works() {
  local d ok=1
  d=$($SUDO mktemp -d /var/lib/overlay-probe.XXXXXX)
  $SUDO mkdir "$d/l" "$d/u" "$d/w" "$d/m"
  if $SUDO mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    ok=0
    $SUDO umount "$d/m"
  fi
  $SUDO rm -rf "$d"
  return $ok
}

if ! $DOCKER info >/dev/null 2>&1; then
  driver=${DOCKER_STORAGE_DRIVER:-$(overlay_works && echo overlay2 || echo vfs)}
  log "starting dockerd with $driver storage (log: $DOCKERD_LOG)"
  # setsid: the daemon outlives this script and is not in its process group.
  $SUDO setsid dockerd --storage-driver="$driver" --iptables=false --bridge=none >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
  $DOCKER info >/dev/null 2>&1 || { log "dockerd did not start; see $DOCKERD_LOG"; exit 1; }
fi

if ! $DOCKER image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
  root=$(mktemp -d /var/tmp/local-base.XXXXXX)
  trap '$SUDO rm -rf "$root"' EXIT
  log "debootstrap bookworm (minbase) into $root"
  $SUDO debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    bookworm "$root" "$MIRROR" >/dev/null
  # This machine's registries are reached through its own CA: trust it as the host does.
  $SUDO cp "$CA" "$root/etc/ssl/certs/ca-certificates.crt"
  # The official image's pip installs system-wide; Debian's refuses (PEP 668) unless told.
  $SUDO rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  $SUDO rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  log "importing as $LOCAL_BASE"
  $SUDO tar -C "$root" -c . | $DOCKER import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
fi
echo "$LOCAL_BASE"
