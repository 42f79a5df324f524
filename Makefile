# Everything installs from the package index into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench debug-test clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py src/prism_match/_core.pyx src/prism_match/_typedefs.pxd
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest

demo: install
	$(VENV)/bin/prism-match match data/registry.yaml data/slots.yaml -k 3

bench: install
	cd benchmarks && ../$(PY) -m asv machine --yes --machine ci >/dev/null && ../$(PY) -m asv run --quick --python=same --machine ci --show-stderr
	$(PY) benchmarks/compare.py

# The kernel tests again against a build with bounds checking on.
debug-test: install
	PRISM_MATCH_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force
	$(PY) -m pytest tests/test_kernel.py -x -q
	$(PY) setup.py -q build_ext --inplace --force

clean:
	rm -rf build $(VENV) src/prism_match/*.c src/prism_match/*.so
