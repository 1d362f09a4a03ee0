# Two commands on a fresh machine: `make run` (the app on its embedded default, with demo data) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests run on the real PostgreSQL and Redis (start them with `docker compose up -d postgres redis` if absent).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/advisor
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The settings default to production (DEBUG off, HTTPS, secrets required); every target here is development, so
# it asks for DEBUG explicitly. A production environment sets its own.
export DEBUG ?= true

.PHONY: run test lint typecheck checks pytest fuzz install-web install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.web-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# Everything the tests need: the worker side (torch CPU, transformers serve), llama.cpp's server (compiled
# once, then taken from pip's wheel cache), dev tools, and Debian's Chromium for the browser tests.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,worker,llamacpp]'
	touch $@

install-web: $(VENV)/.web-installed
install-test: $(VENV)/.test-installed browser

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: install-web
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py load_demo
	@echo "Serving on http://$(HOST):$(PORT)/ (embedded SQLite, tasks run in-process). Sign in with the demo account above."
	DEBUG=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy .

checks: $(VENV)/.test-installed
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	# The production values of .env.example pass Django's deployment checks (its SECRET_KEY is a placeholder
	# that advisor.E001 refuses, so a generated one stands in, as in a real deployment).
	set -a && . ./.env.example && set +a && \
	  SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

pytest: install-test
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest

# Schemathesis over the OpenAPI schema against gunicorn on a fresh PostgreSQL database (<db>_fuzz, dropped after),
# every check, at least 5,000 requests; any 5xx or schema violation fails it.
fuzz: install-test
	$(BIN)/python scripts/fuzz_api.py --database-url $(TEST_DATABASE_URL)_fuzz

test: install-test lint typecheck checks pytest fuzz

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
