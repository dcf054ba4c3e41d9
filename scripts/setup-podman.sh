#!/usr/bin/env bash
# Install and configure Podman for airpods on a Debian/Ubuntu machine (run as root).
# Idempotent: safe to run again; it edits /etc/containers/containers.conf in place and
# (re)starts the API socket only when nothing answers on it.
#
#   sudo scripts/setup-podman.sh            # install, configure, start the API socket
#   sudo scripts/setup-podman.sh --no-socket
set -euo pipefail

SOCKET_DIR=/run/podman
SOCKET="$SOCKET_DIR/podman.sock"
CONF=/etc/containers/containers.conf
start_socket=1
[ "${1:-}" = "--no-socket" ] && start_socket=0

log() { printf 'setup-podman: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "run as root (sudo $0): it installs packages and writes $CONF"
  exit 2
fi

# 1. Packages: podman, an OCI runtime, netavark + aardvark-dns (DNS for network aliases),
#    catatonit (Podman builds its pod infra image from it locally, no registry needed),
#    iptables (netavark programs port forwarding with it; without it: "netavark: No such file").
pkgs=(podman runc netavark aardvark-dns catatonit iptables uidmap slirp4netns)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages already installed"
fi

# 2. containers.conf: keep what is there, set only the two keys this environment needs.
#    [containers] default_ulimits = []   (else setrlimit RLIMIT_NOFILE: Operation not permitted)
#    [engine]     runtime = "runc"       (crun 1.8 fails on hybrid cgroups)
mkdir -p "$(dirname "$CONF")"
touch "$CONF"
python3 - "$CONF" <<'PY'
import re, sys
path = sys.argv[1]
wanted = {"containers": ("default_ulimits", "[]"), "engine": ("runtime", '"runc"')}
lines = open(path, encoding="utf-8").read().splitlines()
section = None
seen = set()
out = []
for line in lines:
    m = re.match(r"^\s*\[([^\[\]]+)\]\s*$", line)
    if m:
        # Leaving a wanted section without having found the key: add it at its end.
        if section in wanted and section not in seen:
            out.append(f"{wanted[section][0]} = {wanted[section][1]}")
            seen.add(section)
        section = m.group(1).strip()
    elif section in wanted and re.match(rf"^\s*#?\s*{wanted[section][0]}\s*=", line):
        if section not in seen:
            out.append(f"{wanted[section][0]} = {wanted[section][1]}")
            seen.add(section)
        continue
    out.append(line)
if section in wanted and section not in seen:
    out.append(f"{wanted[section][0]} = {wanted[section][1]}")
    seen.add(section)
for name, (key, value) in wanted.items():
    if name not in seen:
        out += ["", f"[{name}]", f"{key} = {value}"]
open(path, "w", encoding="utf-8").write("\n".join(out).strip("\n") + "\n")
PY
log "configured $CONF"

# 3. Rootless networking (slirp4netns, and the rootless netns behind a named network) opens
#    /dev/net/tun as the user; udev makes it 0666 on a standard install, some images ship 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ]; then
  chmod 0666 /dev/net/tun
  log "made /dev/net/tun usable for rootless Podman (0666, as udev sets it)"
fi
user="${SUDO_USER:-}"
if [ -n "$user" ] && [ "$user" != root ] && ! grep -q "^$user:" /etc/subuid 2>/dev/null; then
  log "warning: $user has no range in /etc/subuid; rootless Podman needs one: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $user"
fi

# 4. The API socket airpods talks to.
if [ "$start_socket" -eq 1 ]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl enable --now podman.socket >/dev/null
    log "podman.socket enabled (systemd)"
  elif python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])" "$SOCKET" 2>/dev/null; then
    log "API socket already answering at $SOCKET"
  else
    mkdir -p "$SOCKET_DIR"
    rm -f "$SOCKET"
    # Started from the socket's folder: conmon writes files (an `oom` marker on a kill for memory)
    # into the service's working directory, which must not be the checkout or the user's folder.
    (cd "$SOCKET_DIR" && exec nohup podman system service --time=0 "unix://$SOCKET" >/var/log/podman-service.log 2>&1) &
    for _ in $(seq 1 100); do
      [ -S "$SOCKET" ] && break
      sleep 0.05
    done
    [ -S "$SOCKET" ] || { log "API socket did not appear; see /var/log/podman-service.log"; exit 1; }
    log "API socket started at $SOCKET (pid $!)"
  fi
fi
podman --version >&2
