#!/usr/bin/env bash
# The local Debian 12 base the Open WebUI, Caddy and Prometheus test images are made on: a
# minimal root from debootstrap (minbase + python3) off the machine's Debian mirror, imported into
# Podman. Its / is 0755, as a real root filesystem's: an image user other than root (Prometheus
# runs as nobody) must be able to get past it, which under rootless vfs storage it could not
# while / was the 0700 temporary folder debootstrap filled.
#
#   scripts/build-debian-base.sh        (root; kept while its io.airpods.test-base label is 2)
set -euo pipefail

BASE="localhost/airpods-test/debian-python:bookworm"
log() { printf 'build-debian-base: %s\n' "$*" >&2; }

if [ "$(podman image inspect --format '{{index .Labels "io.airpods.test-base"}}' "$BASE" 2>/dev/null)" = 2 ]; then
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "run as root (debootstrap needs it)"; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
root="$(mktemp -d)"
trap 'rm -rf "$root" "$root.tar" "$root.log"' EXIT
log "debootstrap bookworm (minbase + python3) into $root"
# The machine's own Debian mirror (one-line or deb822 format), else debootstrap's default.
mirror="$( { sed -n 's/^deb \(http[^ ]*\) bookworm main.*/\1/p' /etc/apt/sources.list;
            sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources; } \
          2>/dev/null | head -n1 || true)"
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
    "$root" ${mirror:+"$mirror"} >"$root.log" 2>&1; then
  tail -n 20 "$root.log" >&2; log "debootstrap failed"; exit 1
fi
rm -rf "$root"/var/cache/apt/archives/*.deb
chmod 0755 "$root"  # mktemp made it 0700
tar -C "$root" -cf "$root.tar" .
podman import --quiet --change 'LABEL io.airpods.test-base=2' "$root.tar" "$BASE" >/dev/null
log "built $BASE"
