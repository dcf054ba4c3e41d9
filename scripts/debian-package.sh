# Sourced by the build-*-image.sh scripts: `debian_package NAME` prints the path of Debian's .deb of
# NAME, downloaded once from the Debian mirror into ~/.cache/airpods/NAME (AIRPODS_CACHE).
debian_package() {
  local name="$1" cache deb
  cache="${AIRPODS_CACHE:-$HOME/.cache/airpods}/$name"
  mkdir -p "$cache"
  deb="$(ls "$cache"/"${name}"_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    printf 'downloading Debian'"'"'s %s package\n' "$name" >&2
    (cd "$cache" && apt-get download "$name" >/dev/null 2>&1) || {
      apt-get update -qq && (cd "$cache" && apt-get download "$name" >/dev/null); }
    deb="$(ls "$cache"/"${name}"_*.deb | head -n1)"
  fi
  printf '%s\n' "$deb"
}
