# Two commands for people: `make demo` and `make test`. Everything else they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CHROMA_TELEMETRY_IMPL := none
export ANONYMIZED_TELEMETRY := False
export POWERTOOLS_TRACE_DISABLED := true
export POWERTOOLS_METRICS_NAMESPACE := storekeeper

.PHONY: setup demo test test-fast lint bench build validate sam-venv sizes clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "python3 >= 3.11 needed, found %s" % sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check shared functions tests scripts
	$(BIN)/ruff format --check shared functions tests scripts
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

test: lint
	$(BIN)/pytest -q -p no:cacheprovider tests

test-fast: setup
	$(BIN)/pytest -q -x tests/unit

bench: setup
	$(BIN)/storekeeper bench --out bench/report.json

# --- SAM: aws-sam-cli pins its own boto3, so it gets a virtualenv of its own ----------------
SAM_VENV := .venv-sam
PY312 ?= $(shell pyenv prefix 3.12 2>/dev/null || pyenv prefix 3.12.1 2>/dev/null)
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q aws-sam-cli
	@touch $@

sam-venv: $(SAM_VENV)/.installed

validate: sam-venv
	$(SAM_VENV)/bin/sam validate --lint

build: sam-venv
	PATH="$(PY312)/bin:$$PATH" $(SAM_VENV)/bin/sam build
	$(BIN)/python scripts/artifact_sizes.py

clean:
	rm -rf .aws-sam .demo bench/report.json
