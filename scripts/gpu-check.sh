#!/usr/bin/env bash
# Prove the GPU plan on a machine with an NVIDIA GPU, Podman and a CDI spec for it
# (docs/benchmarks.md, "The GPU plan on a real GPU", says what it measures and where results go):
#   scripts/gpu-check.sh [OUT.json]
# Builds (or reuses) a CUDA llama-server image from the vendored llama.cpp source (about 10 min
# with 16 cores the first time; LLAMA_SERVER_BIN=path packs a binary built before), writes a
# synthetic ~6 GiB llama-shaped model with SmolLM2's tokenizer (TOKENIZER_FROM=a GGUF or its
# header, else scripts/get-smollm2.sh), then runs scripts/gpu_check.py.
# GPU_CHECK_CPU_DRY_RUN=1 runs every step on the CPU image instead, to check the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check.json}"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${AIRPODS_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airpods}"
if [ -n "${GPU_CHECK_CPU_DRY_RUN:-}" ]; then
  image="localhost/airpods-gpucheck/llama.cpp:server"
  bash scripts/build-llamacpp-image.sh "$image" >&2
  binary="${LLAMA_SERVER_BIN:-$cache/llama.cpp-$version/bin/llama-server}"
  dry=(--cpu-dry-run)
else
  command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi here" >&2; exit 2; }
  image="localhost/airpods-gpucheck/llama.cpp:server-cuda"
  LLAMA_CUDA=1 LLAMA_NO_UI=1 bash scripts/build-llamacpp-image.sh "$image" >&2
  binary="${LLAMA_SERVER_BIN:-$cache/llama.cpp-$version-cuda-noui/bin/llama-server}"
  dry=()
fi
tokenizer="${TOKENIZER_FROM:-$(bash scripts/get-smollm2.sh)}"
python3 scripts/gpu_check.py --image "$image" --binary "$binary" --tokenizer-from "$tokenizer" --out "$out" "${dry[@]}"
