#!/usr/bin/env bash
# Build llama-server from source (the llama.cpp vendored in the PyPI sdist of
# llama-cpp-python) and pack it into a small local image. Used by the test suite and by
# scripts/quickstart.sh where no container registry is reachable.
#
#   scripts/build-llamacpp-image.sh [IMAGE]      default IMAGE: localhost/airpods-test/llama.cpp:server
#   LLAMA_CUDA=1 scripts/build-llamacpp-image.sh IMAGE   # with CUDA (nvcc; CUDA_ARCH, default native)
#   LLAMA_NO_UI=1 ...                                    # without the web UI (no node/npm needed)
#   LLAMA_SERVER_BIN=/path/llama-server ...              # pack an existing binary instead of building
#
# The compiled binary (with the native web UI embedded) is cached under
# ${AIRPODS_BUILD_CACHE:-~/.cache/airpods}/llama.cpp-<version>/ so a rerun takes seconds.
# Needs: python3 + pip, cmake, g++, node + npm (for the web UI), podman.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
IMAGE="${1:-localhost/airpods-test/llama.cpp:server}"
CACHE_ROOT="${AIRPODS_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airpods}"
CACHE="$CACHE_ROOT/llama.cpp-$VERSION${LLAMA_CUDA:+-cuda}${LLAMA_NO_UI:+-noui}"
BIN="${LLAMA_SERVER_BIN:-$CACHE/bin/llama-server}"
JOBS="${JOBS:-$(nproc)}"

log() { printf 'build-llamacpp-image: %s\n' "$*" >&2; }

if [ -n "${AIRPODS_SKIP_IMAGE_IF_PRESENT:-}" ] && [ "$(podman image inspect --format \
    '{{index .Labels "io.airpods.test-image"}}' "$IMAGE" 2>/dev/null)" = 2 ]; then
  log "image $IMAGE already present"
  exit 0
fi

if [ ! -x "$BIN" ]; then
  need=()
  tools=(cmake g++); [ -n "${LLAMA_NO_UI:-}" ] || tools+=(npm)
  for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || need+=("$tool"); done
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      log "installing build tools: ${need[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ nodejs npm >/dev/null
    else
      log "missing build tools: ${need[*]} (install them and run again)"; exit 1
    fi
  fi
  work="$CACHE/src"
  rm -rf "$work"; mkdir -p "$work"
  log "downloading the llama-cpp-python $VERSION sdist from PyPI"
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
  tar xzf "$work"/llama_cpp_python-"$VERSION".tar.gz -C "$work"
  src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"

  # The native web UI ships as SvelteKit source; build it so cmake embeds tools/ui/dist
  # (otherwise cmake tries the hub, fails offline and GET / answers 404).
  if [ -z "${LLAMA_NO_UI:-}" ]; then
    log "building the web UI (npm ci + npm run build; a few minutes)"
    ( cd "$src/tools/ui" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run build >/dev/null )
    [ -f "$src/tools/ui/dist/index.html" ] || { log "web UI build produced no dist/index.html"; exit 1; }
  fi
  extra=()
  if [ -n "${LLAMA_CUDA:-}" ]; then
    extra=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-native}")
    command -v ninja >/dev/null && extra+=(-G Ninja)
  fi

  log "compiling llama-server with $JOBS jobs (10-15 min on 2 cores)"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF "${extra[@]}" >"$work/cmake-configure.log"
  cmake --build "$work/build" --target llama-server -j "$JOBS" >"$work/cmake-build.log"
  mkdir -p "$CACHE/bin"
  cp "$work/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  rm -rf "$work"
  log "cached $BIN"
fi

# Rootfs: the binary plus exactly the shared libraries it links against.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/app" "$root/tmp" "$root/models"
chmod 1777 "$root/tmp"
cp "$BIN" "$root/app/llama-server"
# What the upstream image (Ubuntu) has and airpods' health check uses: sh, curl, grep, cat.
mkdir -p "$root/bin" "$root/usr/bin"
for tool in sh curl grep cat; do
  path="$(command -v "$tool")" || { log "missing $tool on this host (apt-get install curl)"; exit 1; }
  cp -L "$path" "$root/usr/bin/$tool"
  ln -sf "../usr/bin/$tool" "$root/bin/$tool"
done
for exe in "$BIN" "$root/usr/bin/sh" "$root/usr/bin/curl" "$root/usr/bin/grep" "$root/usr/bin/cat"; do ldd "$exe"; done | awk '/=>/ {print $3} /^\s*\/.*ld-linux/ {print $1}' | sort -u | while read -r lib; do
  [ -f "$lib" ] || continue
  case "$(basename "$lib")" in libcuda.so*|libnvidia-*) continue ;; esac  # the driver's: the CDI spec mounts them
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The loader path as the binary asks for it (/lib64/ld-linux-x86-64.so.2 on amd64).
interp="$(readelf -l "$BIN" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
if [ -n "$interp" ] && [ ! -e "$root$interp" ]; then
  mkdir -p "$root$(dirname "$interp")"; cp -L "$interp" "$root$interp"
fi
tar -C "$root" -cf "$root.tar" .
env_lib=()
if [ -n "${LLAMA_CUDA:-}" ]; then  # where CDI specs put the driver's libcuda (nvidia-ctk, or a bind of the driver folder)
  env_lib=(--change "ENV LD_LIBRARY_PATH=${CUDA_DRIVER_LIBS:-/usr/local/nvidia/lib64:/usr/lib64:/usr/lib/x86_64-linux-gnu}")
fi
podman import --quiet \
  --change 'ENTRYPOINT ["/app/llama-server"]' \
  --change 'ENV LLAMA_ARG_HOST=0.0.0.0' "${env_lib[@]}" \
  --change 'EXPOSE 8080' \
  --change 'ENV PATH=/usr/bin:/bin' \
  --change 'LABEL io.airpods.test-image=2' \
  "$root.tar" "$IMAGE" >/dev/null
rm -f "$root.tar"
log "built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
