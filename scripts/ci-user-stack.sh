#!/usr/bin/env bash
# A stand-in for a user's own airpods stack, for CI: the suite must leave it running.
#   scripts/ci-user-stack.sh start   # the default config's llamacpp (default project, pod llamacpp)
#   scripts/ci-user-stack.sh check   # still running, same container id and start time; then removed
# It lives in a HOME of its own (/var/tmp/airpods-ci-user), as root with the rootful Podman.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOME=/var/tmp/airpods-ci-user
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_CACHE_HOME AIRPODS_CONFIG
airpods=(.venv/bin/airpods)
stamp="$HOME/running-before"
inspect() { podman inspect --format '{{.Id}} {{.State.StartedAt}} {{.State.Running}}' llamacpp-0; }

case "${1:-}" in
  start)
    mkdir -p "$HOME/.config/airpods"
    cat > "$HOME/.config/airpods/config.toml" <<'TOML'
# A user's own stack, as scripts/quickstart.sh leaves it.
[services.llamacpp]
images = { cpu = "localhost/airpods-test/llama.cpp:server" }
[services.open-webui]
enabled = false
TOML
    model="$(bash scripts/get-smollm2.sh)"
    "${airpods[@]}" models list --json | grep -q "$(basename "$model")" || "${airpods[@]}" models import "$model"
    "${airpods[@]}" start llamacpp
    inspect > "$stamp"
    echo "user stack: llamacpp running: $(cat "$stamp")"
    ;;
  check)
    now="$(inspect 2>/dev/null || echo 'absent')"
    if [ "$now" != "$(cat "$stamp")" ]; then
      echo "FAILED: the user's llamacpp was touched by the suite: before '$(cat "$stamp")', after '$now'" >&2
      exit 1
    fi
    echo "user stack: llamacpp untouched by the suite ($now)"
    "${airpods[@]}" clean llamacpp
    ;;
  *) echo "usage: $0 start|check" >&2; exit 2 ;;
esac
