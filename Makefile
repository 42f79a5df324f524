# Everything installs from the package index into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench bench-smoke bench-continuous bench-continuous-smoke debug-test clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard src/prism_match/*.pyx src/prism_match/*.pxi src/prism_match/*.pxd)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The bounds-checked kernel run first, so the suite's own summary closes the output.
test: install
	$(MAKE) --no-print-directory debug-test
	$(PY) -m pytest

demo: install
	$(VENV)/bin/prism-match match data/registry.yaml data/slots.yaml -k 3
	$(VENV)/bin/prism-match bind data/registry.yaml data/pattern.yaml

# The seeded benchmark data cached first (benchmarks/.cache: documents, YAML,
# snapshots), so no benchmark's setup builds it; then the asv suite once
# against the installed package (--quick: one run of each benchmark, a check
# more than a measurement), then compare.py: prism_match
# against the numpy baseline, polars, DuckDB and the seed's algorithm, with
# medians and ratios from one run (benchmarks/results/latest.json).
bench: install
	$(PY) -m benchmarks.common
	cd benchmarks && ../$(PY) -m asv machine --yes --machine ci --config asv.existing.json >/dev/null && ../$(PY) -m asv run --quick --python=same --machine ci --show-stderr --config asv.existing.json
	$(PY) benchmarks/compare.py

# asv as it is meant to be used: two commits, each built from its own source
# in its own virtualenv (benchmarks/asv.conf.json), compared; exits 1 when a
# benchmark got slower by more than FACTOR. `asv machine --yes` first, so a
# fresh $$HOME never stops at asv's questions. The first run creates the
# environment (a few minutes); later runs build only the commits.
#   make bench-continuous BASE=main HEAD_REF=my-branch BENCH=MatchPrepared
BASE ?= HEAD~1
HEAD_REF ?= HEAD
BENCH ?= .
FACTOR ?= 1.1
bench-continuous: install
	cd benchmarks && ../$(PY) -m asv machine --yes --machine ci >/dev/null && ../$(PY) -m asv continuous $(ASV_EXTRA) --machine ci --show-stderr --factor $(FACTOR) --bench '$(BENCH)' $(BASE) $(HEAD_REF)

# The proof that the above works, at toy size: one small benchmark family
# (UpdateThenMatch: 1,000 and 10,000 backends), one sample each (--quick),
# HEAD~1 against HEAD. A factor of 5: one sample measures nothing, this
# checks that both commits build, run and compare.
bench-continuous-smoke: install
	$(MAKE) --no-print-directory bench-continuous BENCH='UpdateThenMatch' FACTOR=5 ASV_EXTRA=--quick

# The benchmarks as tests, in seconds: every asv benchmark once at its smallest
# sizes, the baseline and peers checked against Registry.match, compare.py at
# toy sizes (all in tests/test_benchmarks_smoke.py, which `make test` runs too),
# and the pytest-benchmark micro-benchmarks once each.
bench-smoke: install
	$(PY) -m pytest tests/test_benchmarks_smoke.py benchmarks/micro

# The kernel tests again, against a separate build with bounds checking on
# (build/debug; the installed extension is left alone).
DEBUG_DIR := build/debug
debug-test: install
	rm -rf $(DEBUG_DIR) && mkdir -p $(DEBUG_DIR)
	cp -r src/prism_match $(DEBUG_DIR)/prism_match
	rm -f $(DEBUG_DIR)/prism_match/*.so $(DEBUG_DIR)/prism_match/*.c
	PRISM_MATCH_DEBUG=1 $(PY) setup.py -q build_ext --build-lib $(DEBUG_DIR) --build-temp $(DEBUG_DIR)-tmp
	PYTHONPATH=$(DEBUG_DIR) $(PY) -c "import prism_match._core as c, prism_match._names as m, sys; sys.exit(not all('$(DEBUG_DIR)' in f for f in (c.__file__, m.__file__)))"
	PYTHONPATH=$(DEBUG_DIR) $(PY) -m pytest tests/test_kernel.py -p no:cacheprovider

clean:
	rm -rf build $(VENV) src/prism_match/*.c src/prism_match/*.so
