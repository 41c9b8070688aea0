#!/usr/bin/env bash
# A release wheel for every claimed CPython, each installed into a fresh venv with numpy only
# (torch 2.13 has a CPU build on this machine for 3.11 alone) and its compiled module run on
# numpy buffers by tools/extension_smoke.py. Prints one line per version; fails on the first miss.
# usage: tools/wheel_all.sh DIST VERSION...   (interpreters from pyenv, or PYTHON_<major><minor>)
set -euo pipefail
dist="$1"
shift
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
summary=()
for version in "$@"; do
  override="PYTHON_${version//./}"
  python="${!override:-}"
  if [ -z "$python" ]; then
    python="$(ls -d "$pyenv_root"/versions/"$version".*/bin/python 2>/dev/null | sort -V | tail -1)"
  fi
  if [ -z "$python" ] || [ ! -x "$python" ]; then
    echo "no CPython $version found (pyenv install $version, or set $override)"
    exit 1
  fi
  tools/release_wheel.sh "$python" "$dist"
  tag="cp${version//./}"
  wheel="$(ls "$dist"/fastloader-*-"$tag"-"$tag"-*manylinux*.whl)"
  venv=".venv-py$version"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --only-binary :all: numpy
  "$venv/bin/python" -m pip install -q --no-deps "$wheel"
  result="$("$venv/bin/python" tools/extension_smoke.py)"
  echo "$result"
  platform="$(.venv/bin/auditwheel show "$wheel" | grep -A1 "consistent with" | tail -1)"
  summary+=("$version: $(basename "$wheel") (auditwheel: $platform) -> $result")
done
echo
echo "wheel-all: every compiled module imported and ran (sampler digests + collate kernels):"
printf '  %s\n' "${summary[@]}"
