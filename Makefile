# The two commands of the README: `make run` (install, synthesise the default world, refresh) and `make test`.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := python3 -m uv
VENV := .venv
BIN := $(VENV)/bin
PEOPLE ?= 100000
SEED ?= 42

.PHONY: install run synth refresh test lint dagster mlflow benchmarks clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	@# uv compiles site-packages; our own (editable) sources are compiled here. Every process the pipeline
	@# starts (each refresh stage, the Dagster code server, dbt) then reads .pyc files instead of compiling
	@# ~2 GB of sources in memory, which it does on machines that set PYTHONDONTWRITEBYTECODE.
	$(BIN)/python -m compileall -q ed_pipeline benchmarks >/dev/null
	@touch $@

run: install
	$(BIN)/ed-pipeline synth --people $(PEOPLE) --seed $(SEED)
	$(BIN)/ed-pipeline keygen
	$(BIN)/ed-pipeline refresh

synth: install
	$(BIN)/ed-pipeline synth --people $(PEOPLE) --seed $(SEED)

refresh: install
	$(BIN)/ed-pipeline keygen
	$(BIN)/ed-pipeline refresh

# Two test processes (pytest-xdist), each test file whole in one of them: 867 s -> 560-760 s on the 2-core machine (477 tests: 710 s, session 17).
# The session worlds are made once, by the first process to ask, and only read (copied before writing); each
# process has its own dbt target directory (ed_pipeline_tests/conftest.py). TEST_WORKERS=0: one process.
# Files are handed out in the collection's order, the slowest first (conftest.py's SLOW_FILES_FIRST), not xdist's
# (most tests first, which left the minute-long files of one or two tests to the end).
TEST_WORKERS ?= 2

test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check ed_pipeline ed_pipeline_tests benchmarks

# WORKSPACE=workspace-split.yaml: the agency zone and the warehouse as two code locations (docs/scaling.md)
WORKSPACE ?= workspace.yaml

dagster: install
	$(BIN)/ed-pipeline keygen
	@# the instance's dagster.yaml (one run at a time: DuckDB has one writer per file) is written before the UI starts
	DAGSTER_HOME=$$($(BIN)/ed-pipeline dagster-home) ED_PSEUDO_KEY=$${ED_PSEUDO_KEY:-$$(cat $${ED_DATA_DIR:-data}/secrets/pseudo.key)} \
		$(BIN)/dagster dev -w $(WORKSPACE)

mlflow: install
	@# the UI reports nothing to MLflow's makers either (ed_pipeline/__init__.py)
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --backend-store-uri sqlite:///$${ED_DATA_DIR:-data}/mlflow/mlflow.db

# Each benchmark prints its figures at its stated scale (the README's Figures table); the set takes ~15 minutes.
benchmarks: install
	$(BIN)/python benchmarks/synth_benchmark.py --people 100000 --people 1500000
	$(BIN)/python benchmarks/validation_benchmark.py
	$(BIN)/python benchmarks/pseudonymise_benchmark.py --records 2000000
	$(BIN)/python benchmarks/linkage_benchmark.py speed --people 1250000 --records 1000000
	$(BIN)/python benchmarks/model_benchmark.py

clean:
	rm -rf data
