#!/usr/bin/env bash
# Run every test, on a fresh Debian/Ubuntu machine (as root, or as a user with sudo):
#   scripts/test.sh [pytest args]
#   scripts/test.sh --prepare      # only the set-up (Podman, images, model, .venv)
# The suite covers rootful Podman and rootless Podman (it creates the unprivileged user
# airpods-rl for that), so it runs as root and re-runs itself through sudo when it is not.
# Sets up Podman (scripts/setup-podman.sh), builds the local test images (llama-server from the
# llama.cpp source in the llama-cpp-python sdist; Open WebUI from PyPI on a debootstrap base),
# fetches the SmolLM2 test model, installs airpods with its dev tools in .venv, then runs ruff
# and pytest. Builds are cached under ~/.cache/airpods, so a rerun takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n== %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  # Every test means rootful Podman too, and creating the rootless test user: that needs root.
  if command -v sudo >/dev/null 2>&1; then
    echo "scripts/test.sh: the suite runs rootful and rootless Podman and creates a test user; re-running with sudo" >&2
    exec sudo --preserve-env=CI "$0" "$@"
  fi
  echo "scripts/test.sh: needs root (rootful Podman tests, the rootless test user); run it as root" >&2
  exit 2
fi

log "Podman"
bash scripts/setup-podman.sh

log "test dependencies"
# command -> Debian package; installed only when the command is missing (a machine's own Node
# or compiler is kept as it is).
need=()
for pair in busybox:busybox-static chromium:chromium chromedriver:chromium-driver cmake:cmake \
            g++:g++ debootstrap:debootstrap npm:npm; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

log "local images"
bash scripts/build-llamacpp-image.sh
bash scripts/build-openwebui-image.sh
bash scripts/build-caddy-image.sh
bash scripts/build-haproxy-image.sh   # the hub's: Debian's haproxy 2.6
log "the Prometheus test image (Debian's prometheus package)"
bash scripts/build-prometheus-image.sh
bash scripts/get-smollm2.sh >/dev/null
bash scripts/get-quadlet.sh >/dev/null   # Debian 13's Quadlet generator, to check exported units

log "airpods in .venv"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'

if [ "${1:-}" = "--prepare" ]; then  # set everything up, run nothing (.ci/run starts a user stack first)
  exit 0
fi

log "ruff"
.venv/bin/ruff check .

log "pytest"
export CI="${CI:-}"
exec .venv/bin/python -m pytest "$@"
