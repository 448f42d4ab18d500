# medtrans: `make all` runs the demo study, `make test` runs the tests. Both set up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STUDY ?= studies/demo.yaml
RUN ?=
STAMP := $(VENV)/.setup-stamp

.PHONY: setup all local test bench lint clean

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; medtrans needs Python 3.11 (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# CPU torch 2.13.0 first (from the local wheel folder where there is one), then the rest
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

setup: $(STAMP) ## create .venv and install the pinned dependencies

all: setup ## run the study (default studies/demo.yaml) with the local runner
	$(BIN)/medtrans run $(STUDY) $(if $(RUN),--run $(RUN))

test: setup ## run the tests
	$(BIN)/python -m pytest -q

bench: setup ## speed and memory against the tools people would use instead
	$(BIN)/python -m medtrans.stages.metrics.bench --out bench-results/bench.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf runs bench-results .pytest_cache .ruff_cache
