#!/usr/bin/env bash
# Build a local Open WebUI image offline: a minimal Debian 12 root made with debootstrap from
# the Debian mirror, imported into Podman, with open-webui pip-installed inside (without the
# local-embedding stack: sentence-transformers, accelerate and so torch). For tests and for
# machines with no container registry; users with a registry get ghcr.io/open-webui/open-webui.
#
#   scripts/build-openwebui-image.sh [IMAGE]   default IMAGE: localhost/airpods-test/open-webui:0.12.4
#
# Cached by tag: when IMAGE exists it is reused (set AIRPODS_REBUILD=1 to rebuild).
set -euo pipefail

VERSION="${OPEN_WEBUI_VERSION:-0.12.4}"
IMAGE="${1:-localhost/airpods-test/open-webui:$VERSION}"
BASE="localhost/airpods-test/debian-python:bookworm"
log() { printf 'build-openwebui-image: %s\n' "$*" >&2; }

if [ -z "${AIRPODS_REBUILD:-}" ] && podman image exists "$IMAGE"; then
  log "image $IMAGE already present"; exit 0
fi
bash "$(dirname "$0")/build-debian-base.sh"

# pip inside the image's own Python (no version skew with the host).
ctr="airpods-build-openwebui-$$"
trap 'podman rm -f "$ctr" >/dev/null 2>&1 || true' EXIT
# Trust the host's CA bundle (it may hold a local CA that the debootstrap root lacks).
ca=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro -e PIP_CERT=/etc/ssl/host-ca.crt)
log "installing open-webui==$VERSION into a venv inside the image (several minutes)"
podman run --name "$ctr" --network host "${ca[@]}" "$BASE" /bin/sh -ec "
  python3 -m venv /opt/open-webui
  P=/opt/open-webui/bin/pip
  \$P install -q --upgrade pip
  \$P install -q --no-deps open-webui==$VERSION
  /opt/open-webui/bin/python - > /tmp/reqs.txt <<'PY'
import importlib.metadata as md, re
skip = {'sentence-transformers', 'accelerate', 'torch', 'transformers', 'colbert-ai',
        'rank-bm25', 'sentence_transformers', 'opencv-python-headless', 'unstructured',
        'rapidocr-onnxruntime', 'onnxruntime', 'faster-whisper', 'playwright'}
for req in md.requires('open-webui') or []:
    if 'extra ==' in req:
        continue
    name = re.split(r'[ <>=!~;\[]', req, maxsplit=1)[0].lower()
    if name.replace('_', '-') in skip:
        continue
    print(req.split(';')[0].strip())
PY
  \$P install -q -r /tmp/reqs.txt
  rm -rf /root/.cache
" >&2
podman commit --quiet \
  --change 'ENV PATH=/opt/open-webui/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV DATA_DIR=/app/backend/data' \
  --change 'ENV PORT=8080' \
  --change 'WORKDIR /app/backend' \
  --change 'EXPOSE 8080' \
  --change 'CMD ["/opt/open-webui/bin/open-webui", "serve", "--host", "0.0.0.0", "--port", "8080"]' \
  "$ctr" "$IMAGE" >/dev/null
log "built $IMAGE"
