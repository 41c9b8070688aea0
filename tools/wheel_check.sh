#!/usr/bin/env bash
# Installs the wheel in DIST into the fresh venv VENV as a user would, with only that venv on
# PATH (no compiler) and binaries only, then runs the smoke tests and the sampler and stub tests.
# usage: tools/wheel_check.sh VENV DIST
set -euo pipefail
root="$PWD"
py="$root/$1/bin/python"
tag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
wheels=("$root/$2"/fastloader-*-"$tag"-"$tag"-*manylinux*.whl)
[ -f "${wheels[0]}" ] || { echo "no $tag manylinux wheel in $2 (run make wheel)"; exit 1; }
export PATH="$root/$1/bin"
for compiler in cc c++ gcc g++ clang clang++ zig; do
  if command -v "$compiler" >/dev/null; then echo "a compiler is on PATH: $compiler"; exit 1; fi
done
# torch first and pinned: any other spec would pull a multi-GB CUDA build.
"$py" -m pip install -q --only-binary :all: torch==2.13.0
"$py" -m pip install -q --only-binary :all: "${wheels[0]}[test]"
"$py" tools/extension_smoke.py
"$py" tools/package_smoke.py
# From the repository root, `import fastloader` still finds the installed wheel (python/ is not
# on sys.path); package_smoke.py asserts so.
"$py" -m pytest -q -p no:cacheprovider tests/sampling/test_weighted.py tests/test_stubs.py
