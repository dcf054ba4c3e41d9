#!/usr/bin/env bash
# Build a local Caddy image offline for the gateway's tests: Debian 12's `caddy` package (from the
# Debian mirror) on the local Debian base that scripts/build-openwebui-image.sh makes. Users with a
# registry get docker.io/library/caddy:2, which airpods runs the same way (XDG_DATA_HOME=/data).
#
#   scripts/build-caddy-image.sh [IMAGE]   default IMAGE: localhost/airpods-test/caddy:2
#
# Cached by tag: when IMAGE exists it is reused (set AIRPODS_REBUILD=1 to rebuild).
set -euo pipefail

IMAGE="${1:-localhost/airpods-test/caddy:2}"
BASE="localhost/airpods-test/debian-python:bookworm"
log() { printf 'build-caddy-image: %s\n' "$*" >&2; }

# io.airpods.test-image=2: with busybox's wget, as the upstream (busybox/Alpine) image has it
if [ -z "${AIRPODS_REBUILD:-}" ] && [ "$(podman image inspect --format \
    '{{index .Labels "io.airpods.test-image"}}' "$IMAGE" 2>/dev/null)" = 2 ]; then
  log "image $IMAGE already present"; exit 0
fi
bash "$(dirname "$0")/build-debian-base.sh"

work="$(mktemp -d)"
ctr="airpods-build-caddy-$$"
trap 'podman rm -f "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
chmod 0755 "$work"
. "$(dirname "$0")/debian-package.sh"
deb="$(debian_package caddy)"
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/bin/caddy" version >&2
podman create --name "$ctr" "$BASE" /bin/true >/dev/null
podman cp "$work/root/usr/bin/caddy" "$ctr:/usr/bin/caddy"
busybox="$(command -v busybox || echo /bin/busybox)"
[ -x "$busybox" ] || { log "busybox is missing (apt-get install busybox-static)"; exit 1; }
podman cp "$busybox" "$ctr:/usr/local/bin/wget"  # busybox runs the applet its name says
podman commit --quiet \
  --change 'LABEL io.airpods.test-image=2' \
  --change 'ENV XDG_CONFIG_HOME=/config' \
  --change 'ENV XDG_DATA_HOME=/data' \
  --change 'WORKDIR /srv' \
  --change 'EXPOSE 8443' \
  --change 'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]' \
  "$ctr" "$IMAGE" >/dev/null
log "built $IMAGE"
