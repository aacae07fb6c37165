# The two commands a newcomer types: `make run` and `make test`.
#
# Installs come only from the hash-pinned locks in requirements/ (`make lock` regenerates
# them from pyproject.toml's ranges), so every machine gets the same versions of every
# direct and transitive dependency, and a new upstream release changes nothing until the
# locks are regenerated and committed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
UV_VERSION := 0.13.9
UV := $(VENV)-lock/bin/uv
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: run test lint typecheck pytest bench demo-data clean browsers lock catalogs

$(BIN)/python: requirements/build.txt
	$(PY) -m venv $(VENV)
	$(PIP) install -q --require-hashes -r requirements/build.txt
	touch $@

$(STAMP): requirements/run.txt pyproject.toml | $(BIN)/python
	$(PIP) install -q --require-hashes -r requirements/run.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

$(TEST_STAMP): requirements/test.txt $(STAMP)
	$(PIP) install -q --require-hashes -r requirements/test.txt
	touch $@

## run: set up and start the server with the demo district (SQLite + in-process queue)
run: $(STAMP)
	$(BIN)/homework-help migrate
	$(BIN)/homework-help demo-seed
	HH_DEMO=1 $(BIN)/homework-help serve

## test: set up and run ruff, mypy and every test
# The suite runs on both cores (pytest-xdist: every test has its own databases, Redis key
# prefix and ports), except tests/faults, whose invariants are checked against timings
# (grace periods, reconnect windows) and which start and stop their own PostgreSQL and Redis:
# they run after, alone.
PYTEST_PARALLEL := -n 2 --dist worksteal --ignore=tests/faults

test: $(TEST_STAMP) browsers
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_PARALLEL)
	$(BIN)/pytest -q tests/faults

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/pytest -q $(PYTEST_PARALLEL)
	$(BIN)/pytest -q tests/faults

## lock: regenerate requirements/*.txt from pyproject.toml's ranges (newest versions that fit)
lock:
	test -x $(UV) || ($(PY) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install -q uv==$(UV_VERSION))
	$(UV) pip compile requirements/build.in $(LOCK_FLAGS) -o requirements/build.txt
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o requirements/run.txt
	$(UV) pip compile pyproject.toml --extra test -c requirements/run.txt $(LOCK_FLAGS) \
	  -o requirements/test.txt

## catalogs: extract messages, update every locale's .po and compile the .mo files
catalogs: $(TEST_STAMP)
	$(BIN)/python -m i18n.extract all

## browsers: Debian's Chromium for the Playwright tests (never `playwright install`)
browsers:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -q && apt-get install -y -q chromium) >/tmp/hh-chromium.log 2>&1 \
	      || echo "chromium install failed, see /tmp/hh-chromium.log"; \
	  else echo "chromium missing: browser tests will skip (apt-get install chromium)"; fi; \
	fi

## bench: run the benchmarks and rewrite bench/RESULTS.md
bench: $(TEST_STAMP)
	$(BIN)/python -m bench.routing
	$(BIN)/python -m bench.broker

demo-data: $(STAMP)
	$(BIN)/python scripts/make_demo_district.py

clean:
	rm -rf $(VENV) $(VENV)-lock .pytest_cache .mypy_cache .ruff_cache homework-help.db
