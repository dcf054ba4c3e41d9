#!/usr/bin/env bash
# Build a local Prometheus image offline for the monitoring tests: Debian 12's `prometheus` package
# (from the Debian mirror) on the local Debian base that scripts/build-openwebui-image.sh makes.
# Like the official docker.io/prom/prometheus, which users with a registry get, it runs as nobody
# with its data in /prometheus, and `prometheus` on PATH.
#
#   scripts/build-prometheus-image.sh [IMAGE]   default IMAGE: localhost/airpods-test/prometheus:2
#
# Cached by tag: when IMAGE exists it is reused (set AIRPODS_REBUILD=1 to rebuild).
set -euo pipefail

IMAGE="${1:-localhost/airpods-test/prometheus:2}"
BASE="localhost/airpods-test/debian-python:bookworm"
log() { printf 'build-prometheus-image: %s\n' "$*" >&2; }

# io.airpods.test-image=3: with busybox's wget, as the upstream (busybox/Alpine) image has it; on the
# base whose / is 0755 (its user, nobody, could not get past / rootless before)
if [ -z "${AIRPODS_REBUILD:-}" ] && [ "$(podman image inspect --format \
    '{{index .Labels "io.airpods.test-image"}}' "$IMAGE" 2>/dev/null)" = 3 ]; then
  log "image $IMAGE already present"; exit 0
fi
bash "$(dirname "$0")/build-debian-base.sh"

work="$(mktemp -d)"
ctr="airpods-build-prometheus-$$"
trap 'podman rm -f "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
chmod 0755 "$work"
. "$(dirname "$0")/debian-package.sh"
deb="$(debian_package prometheus)"
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/bin/prometheus" --version 2>&1 | head -n1 >&2
mkdir -p "$work/data"
podman create --name "$ctr" "$BASE" /bin/true >/dev/null
podman cp "$work/root/usr/bin/prometheus" "$ctr:/usr/bin/prometheus"
podman cp "$work/data" "$ctr:/prometheus"
busybox="$(command -v busybox || echo /bin/busybox)"
[ -x "$busybox" ] || { log "busybox is missing (apt-get install busybox-static)"; exit 1; }
podman cp "$busybox" "$ctr:/usr/local/bin/wget"  # busybox runs the applet its name says
podman commit --quiet \
  --change 'LABEL io.airpods.test-image=3' \
  --change 'USER root' \
  "$ctr" "$IMAGE.tmp" >/dev/null
podman rm -f "$ctr" >/dev/null
# /prometheus belongs to nobody, as in the official image (a named volume copies it up).
podman run --name "$ctr" --user 0 "$IMAGE.tmp" /bin/sh -c 'chown 65534:65534 /prometheus' >/dev/null
podman commit --quiet \
  --change 'USER 65534' \
  --change 'WORKDIR /prometheus' \
  --change 'EXPOSE 9090' \
  --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
  --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
  "$ctr" "$IMAGE" >/dev/null
podman rmi "$IMAGE.tmp" >/dev/null 2>&1 || true
log "built $IMAGE"
