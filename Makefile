# One-command set-up: `make test` and `make bench` create .venv, install torch==2.13.0 (the CPU
# build on this machine's disk) and then this package, and run. Nothing else is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.fastloader-installed
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc python -type f 2>/dev/null)

.PHONY: test bench bench-sampler bench-collate bench-ring bench-distributed bench-policies wheel-check cpp-test dev clean

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

# Distributed per-rank epochs, memory per rank and resume time (n = 1e7; --quick for 1e6).
bench-distributed: $(INSTALLED)
	$(PY) bench/bench_distributed.py --markdown bench/results/distributed.md

# Repeat-factor epochs, aspect-ratio grouping and padding against the detectron2 / torchvision ways.
bench-policies: $(INSTALLED)
	$(PY) bench/bench_policies.py

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

# Editable install for development: rebuilds the extension in build/editable.
dev: $(PY)
	$(PY) -m pip install -q scikit-build-core pybind11 ninja cmake numpy pytest hypothesis scipy psutil tqdm
	$(PY) -m pip install -q --no-build-isolation -e ".[test]" -Cbuild-dir=build/editable
	touch $(INSTALLED)

clean:
	rm -rf build dist $(VENV) .venv-wheel
