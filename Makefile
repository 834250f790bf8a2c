# Two entry points for a fresh machine (see README.md):
#   make demo   installs neobuild and builds every example model (examples/neo.yaml)
#   make test   installs neobuild with the test tools and runs ruff, mypy and the whole suite
#   make bench  runs every benchmark scenario against its anchor (DVC, tar, python) and
#               rewrites benchmarks/RESULTS.md; BENCH_ARGS="--models 200" for a shorter run
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test bench lint typecheck docs pytest install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.neobuild-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[aws]"
	touch $@

$(VENV)/.dev-installed: $(VENV)/.neobuild-installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.neobuild-installed
dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/neobuild -C examples validate
	$(BIN)/neobuild -C examples package --all --smoke
	@echo
	@echo "Archives, scripts and requests are under examples/build/neo/<model>/;"
	@echo "their hashes are in examples/neo.lock. Try: $(BIN)/neobuild -C examples plan"

lint: dev
	$(BIN)/ruff check neobuild tests benchmarks examples tools
	$(BIN)/ruff format --check neobuild tests benchmarks examples tools

typecheck: dev
	$(BIN)/mypy

pytest: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

docs: dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint typecheck docs pytest

bench: dev
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) examples/build site .pytest_cache .mypy_cache .ruff_cache
