# placehub: every set-up step is here, so a fresh machine needs only Python 3.11+,
# Java 17+, Maven and make (PostgreSQL, Chromium and Prometheus for the tests come from
# Debian's packages). Local state (.venv, .cache, .state) is git-ignored.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration check validate-deploy sdk fmt bench broker-start broker-stop postgres-start postgres-stop chromium prometheus clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the simulated place (broker, worker, partners, API); Ctrl-C to stop
demo: $(STAMP)
	$(BIN)/placehub demo

## test: unit and integration tests against the real local broker and PostgreSQL (started if needed)
test: $(STAMP) broker-start postgres-start chromium prometheus
	$(BIN)/python -m pytest

unit: $(STAMP) prometheus
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) broker-start postgres-start chromium prometheus
	$(BIN)/python -m pytest tests/integration

## bench: benchmarks beside raw-client baselines (not part of the tests; about 20 minutes)
bench: $(STAMP)
	$(BIN)/placehub bench

## check: lint, type-check, schema evolution and catalogue freshness (CI runs it too)
check: $(STAMP) validate-deploy
	$(BIN)/ruff check hub connectors tests examples sdk
	$(BIN)/ruff format --check hub connectors tests examples sdk
	$(BIN)/mypy
	$(BIN)/mypy --strict sdk/build.py
	$(BIN)/placehub schemas check
	$(BIN)/placehub schemas docs --check
	$(BIN)/mypy --strict examples

## validate-deploy: deploy/compose and deploy/k8s against their schemas (Compose spec, Strimzi CRDs, Kubernetes)
DEPLOY_PY := scripts/validate-deploy.py deploy/render.py deploy/k8s/schemas/extract_strimzi.py
validate-deploy: $(STAMP)
	$(BIN)/ruff check $(DEPLOY_PY)
	$(BIN)/ruff format --check $(DEPLOY_PY)
	$(BIN)/mypy --strict $(DEPLOY_PY)
	$(BIN)/python scripts/validate-deploy.py

## sdk: the partner SDK on its own, dist/placehub_connectors-*.whl (README: The SDK on its own)
sdk: $(STAMP)
	$(BIN)/python sdk/build.py --out dist

fmt: $(STAMP)
	$(BIN)/ruff format hub connectors tests examples
	$(BIN)/ruff check --fix hub connectors tests examples

broker-start: $(STAMP)
	$(BIN)/placehub broker start

broker-stop: $(STAMP)
	$(BIN)/placehub broker stop

## PostgreSQL for the SQL-poll tests (scripts/postgres.sh installs it with apt-get if missing)
postgres-start:
	scripts/postgres.sh start

postgres-stop:
	scripts/postgres.sh stop

## Chromium and chromedriver for the practitioners' page test (apt-get install if missing)
chromium:
	scripts/chromium.sh install

## Prometheus and promtool for the rules' and the scrape's tests (apt-get install if missing)
prometheus:
	scripts/prometheus.sh install

clean: broker-stop postgres-stop
	rm -rf .state
