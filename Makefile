# ins-engine: `make run` starts the engine on routes/default.toml (SQLite + INSi simulator),
# `make test` runs the suite, `make demo` replays hl7_samples/ through the engine and shows
# what it did, `make bench` compares the engine with its peers (about 6 minutes). Each creates
# the virtualenv and installs what it needs: `run` and `demo` the runtime only, `test` adds
# the test tools, `bench` the benchmark tools.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# One stamp per set of extras: each is installed on top of the runtime, once per change of
# pyproject.toml. `.installed` is the development set (runtime and test tools).
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint check clean demo bench

$(PIP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[bench]'
	touch $@

run: $(RUNTIME_STAMP)
	$(BIN)/ins-engine run --config routes/default.toml

demo: $(RUNTIME_STAMP)
	$(BIN)/python -m demo.run

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

check: $(RUNTIME_STAMP)
	$(BIN)/ins-engine check --config routes/default.toml

lint: $(TEST_STAMP)
	$(BIN)/ruff check engine tests bench demo
	$(BIN)/ruff format --check engine tests bench demo
	$(BIN)/mypy

test: $(TEST_STAMP) lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
