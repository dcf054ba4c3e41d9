#!/usr/bin/env bash
# Podman's Quadlet generator for the tests: Debian 12's Podman (4.3) has none, Debian 13's package
# ships /usr/libexec/podman/quadlet, which links only libc and runs here. Fetched with apt-get
# download against a trixie source list kept in a private folder (the system's apt state is not
# touched), unpacked and cached:
#   scripts/get-quadlet.sh     # prints the path of the quadlet binary
set -euo pipefail
cache="${AIRPODS_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airpods}/quadlet"
bin="$cache/quadlet"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$cache"
echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives" -o Debug::NoLocking=1
      -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update >&2
(cd "$work" && apt-get "${opts[@]}" -qq download podman >&2)
dpkg-deb -x "$work"/podman_*.deb "$work/x"
cp "$work/x/usr/libexec/podman/quadlet" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "get-quadlet: $("$bin" -version 2>/dev/null || echo quadlet) from $(basename "$work"/podman_*.deb)" >&2
echo "$bin"
