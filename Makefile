# labrram — the commands a lab needs. Each target installs what it needs first.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
RUNS ?= runs

.PHONY: install install-test demo test test-all bench clean

install:
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q -e '.[test,plot]'

demo: install
	@mkdir -p $(RUNS)
	labrram info
	rm -rf $(RUNS)/demo-read.zarr
	labrram read --out $(RUNS)/demo-read.zarr

test: install-test
	$(PYTHON) -m pytest -q

test-all: install-test
	$(PYTHON) -m pytest -q -m ''

bench: install-test
	$(PYTHON) -m benchmarks

clean:
	rm -rf $(RUNS) build *.egg-info .pytest_cache
