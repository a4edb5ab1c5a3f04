# ins-engine: `make run` starts the engine on routes/default.toml (SQLite + INSi simulator),
# `make test` runs the suite and the route tests beside routes/, `make demo` replays hl7_samples/ through the engine and shows
# what it did, `make bench` compares the engine with its peers (about 6 minutes). Each creates
# the virtualenv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/phone-format

.PHONY: run test lint check clean demo bench

$(STAMP): pyproject.toml $(EXAMPLE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/pip install --quiet -e $(EXAMPLE)  # a step kind from another package, tested by make test
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ins-engine run --config routes/default.toml

demo: $(STAMP)
	$(BIN)/python -m demo.run

bench: $(STAMP)
	$(BIN)/python -m bench.run

check: $(STAMP)
	$(BIN)/ins-engine check --config routes/default.toml

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench demo examples
	$(BIN)/ruff format --check engine tests bench demo examples
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest
	$(BIN)/ins-engine test --config routes/default.toml

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
