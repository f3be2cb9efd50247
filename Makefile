# Quickstart: `make demo` and `make test` work on a fresh clone with only Python 3.11 and git.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: install demo test test-quick bench bench-obp bench-spark ui ui-stop clean help

help:
	@echo "make demo   - create .venv, run a complete evaluation on synthetic data, log to MLflow, print the verdict"
	@echo "make test   - create/update .venv and run the whole test suite (what CI runs)"
	@echo "make test-quick - the suite without statistical simulations, live MLflow servers and Spark"
	@echo "make bench  - run the benchmarks against the peers (pytrec_eval, ranx); bench-obp: OBP parity and speed"
	@echo "make ui     - start the MLflow UI on the harness's store (harness store) and print its URL"
	@echo "make clean  - remove .venv, results and local MLflow data"

# Re-install only when the project's dependencies or pins change.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[test,bench]'
	# compile the numba kernels once, into numba's on-disk cache: later processes (harness
	# run, every pytest worker) load them in seconds instead of each compiling them
	$(BIN)/python -m harness.metrics._warm
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/harness demo --dir .harness-demo

# --dist loadgroup: the Spark tests (xdist_group "spark") share one worker and one session
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# Before a commit: everything but the seeded statistical simulations (marker `slow`), the
# tests that start a real MLflow server (`mlflow_server`) and those that run in a Spark
# session (`spark`: a JVM). CI runs `make test`.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow and not mlflow_server and not spark" $(PYTEST_ARGS)

# Each benchmark runs the harness and, where one exists, its peer in the same process and
# prints times and ratios (ranking: pytrec_eval + ranx; off-policy: OBP in a throwaway venv
# with `make bench-obp`). Sizes are the issues' targets; expect ~10 minutes on 2 cores.
bench: $(STAMP)
	$(BIN)/python benchmarks/ranking_speed.py --queries 100000 --peers
	$(BIN)/python benchmarks/ranking_speed.py --queries 1000000
	$(BIN)/python benchmarks/compare_speed.py
	$(BIN)/python benchmarks/ope_speed.py --obp-sizes ""
	$(BIN)/python benchmarks/calibration_speed.py
	$(BIN)/python benchmarks/retrieval_speed.py
	$(BIN)/python benchmarks/dataset_loading.py
	$(BIN)/python benchmarks/first_call.py

bench-obp: $(STAMP)
	$(BIN)/python benchmarks/ope_parity.py
	$(BIN)/python benchmarks/ope_speed.py --n 1000000

# Spark (local[2]) vs the local engine at 1M, 10M and 50M run rows (Java 17+; ~20 minutes on 2 cores)
bench-spark: $(STAMP)
	$(BIN)/python benchmarks/spark_scale.py

ui: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash mlflow/start.sh

ui-stop:
	@bash mlflow/stop.sh

# the harness's MLflow store ($$HARNESS_HOME, see `harness store`) is per user and outlives a clean
clean:
	rm -rf $(VENV) results .harness-demo mlruns mlflow.db mlflow/data *.egg-info build dist
