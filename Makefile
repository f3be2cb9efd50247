# Quickstart: `make demo` and `make test` work on a fresh clone with only Python 3.11 and git.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: install demo test bench ui ui-stop clean help

help:
	@echo "make demo   - create .venv, run a complete evaluation on synthetic data, log to MLflow, print the verdict"
	@echo "make test   - create/update .venv and run the whole test suite"
	@echo "make bench  - run the benchmarks against the peers (pytrec_eval, ranx)"
	@echo "make ui     - start the MLflow UI on the local store and print its URL"
	@echo "make clean  - remove .venv, results and local MLflow data"

# Re-install only when the project's dependencies or pins change.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[test,bench]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/harness demo --dir .harness-demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/ranking_speed.py --queries 100000

ui: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash mlflow/start.sh

ui-stop:
	@bash mlflow/stop.sh

clean:
	rm -rf $(VENV) results .harness-demo mlruns mlflow.db mlflow/data *.egg-info build dist
