#!/usr/bin/env bash
# Run every test, on a fresh Debian/Ubuntu machine as root:
#   sudo scripts/test.sh [pytest args]
# Sets up Podman (scripts/setup-podman.sh), builds the local test images (llama-server from the
# llama.cpp source in the llama-cpp-python sdist; Open WebUI from PyPI on a debootstrap base),
# fetches the SmolLM2 test model, installs airpods with its dev tools in .venv, then runs ruff
# and pytest. Builds are cached under ~/.cache/airpods, so a rerun takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n== %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (sudo): it installs Podman and builds container images" >&2
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
bash scripts/get-smollm2.sh >/dev/null

log "airpods in .venv"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'

log "ruff"
.venv/bin/ruff check .

log "pytest"
export CI="${CI:-}"
exec .venv/bin/python -m pytest "$@"
