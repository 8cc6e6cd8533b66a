# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install migrate demo requirements clean

$(STAMP): requirements/base.txt requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/base.txt -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP) ## create the virtual environment with the pinned requirements

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate ## write the demo broker state, the demo logins and the demo's periodic tasks
	DEMO_MODE=true $(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py sync_positions
	$(BIN)/python manage.py ingest_executions
	$(BIN)/python manage.py sync_positions
	$(BIN)/python manage.py demo_history
	$(BIN)/python manage.py compute_metrics --since 1990-01-01  # every day of the demo history

run: demo ## the whole product on SQLite + the embedded Celery transport: web, worker and beat
	@echo ""
	@echo "  Open http://$(HOST):$(PORT)/  (trader: demo / demo-password, staff: admin / admin-password)"
	@echo "  Admin: http://$(HOST):$(PORT)/admin/   API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  Ctrl-C stops web, worker and beat."
	@echo ""
	DEMO_MODE=true HOST=$(HOST) PORT=$(PORT) $(BIN)/honcho -f Procfile.dev start

test: install ## lint, migration check and the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true

requirements: ## recompile the pinned requirements from requirements/*.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements/base.txt requirements/base.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements/dev.txt requirements/dev.in

clean:
	rm -rf var
