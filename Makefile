# plantlake: `make demo` and `make test` do all their own set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLANTLAKE := $(VENV)/bin/plantlake
UV_VERSION := 0.13.8
PYTEST_ARGS ?=

.PHONY: setup install up down status demo test test-unit test-spark test-integration lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(PY) -e '.[dev]'
	touch $@

# The browser tests drive Debian's chromium (Playwright cannot download a browser here).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium
	test -x $(CHROMIUM)

# promtool checks and unit-tests the shipped Prometheus alert rules (infra/prometheus/).
PROMTOOL ?= /usr/bin/promtool

$(PROMTOOL):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends prometheus
	test -x $(PROMTOOL)

setup: $(VENV)/.installed $(CHROMIUM) $(PROMTOOL)

install: setup
	$(PLANTLAKE) install

up: setup
	$(PLANTLAKE) up

down: setup
	$(PLANTLAKE) down

status: setup
	$(PLANTLAKE) status

demo: up
	$(PLANTLAKE) demo

# Every tier: unit, Spark and integration (against the services `plantlake up` starts).
test: up
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not spark and not integration" $(PYTEST_ARGS)

test-spark: up
	$(PY) -m pytest -m spark $(PYTEST_ARGS)

test-integration: up
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache
