#!/usr/bin/env bash
# Build a local HAProxy image offline for the hub's tests: Debian 12's `haproxy` package (2.6, from
# the Debian mirror) and the two libraries the Debian base lacks, on the local Debian base that
# scripts/build-openwebui-image.sh makes. It runs as uid 99 with `haproxy -W -db`, as the upstream
# docker.io/library/haproxy:2.6 image does, which users with a registry get.
#
#   scripts/build-haproxy-image.sh [IMAGE]   default IMAGE: localhost/airpods-test/haproxy:2.6
#
# Cached by tag: when IMAGE exists it is reused (set AIRPODS_REBUILD=1 to rebuild).
set -euo pipefail

IMAGE="${1:-localhost/airpods-test/haproxy:2.6}"
BASE="localhost/airpods-test/debian-python:bookworm"
log() { printf 'build-haproxy-image: %s\n' "$*" >&2; }

if [ -z "${AIRPODS_REBUILD:-}" ] && [ "$(podman image inspect --format \
    '{{index .Labels "io.airpods.test-image"}}' "$IMAGE" 2>/dev/null)" = 1 ]; then
  log "image $IMAGE already present"; exit 0
fi
bash "$(dirname "$0")/build-debian-base.sh"

work="$(mktemp -d)"
ctr="airpods-build-haproxy-$$"
trap 'podman rm -f "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
chmod 0755 "$work"
. "$(dirname "$0")/debian-package.sh"
for pkg in haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1; do
  dpkg-deb -x "$(debian_package "$pkg")" "$work/root"
done
podman create --name "$ctr" "$BASE" /bin/true >/dev/null
podman cp "$work/root/usr/sbin/haproxy" "$ctr:/usr/sbin/haproxy"
for lib in "$work"/root/usr/lib/x86_64-linux-gnu/*.so*; do
  podman cp "$lib" "$ctr:/usr/lib/x86_64-linux-gnu/"
done
podman commit --quiet \
  --change 'LABEL io.airpods.test-image=1' \
  --change 'USER 99:99' \
  --change 'STOPSIGNAL SIGUSR1' \
  --change 'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
  "$ctr" "$IMAGE" >/dev/null
podman run --rm --entrypoint /usr/sbin/haproxy "$IMAGE" -v | head -n1 >&2
log "built $IMAGE"
