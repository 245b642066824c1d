# Golden image governance: every target sets up what it needs (venv, Python packages, Azurite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo test lint run bench clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## demo: the whole lifecycle on Azurite + the local Functions host + the offline Azure provider
demo: setup
	$(BIN)/python -m shared.local.demo

## test: unit, integration (real Azurite, started by the suite) and end-to-end (the local host over HTTP)
test: setup
	$(BIN)/python -m pytest

## lint: ruff and mypy (strict) on the package, ruff on the rest
lint: setup
	$(BIN)/ruff check shared tests bench function_app.py
	$(BIN)/mypy

## run: serve the app locally (func start where Core Tools exist, else the local host) on 127.0.0.1:7071
run: setup
	$(BIN)/python -m shared.local.run

## bench: benchmarks (ratios measured in one run); results go to docs/benchmarks.md by hand
bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .azurite .run .pytest_cache .mypy_cache .ruff_cache
