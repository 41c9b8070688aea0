# One-command set-up: `make test` and `make bench` create .venv, install torch==2.13.0 (the CPU
# build on this machine's disk) and then this package, and run. Nothing else is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.fastloader-installed
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc python -type f 2>/dev/null)

.PHONY: test bench bench-sampler bench-collate bench-ring wheel-check cpp-test cpp-test-tsan \
	cpp-test-aarch64 dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: any other spec would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0

$(INSTALLED): $(PY) $(SOURCES)
	$(PY) -m pip install -q ".[test,bench]"
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest -q tests

bench: $(INSTALLED)
	$(PY) -m fastloader.bench

# The detailed per-feature benchmarks behind the README's tables.
bench-sampler: $(INSTALLED)
	$(PY) bench/bench_sampler.py --markdown bench/results/sampler.md

bench-collate: $(INSTALLED)
	$(PY) bench/bench_collate.py

bench-ring: $(INSTALLED)
	$(PY) bench/bench_ring.py

# Proves the wheel installs and imports in a fresh venv with no compiler or build step.
wheel-check: $(PY)
	rm -rf dist .venv-wheel
	$(PY) -m pip wheel -q --no-deps . -w dist
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/pip install -q torch==2.13.0
	.venv-wheel/bin/pip install -q dist/fastloader-*.whl
	cd / && $(CURDIR)/.venv-wheel/bin/python -c "import fastloader, sys; \
		s = fastloader.FastWeightedSampler([0.0, 1.0, 3.0], 1000, seed=0); \
		assert set(s) <= {1, 2}; print('wheel ok:', fastloader.__file__)"

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
	rm -rf build dist $(VENV) .venv-wheel
