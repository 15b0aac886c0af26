# labrram — the commands a lab needs. Each target installs what it needs first.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
RUNS ?= runs

.PHONY: install install-test install-demo install-docs demo test test-all test-browser browser fashion-mnist bench docs calibration clean

install:
	$(PIP) install -q -e .

# libarc1 (ArC ONE's host library, for the test that drives the simulated ArC ONE with it) pins
# numpy<2 without needing it: installed without its pins
install-test:
	$(PIP) install -q -e '.[test,plot,nn,dask,arc2,pyvisa-py,interop,docs]'
	$(PIP) install -q --no-deps libarc1==0.1.0

install-demo:
	$(PIP) install -q -e '.[plot,nn]'

install-docs:
	$(PIP) install -q -e '.[docs]'

# The tour on the simulated bench: characterize -> calibrate -> train a Bayesian network on half
# moons -> transfer it to all 16,384 devices by stochastic SET -> evaluate -> report in runs/demo/
demo: install-demo
	@mkdir -p $(RUNS)
	rm -rf $(RUNS)/demo
	labrram demo --out $(RUNS)/demo

test: install-test
	$(PYTHON) -m pytest -q

test-all: install-test
	$(PYTHON) -m pytest -q -m ''

# Chromium and its driver from the distribution's packages (as root), for the headless-browser
# tests of labrram watch; without them those tests skip. make test does not need them.
browser:
	apt-get update -qq
	apt-get install -y -qq chromium chromium-driver

test-browser: install-test browser
	$(PYTHON) -m pytest -q -m '' tests/test_watch_browser.py

# Fashion-MNIST's original IDX files from Debian's dataset-fashion-mnist package (as root, where
# apt is available), installed in /usr/share/datasets/fashion-mnist; elsewhere point
# LABRRAM_FASHION_MNIST at a directory holding the four files. Without them the tests that need
# them skip. The benchmarks that use the data set depend on this target.
fashion-mnist:
	@if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST: installed"; \
	elif [ -n "$$LABRRAM_FASHION_MNIST" ]; then echo "Fashion-MNIST: from $$LABRRAM_FASHION_MNIST"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" != 0 ]; then echo "Fashion-MNIST: run as root (sudo make fashion-mnist)" >&2; exit 1; \
	elif command -v apt-get >/dev/null; then apt-get install -y -qq dataset-fashion-mnist || \
	  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; \
	else echo "Fashion-MNIST: no apt-get here; set LABRRAM_FASHION_MNIST to a directory holding its IDX files" >&2; exit 1; fi

bench: install-test fashion-mnist
	$(PYTHON) -m benchmarks

# The documentation site (user guide, how-to recipes, API reference from the docstrings) in
# site/; strict: a warning (broken link, page left out of the navigation, unparsable
# docstring) fails the build
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --site-dir site

# Regenerate the shipped calibrations (calibration_data/*.json, plots in docs/calibration/)
# by characterizing the default simulated bench, one chip kind at a time.
# (the passive chip is a 32x32 array, the size of the passive-crossbar transfer studies)
CAL_KINDS ?= reram pcm passive
calibration: install-test
	@mkdir -p $(RUNS)/calibration docs/calibration
	for kind in $(CAL_KINDS); do \
	  rm -rf $(RUNS)/calibration/$$kind.zarr && \
	  labrram characterize --kind $$kind $$( [ $$kind = passive ] && echo --array 32x32 ) --out $(RUNS)/calibration/$$kind.zarr && \
	  labrram calibrate $(RUNS)/calibration/$$kind.zarr --out calibration_data/$$kind.json --plots docs/calibration || exit 1; \
	done

clean:
	rm -rf $(RUNS) build site *.egg-info .pytest_cache
