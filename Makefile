# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# `MINA_BIND=0.0.0.0:8000 make run` wins over HOST and PORT.
MINA_BIND ?= $(HOST):$(PORT)

.PHONY: run test lint typecheck bench bench-outbox soak mutate recall clean

# Recipes that `make run` may run are silent (@): its stdout is the server's lines only.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files so a second `make` does not reinstall; pyproject changes do.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	@$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(VENV)/.run-installed
	@MINA_BIND='$(MINA_BIND)' exec $(BIN)/mina serve

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check mina tests bench tools main.py gunicorn.conf.py
	$(BIN)/ruff format --check mina tests bench tools main.py gunicorn.conf.py

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy
	$(BIN)/mypy --strict tools

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench

# Requests with Sentry off, healthy and hung (SDK transport vs outbox): one table.
bench-outbox: $(VENV)/.bench-installed
	$(BIN)/python -m bench.outbox --rounds 2 --json bench/results/outbox.json

# Memory under load: worker RSS per 1,000 requests and its slope, per scenario (real
# gunicorn; traced, erroring and plain requests; Sentry healthy, refusing, hanging).
# `make soak SOAK_ARGS="--minutes 10"` for the long run.
soak: $(VENV)/.bench-installed
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Mutation testing (tools/mutate.py): sampled mutants of the redaction package, the
# observability core, the Sentry outbox and transport and the stdout writer; prints the
# killed share per target and every survivor (docs/testing.md).
mutate: $(VENV)/.dev-installed
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)

# Recall of the redactor on random samples of gitleaks' rules, per family and spot.
recall: $(VENV)/.dev-installed
	$(BIN)/python -m tools.recall $(RECALL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .mutate
