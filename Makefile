# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
# `make run BROKER=ibkr`: the IBKR adapter (ib_async over the TWS socket protocol) against the IB Gateway
# simulator serving the demo's state file, started with web, worker and beat (Procfile.ibkr).
BROKER ?= simulated
IBKR_PORT ?= 4002
ifeq ($(BROKER),ibkr)
PROCFILE := Procfile.ibkr
BROKER_ENV := BROKER=ibkr IBKR_GATEWAY_SIM=true IBKR_HOST=127.0.0.1 IBKR_PORT=$(IBKR_PORT) IBKR_CLIENT_IDS=17-40 \
	OPTIONS_FLOW_SOURCE=broker
FLOW_ENV := OPTIONS_FLOW_SOURCE=broker
FLOW_INGEST := && $(BROKER_ENV) $(BIN)/python manage.py ingest_options_flow
# The demo's first syncs go through the simulator too: started for them, stopped after.
GATEWAY_UP := mkdir -p var; $(BIN)/python manage.py ibgateway_sim --port $(IBKR_PORT) > var/ibgateway_sim.log 2>&1 & sim=$$!; \
	trap 'kill $$sim' EXIT; \
	for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(IBKR_PORT)) 2>/dev/null && break; sleep 0.1; done;
else
PROCFILE := Procfile.dev
BROKER_ENV := BROKER=simulated
GATEWAY_UP :=
FLOW_ENV :=
FLOW_INGEST :=
endif

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
	@case "$(BROKER)" in simulated|ibkr) ;; *) echo "BROKER=$(BROKER): make run knows simulated and ibkr"; exit 2;; esac
	BROKER=simulated DEMO_MODE=true $(FLOW_ENV) $(BIN)/python manage.py demo_setup
	$(GATEWAY_UP) \
	$(BROKER_ENV) $(BIN)/python manage.py sync_positions && \
	$(BROKER_ENV) $(BIN)/python manage.py ingest_executions && \
	$(BROKER_ENV) $(BIN)/python manage.py sync_positions && \
	$(BROKER_ENV) $(BIN)/python manage.py sync_market_data $(FLOW_INGEST) && \
	$(BROKER_ENV) $(BIN)/python manage.py sync_fx_rates && \
	$(BROKER_ENV) $(BIN)/python manage.py refresh_greeks  # market data first (a year of daily bars, recent 1h and 5m bars, quotes): the Greeks fallback reads the quotes
	BROKER=simulated $(BIN)/python manage.py demo_history
	$(BIN)/python manage.py compute_metrics --since 1990-01-01  # every day of the demo history

run: demo ## the whole product on SQLite + the embedded Celery transport: web, worker and beat
	@echo ""
	@echo "  Open http://$(HOST):$(PORT)/  (trader: demo / demo-password, staff: admin / admin-password)"
	@echo "  Admin: http://$(HOST):$(PORT)/admin/   API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  Broker: $(BROKER)$(if $(filter ibkr,$(BROKER)), (the IB Gateway simulator on 127.0.0.1:$(IBKR_PORT)))"
	@echo "  Ctrl-C stops web, worker and beat$(if $(filter ibkr,$(BROKER)), and the gateway)."
	@echo ""
	DEMO_MODE=true HOST=$(HOST) PORT=$(PORT) $(BROKER_ENV) $(BIN)/honcho -f $(PROCFILE) start

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
