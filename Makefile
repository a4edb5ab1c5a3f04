# ins-engine: `make run` starts the engine on routes/default.toml (SQLite + INSi simulator),
# `make test` runs the suite and the route tests beside routes/, `make test-fast` lints and
# runs the suite without its system, PostgreSQL, browser and install tests (about a minute:
# the loop to run while changing code; `make test` before pushing), `make fuzz` runs the
# property tests and the MLLP header fuzz for longer, `make demo` replays
# hl7_samples/ through the engine and shows what it did, `make bench` compares the engine with
# its peers (about 10 minutes). Each creates the virtualenv and installs what it needs: `run`
# and `demo` the runtime only, `test` adds the test tools and the example step kind of
# examples/, `bench` the benchmark tools; `test` and `bench` also install the Debian
# packages they drive (postgresql, chromium, systemd, nodejs) when one is missing, and the npm
# packages of the FHIR test server (`make peers`), which the FHIR benchmark sends to too.
# `make docs` builds the documentation site into site/ (MkDocs, the `docs` extra); `make
# test` builds it too.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
EXAMPLE := examples/phone-format
# One stamp per set of extras: each is installed on top of the runtime, once per change of
# pyproject.toml. `.installed` is the development set (runtime and test tools).
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: run test test-fast lint check clean demo bench packages peers fuzz docs

$(PIP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(EXAMPLE)/pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[test]'
	$(PIP) install --quiet -e $(EXAMPLE)  # a step kind from another package, tested by make test
	touch $@

$(BENCH_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[bench]'
	touch $@

$(DOCS_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[docs]'
	touch $@

run: $(RUNTIME_STAMP)
	$(BIN)/ins-engine run --config routes/default.toml

demo: $(RUNTIME_STAMP)
	$(BIN)/python -m demo.run

bench: $(BENCH_STAMP) packages peers
	$(BIN)/python -m bench.run

check: $(RUNTIME_STAMP)
	$(BIN)/ins-engine check --config routes/default.toml

lint: $(TEST_STAMP)
	$(BIN)/ruff check engine tests bench demo examples docs
	$(BIN)/ruff format --check engine tests bench demo examples docs
	$(BIN)/mypy

# The Debian packages the tests (and the PostgreSQL benchmarks) drive, when one is missing.
packages:
	@sh tests/debian-packages.sh

# The FHIR test server's npm packages (tests/peers/fhir-server: medplum's FHIR router, pinned
# by its committed lock file), installed again only when the lock file changes. Node and npm
# come from `packages`; the tests that start the server are marked system, and `make bench`
# delivers to it.
FHIR_PEER := tests/peers/fhir-server
FHIR_PEER_STAMP := $(FHIR_PEER)/node_modules/.installed

$(FHIR_PEER_STAMP): $(FHIR_PEER)/package-lock.json $(FHIR_PEER)/package.json
	cd $(FHIR_PEER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The OpenID Connect provider the console's single sign-on tests sign in at
# (tests/peers/oidc-provider: panva's oidc-provider, pinned by its lock file).
OIDC_PEER := tests/peers/oidc-provider
OIDC_PEER_STAMP := $(OIDC_PEER)/node_modules/.installed

$(OIDC_PEER_STAMP): $(OIDC_PEER)/package-lock.json $(OIDC_PEER)/package.json
	cd $(OIDC_PEER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

peers: $(FHIR_PEER_STAMP) $(OIDC_PEER_STAMP)

# The docs build joins the tests: about 6 s (11 s more the first time, to install MkDocs),
# and a broken link or anchor fails it.
# pytest on two worker processes (pytest-xdist): the suite waits on sockets, engine
# processes, fsync and a browser about as much as it computes, so two workers keep two cores
# busy. Each worker starts its own PostgreSQL server and FHIR test server; `pytest FILE`
# alone still runs in one process.
test: $(TEST_STAMP) packages peers lint docs
	$(BIN)/pytest -n 2
	$(BIN)/ins-engine test --config routes/default.toml

# The inner loop: what needs no other process, no server and no browser (markers in
# pyproject.toml). It installs no Debian or npm package.
FAST_TESTS := not system and not postgres and not browser and not install

test-fast: $(TEST_STAMP) lint
	$(BIN)/pytest -q -m "$(FAST_TESTS)"

# The property tests of the MLLP codec, the ER7 view and the INS path with ten times the
# suite's examples (--slow; each test bounded by pytest-timeout), then mutated headers over
# MLLP to an `ins-engine run` process (bounded by --timeout-s).
FUZZ_TESTS := tests/mllp/test_codec_property.py tests/hl7/test_message_property.py \
	tests/enrich/test_enrich_fuzz.py tests/enrich/test_guard_property.py

fuzz: $(TEST_STAMP)
	$(BIN)/pytest -q --slow $(FUZZ_TESTS)
	PYTHONPATH=. $(BIN)/python bench/fuzz_mllp.py --count 20000 --seed 26 --timeout-s 600

# The documentation site (mkdocs.yml), its reference pages written from the code, into site/;
# --strict fails on a broken link or anchor.
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) var site .pytest_cache .ruff_cache $(FHIR_PEER)/node_modules $(OIDC_PEER)/node_modules
