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
API_PORT ?= 8067

.PHONY: help install run worker api demo topics schemas lint unit test bench bench-boards bench-scale bench-handler \
        stack-up stack-down stack-status clean

help:
	@echo "make run          start Kafka + Redis locally (unless MEDIA_KAFKA_BOOTSTRAP_SERVERS"
	@echo "                  and MEDIA_REDIS_URL point elsewhere), create topics, run a worker"
	@echo "make test         install, lint, every test on the plain stack, then the secure,"
	@echo "                  cluster and tls-cluster sets on theirs (started/stopped if needed)"
	@echo "make demo         produce realistic synthetic traffic into the topics"
	@echo "make worker       run a worker against .stack/env or the environment"
	@echo "make api          serve the HTTP API in a process of its own (no consumer),"
	@echo "                  on port API_PORT (8067), beside a worker's 8066"
	@echo "make bench        throughput, latency, memory, then leaderboards at 200,000 assets"
	@echo "make bench-boards | bench-scale   only the leaderboards | 1 and 2 workers"
	@echo "make bench-handler  the performance handler alone on Redis: cost per event and per step"
	@echo "make lint | unit | stack-up | stack-down | stack-status | topics | schemas | clean"
	@echo "MEDIA_STACK_SECURITY=tls and/or MEDIA_STACK_REDIS=cluster before make stack-up|run|"
	@echo "                  worker|demo: the same on the secure and/or Redis Cluster stack"

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

api: install
	@exec $(WITH_ENV) env MEDIA_WEB_PORT=$(API_PORT) $(BIN)/service api

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

# Every test against the plain stack; then, each on its own stack, the tests marked
# secure (SASL_SSL Kafka, TLS Redis with the service's ACL user), those marked cluster (a
# Redis Cluster of three primaries) and those marked both (a TLS Redis Cluster). Each
# stack is started if it is not running, and stopped afterwards only if it was started
# here. TEST_STACKS="plain" (or any of plain tls cluster tls-cluster) runs fewer.
TEST_STACKS ?= plain tls cluster tls-cluster
test: install lint
	@status=0; \
	for variant in $(TEST_STACKS); do \
	  case $$variant in \
	    plain) export MEDIA_STACK_SECURITY=plain MEDIA_STACK_REDIS=single ;; \
	    tls) export MEDIA_STACK_SECURITY=tls MEDIA_STACK_REDIS=single ;; \
	    cluster) export MEDIA_STACK_SECURITY=plain MEDIA_STACK_REDIS=cluster ;; \
	    tls-cluster) export MEDIA_STACK_SECURITY=tls MEDIA_STACK_REDIS=cluster ;; \
	    *) echo "unknown stack in TEST_STACKS: $$variant" >&2; exit 2 ;; \
	  esac; \
	  echo "=== tests against the $$variant stack ==="; \
	  if deploy/stack.sh status >/dev/null 2>&1; then started=0; else started=1; \
	    deploy/stack.sh up || exit 1; fi; \
	  $(WITH_ENV) $(BIN)/pytest -ra $(PYTEST_ARGS) || status=$$?; \
	  if [[ $$started == 1 ]]; then deploy/stack.sh down; fi; \
	done; \
	exit $$status

# Throughput, latency and memory of the performance pipeline (docs/benchmarks.md): starts
# the stack if needed, runs ~3 minutes in its own topics and Redis keys (removed after),
# updates docs/benchmarks.md and writes .stack/bench-<run>.json. Options: BENCH_ARGS=--help
# Then the leaderboards at 200,000 assets (bench-boards below).
bench: install
	@deploy/stack.sh up
	@$(WITH_ENV) $(BIN)/python -m bench.throughput $(BENCH_ARGS)
	@$(WITH_ENV) $(BIN)/python -m bench.boards $(BOARDS_ARGS)

# The leaderboards of one library of 200,000 assets (bench/boards.py): refresh cost per
# changed asset, change-to-board time, the hourly sweep. Options: BOARDS_ARGS=--help
bench-boards: install
	@deploy/stack.sh up
	@$(WITH_ENV) $(BIN)/python -m bench.boards $(BOARDS_ARGS)

# 1 and 2 workers on the stack of MEDIA_STACK_REDIS (single or cluster): events/s and CPU
# per event of the workers, Redis and Kafka (bench/scale.py). Options: SCALE_ARGS=--help
bench-scale: install
	@deploy/stack.sh up
	@$(WITH_ENV) $(BIN)/python -m bench.scale $(SCALE_ARGS)

# The performance handler alone on the stack's Redis, no Kafka (bench/handler.py): CPU,
# Redis time and commands per event at two fetch sizes. Options: HANDLER_ARGS=--help
bench-handler: install
	@deploy/stack.sh up
	@$(WITH_ENV) $(BIN)/python -m bench.handler $(HANDLER_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
