# ins-engine: `make run` starts the engine on routes/default.toml (SQLite + INSi simulator),
# `make test` runs the suite. Both create the virtualenv and install what they need.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ins-engine run --config routes/default.toml

check: $(STAMP)
	$(BIN)/ins-engine check --config routes/default.toml

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench

test: $(STAMP) lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
