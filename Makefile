# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .standin
PORT ?= 8443
DEMO_TIME_SCALE ?= 60
PYTEST_ARGS ?=
# what `make test` runs: a path or node id narrows it (make test TESTS=tests/rules)
TESTS ?= tests
# `make test` runs the test files on this many pytest-xdist workers (each its own Airflow DB copy and
# stand-in); TEST_WORKERS=0 runs them serially in one process
TEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-n 0,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/.airflow/airflow.db
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# the pool and ARM waits defer to the triggerer (sensors read [operators] default_deferrable)
export AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE := True
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL := http://localhost:8080/execution/
export AIRFLOW__LOGGING__BASE_LOG_FOLDER := $(CURDIR)/.airflow/logs
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins

.PHONY: venv db test test-fast demo standin airflow reliability bench benchmark docs docs-build clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements-lock.txt
	@touch $@

db: $(AIRFLOW_HOME)/.migrated
$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (tail -40 $(AIRFLOW_HOME)/migrate.log; exit 1)
	@touch $@

test: venv db
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS) $(TESTS)

# `make test` without the tests marked slow (pytest.ini); TESTS, PYTEST_ARGS and TEST_WORKERS as for `make test` (4
# workers finished it sooner than 2 on a 2-core machine; a -m of your own in PYTEST_ARGS replaces "not slow")
test-fast: venv db
	$(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS) $(TESTS)

demo: venv db
	$(PY) -m include.demo --state-dir $(STATE_DIR) --port $(PORT) --time-scale $(DEMO_TIME_SCALE)

standin: venv
	$(PY) -m include.azure_standin --state-dir $(STATE_DIR) --port $(PORT)

# the UI locally: the stand-in plus scheduler, triggerer, dag-processor and api-server (SQLite, LocalExecutor)
# on .airflow; prints the URL and the login; Ctrl-C stops them all. API_PORT=0: any free port.
API_PORT ?= 8080
airflow: venv db
	$(PY) -m include.services.stack --state-dir $(STATE_DIR) --port $(PORT) --time-scale $(DEMO_TIME_SCALE) \
		--api-port $(API_PORT)

reliability: venv db
	$(PY) -m pytest -m reliability -p no:cacheprovider $(XDIST) $(PYTEST_ARGS) tests/reliability

# benchmarks against the stand-in (not part of `make test`): prints one table, writes
# benchmarks/results/<date>-<machine>.{json,md,png}; BENCH_ARGS="--only poll_cost,parse" or "--quick"
BENCH_ARGS ?=
bench: venv db
	$(PY) -m benchmarks.run $(BENCH_ARGS)

benchmark: bench

# the docs site (mkdocs.yml, docs/): `make docs` serves it at http://127.0.0.1:$(DOCS_PORT) and rebuilds on save;
# `make docs-build` builds it into site/ in strict mode (a broken link, a bad anchor or a page missing from the nav
# fails, as in tests/test_docs.py)
DOCS_PORT ?= 8000
docs docs-build: export NO_MKDOCS_2_WARNING := 1  # Material 9.7+'s banner about its successor
docs: venv
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: venv
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(AIRFLOW_HOME) $(STATE_DIR) .pytest_cache site
