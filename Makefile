# chatledger's developer commands. Needs only python3 (3.11 or newer) on PATH: every target
# that runs Python first creates .venv and installs the package into it.
#
#   make demo                 run examples/demo.py (core + the bundled SQLite, default database)
#   make serve                the HTTP API on the default SQLite database (SERVE_ARGS="--port 9000")
#   make test                 the full test suite on every core, then the SQLite behavioural
#                             tests again on the system SQLite library; PYTEST_ARGS="-x tests/test_x.py"
#   make browser              install Debian's chromium + chromium-driver when absent (browser tests)
#   make screenshots          regenerate docs/console/*.png (the console in Chromium)
#   make lint                 ruff, ruff format --check, mypy, generated-code check
#   make generate             regenerate the sync surface from the async source
#   make docs                 regenerate docs/cli.md from the commands' --help (a test checks it)
#   make revision m="..."     autogenerate a new Alembic revision
#   make bench                the benchmark suite, quick mode (make bench FULL=1: full mode)
#   make clean                remove caches and .venv

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
SERVER_STAMP := $(VENV)/.installed-server
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (each gets its own databases; 3 on 2 cores: much of the
# suite waits on servers and subprocesses); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
DEMO_ARGS ?=
SERVE_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv venv-core demo serve test lint generate docs revision bench clean browser screenshots

help:
	@sed -n 's/^#   //p' Makefile

# The interpreter: a fresh venv with an up-to-date pip.
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "chatledger needs Python 3.11 or newer; '$(PYTHON)' is older" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The package with the bundled SQLite (what `make demo` needs).
$(CORE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[sqlite]'
	@touch $@

# The package with every extra and the development tools. It includes the core, so the core
# stamp is refreshed too.
$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(CORE_STAMP)

# The package with the benchmark peers (LangChain, LangGraph), matplotlib and pyinstrument.
$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[bench]'
	@touch $@

# The package with the HTTP service (FastAPI, uvicorn): what `make serve` needs.
$(SERVER_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[server]'
	@touch $@ $(CORE_STAMP)

venv-core: $(CORE_STAMP)

venv: $(DEV_STAMP)

demo: venv-core
	$(PY) examples/demo.py $(DEMO_ARGS)

serve: $(SERVER_STAMP)
	$(VENV)/bin/chatledger serve $(SERVE_ARGS)

# The suite runs on the bundled SQLite (pysqlite3, in the dev extra); the second run repeats
# the core behavioural SQLite tests on the library Python links (CHATLEDGER_SQLITE_LIBRARY=
# system): what the library's SQL and SQLite handling touch, not the slow tests, the HTTP
# layer, the clusters or the fault matrix.
SYSTEM_SQLITE_TESTS := tests/test_sqlite.py tests/test_async_inline.py tests/test_messages.py \
	tests/test_conversations.py tests/test_users.py tests/test_trees.py tests/test_streams.py \
	tests/test_tools.py tests/test_hidden_messages.py tests/test_search.py tests/test_retrieval.py \
	tests/test_tokens.py tests/test_transactions.py tests/test_hotpath.py tests/test_privacy.py \
	tests/test_transfer.py
SYSTEM_SQLITE_ARGS := -m 'sqlite and not slow' $(SYSTEM_SQLITE_TESTS)
test: venv browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
	CHATLEDGER_SQLITE_LIBRARY=system $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		$(SYSTEM_SQLITE_ARGS) $(PYTEST_ARGS)

# The console's browser tests drive Debian's Chromium (a test tool's own browser download does
# not work offline). Installed with apt when absent; needs root (CI runs as root).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	else \
		echo "installing chromium and chromium-driver"; \
		flock /tmp/chatledger-apt.lock sh -c 'apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver'; \
	fi

screenshots: venv browser
	$(PY) tools/console_screenshots.py

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) tools/generate_sync.py --check

generate: venv
	$(PY) tools/generate_sync.py

docs: venv
	$(PY) tools/cli_docs.py

revision: venv
	@test -n "$(m)" || { echo 'usage: make revision m="describe the change"' >&2; exit 2; }
	$(PY) tools/new_revision.py "$(m)"

bench: $(BENCH_STAMP)
	$(PY) -m bench $(if $(FULL),--full,) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
