#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` and `llama-quantize` (CPU) once, from the llama.cpp sources that the
# llama-cpp-python sdist on PyPI vendors, into a cache directory keyed by that version; later runs reuse it.
#
#   scripts/build_llama_server.sh PYTHON CACHE_ROOT VERSION BUILD
#
# PYTHON's pip downloads the sdist (pip's cache keeps it), VERSION is the llama-cpp-python release and BUILD the
# llama.cpp build number its vendored commit carries (the release data in workers/releases/llamacpp.json
# names both). The binaries land in CACHE_ROOT/llama-server-bBUILD/bin; the script prints that directory.
set -euo pipefail
PYTHON=$1 CACHE_ROOT=$2 VERSION=$3 BUILD=$4
TARGET="$CACHE_ROOT/llama-server-b$BUILD"
if [ -x "$TARGET/bin/llama-server" ] && [ -x "$TARGET/bin/llama-quantize" ]; then
  echo "$TARGET/bin"
  exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
# No web UI (it would be downloaded), no libcurl/OpenSSL (models are loaded by path), static binaries so the
# cache directory is all a later run needs; tuned for this CPU (the cache lives on the machine that built it). LLAMA_BUILD_NUMBER: the sdist has no git history to count.
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_NUMBER="$BUILD" -DGGML_NATIVE=ON >&2
cmake --build "$WORK/build" --target llama-server llama-quantize -j "$(nproc)" >&2
mkdir -p "$TARGET.partial/bin"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-quantize" "$TARGET.partial/bin/"
rm -rf "$TARGET"
mv "$TARGET.partial" "$TARGET"  # only a complete build becomes visible to later runs
echo "$TARGET/bin"
