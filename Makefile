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

.PHONY: setup demo test test-fast lint bench build validate sam-venv checkov-venv sizes clean chromium postgres

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

# headless Chromium opens the `status --html` page in a test (Debian's package; root or sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# PostgreSQL from Debian's packages (the compare-and-swap table of supabase:// stores in tests and
# `storekeeper devstack`); the fixtures run initdb/postgres as the unprivileged postgres user
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (apt-get install postgresql)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# A fresh clone spends minutes setting up, mostly pip unpacking and compiling three virtualenvs: those
# run side by side (2 cores), then lint beside `sam validate`; Debian's packages one after the other
# (one dpkg lock). Any step failing stops the run, as before.
test:
	$(MAKE) --no-print-directory -j3 --output-sync=target setup sam-venv checkov-venv
	$(MAKE) --no-print-directory -j2 --output-sync=target lint validate
	$(MAKE) --no-print-directory chromium postgres
	$(BIN)/pytest -q -p no:cacheprovider tests

# the unit tests not marked slow: seconds to a minute, for the edit-test loop
test-fast: setup
	$(BIN)/pytest -q -x -p no:cacheprovider -m "not slow" tests/unit

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

# checkov pins dependencies of its own (boto3, networkx...): a virtualenv of its own, run by tests/iam
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q "checkov>=3.2,<4"
	@touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

# `sam validate --lint` (aws-sam-cli in .venv-sam, installed on first use: works on a fresh clone)
# both ways: the defaults, and every option on (KMS key, VPC, access logs, query function, tracing)
validate: sam-venv setup
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --region us-east-1
	$(BIN)/python -m tests.iam.options_template > .template-options.json
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --region us-east-1 -t .template-options.json
	rm -f .template-options.json

# sam build needs python3.12 (the Lambda runtime) on PATH; then prove every artifact ships unchecked-hash
# 3.12 bytecode for each module (first, before anything runs from the artifacts), that they hold
# production code only (the layer: shared/Makefile), that the trimmed chromadb builds (compactor, query)
# work from them alone, and print their sizes against the 250 MB limit and each handler's import time
build: sam-venv setup
	@test -x "$(PY312)/bin/python3.12" || { echo "python 3.12 not found (pyenv install 3.12, or make build PY312=/prefix)"; exit 1; }
	PATH="$(PY312)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build
	$(BIN)/python scripts/check_bytecode.py
	$(BIN)/python scripts/check_layer.py --python "$(PY312)/bin/python3.12"
	$(BIN)/python scripts/check_trimmed_chromadb.py --python "$(PY312)/bin/python3.12"
	$(BIN)/python scripts/artifact_sizes.py

clean:
	rm -rf .aws-sam .demo bench/report.json
