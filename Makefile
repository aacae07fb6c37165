# The two commands a newcomer types: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck pytest bench demo-data clean browsers

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $@

## run: set up and start the server with the demo district (SQLite + in-process queue)
run: $(STAMP)
	$(BIN)/homework-help migrate
	$(BIN)/homework-help demo-seed
	HH_DEMO=1 $(BIN)/homework-help serve

## test: set up and run ruff, mypy and every test
test: $(TEST_STAMP) browsers
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/pytest -q

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache homework-help.db
