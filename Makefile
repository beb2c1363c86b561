# Two commands do everything on a fresh machine:
#   make run    the service with a local Kafka and Redis (Ctrl-C stops it cleanly)
#   make test   lint and the whole suite against a real Kafka and Redis
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
WITH_ENV := deploy/with-stack-env.sh
PYTEST_ARGS ?=

.PHONY: help install run worker demo topics schemas lint unit test bench \
        stack-up stack-down stack-status clean

help:
	@echo "make run          start Kafka + Redis locally (unless MEDIA_KAFKA_BOOTSTRAP_SERVERS"
	@echo "                  and MEDIA_REDIS_URL point elsewhere), create topics, run a worker"
	@echo "make test         install, lint, start the stack, run every test, stop the stack"
	@echo "make demo         produce realistic synthetic traffic into the topics"
	@echo "make worker       run a worker against .stack/env or the environment"
	@echo "make lint | unit | stack-up | stack-down | stack-status | topics | schemas | clean"

$(STAMP):
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

stack-up:
	@deploy/stack.sh up

stack-down:
	@deploy/stack.sh down

stack-status:
	@deploy/stack.sh status

run: install
	@if [[ -n "$$MEDIA_KAFKA_BOOTSTRAP_SERVERS" && -n "$$MEDIA_REDIS_URL" ]]; then \
	  echo "using Kafka at $$MEDIA_KAFKA_BOOTSTRAP_SERVERS and the Redis of MEDIA_REDIS_URL"; \
	else deploy/stack.sh up; fi
	@exec $(WITH_ENV) $(BIN)/service worker

worker: install
	@exec $(WITH_ENV) $(BIN)/service worker

demo: install
	@$(WITH_ENV) $(BIN)/service demo

topics: install
	@$(WITH_ENV) $(BIN)/service topics create
	@$(WITH_ENV) $(BIN)/service topics describe

schemas: install
	@$(BIN)/service schemas

lint: install
	$(BIN)/ruff check service tests bench deploy
	$(BIN)/ruff format --check service tests bench deploy
	$(BIN)/mypy
	$(BIN)/shellcheck deploy/*.sh .ci/run
	$(BIN)/service schemas --check

unit: install
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

# Starts the stack if it is not running, and stops it afterwards only if it started it.
test: install lint
	@if deploy/stack.sh status >/dev/null 2>&1; then started=0; else started=1; \
	  deploy/stack.sh up || exit 1; fi; \
	status=0; $(WITH_ENV) $(BIN)/pytest -ra $(PYTEST_ARGS) || status=$$?; \
	if [[ $$started == 1 ]]; then deploy/stack.sh down; fi; \
	exit $$status

# Throughput, latency and memory of the performance pipeline (docs/benchmarks.md): starts
# the stack if needed, runs ~3 minutes in its own topics and Redis keys (removed after),
# updates docs/benchmarks.md and writes .stack/bench-<run>.json. Options: BENCH_ARGS=--help
bench: install
	@deploy/stack.sh up
	@$(WITH_ENV) $(BIN)/python -m bench.throughput $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
