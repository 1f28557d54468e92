# CityStat: two commands. `make run` sets everything up and starts the stack;
# `make test` sets everything up and runs the suite. Everything a test needs is installed here.
SHELL := /bin/bash
PY ?= python3
UV := $(PY) -m uv
VENV := .venv
BIN := $(VENV)/bin
SERVICES := directory intake311 indicators escalation
EDITABLES := -e libs/common $(foreach s,$(SERVICES),-e services/$(s))
export UV_LINK_MODE := copy

.PHONY: help install axe lock run run-demo demo test test-unit test-fast lint migrate bench clean system-deps keys

help:
	@echo "make run      set up and start broker + services + demo data;  make run EMPTY=1  an empty city"
	@echo "make run-demo the same with demo timings and the city simulator; make demo  simulator only"
	@echo "make test     set up and run the whole suite in parallel (SQLite; PostgreSQL too with TEST_POSTGRES_URL)"
	@echo "make test-unit  the unit tier only (no I/O, under a minute); make test-fast  unit + api tiers"
	@echo "make lint     ruff + mypy;  make migrate   alembic upgrade head for every service"
	@echo "make bench    benchmarks (not part of make test);  make lock   refresh requirements.lock"

$(BIN)/.installed: requirements.lock pyproject.toml libs/common/pyproject.toml $(wildcard services/*/pyproject.toml)
	@$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(UV) venv --allow-existing --python 3.11 $(VENV)
	$(UV) pip install --python $(BIN)/python -r requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps $(EDITABLES)
	touch $@

install: $(BIN)/.installed

# axe-core (accessibility rules run inside Chromium by the browser tests), from the npm registry.
AXE_VERSION := 4.14.1
AXE_JS := $(VENV)/axe/node_modules/axe-core/axe.min.js
$(AXE_JS):
	@command -v npm >/dev/null || { echo "npm is needed for axe-core (Debian package npm)"; exit 1; }
	npm install --prefix $(VENV)/axe --no-audit --no-fund --silent axe-core@$(AXE_VERSION)

axe: $(AXE_JS)

# The lock is exported without index addresses: pinned versions and hashes only.
lock:
	$(UV) lock
	$(UV) export --all-packages --no-emit-workspace --all-groups -q > requirements.lock

# System packages some tests need (headless Chromium for the dashboards, promtool for alert rules).
system-deps:
	@need=""; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	command -v promtool >/dev/null || need="$$need prometheus"; \
	if [ -n "$$need" ]; then \
	  echo "installing Debian packages:$$need"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	fi

keys: install
	@mkdir -p var
	@$(BIN)/python -m citystat_common.devkeys var

migrate: install
	@for s in $(SERVICES); do [ -d services/$$s/$$s/migrations/versions ] && ls services/$$s/$$s/migrations/versions/*.py >/dev/null 2>&1 && \
	  $(BIN)/$$s-worker migrate && echo "$$s: migrated"; done; true

# `make run EMPTY=1`: an empty city (no directory, catalog or indicators; its own databases under
# var/empty/), for a city to import its own (README, "How a city onboards").
run: install keys
	@rm -rf var/metrics && mkdir -p $(foreach s,$(SERVICES),var/metrics/$(s)) var/mail var/empty
	@set -a; . deploy/local.env; . var/local-secrets.env; $(if $(EMPTY),. deploy/empty.env;) set +a; exec $(BIN)/honcho -f deploy/Procfile start

demo: install keys
	@set -a; . deploy/local.env; . var/local-secrets.env; set +a; $(BIN)/python -m citystat_common.demo.simulate

# The suite runs in TEST_WORKERS pytest-xdist processes (each with its own broker, SQLite templates
# and PostgreSQL databases; ports come from free_port()). Much of a test's time is spent waiting
# (broker timeouts, processes starting), so 3 workers on 2 cores beat 2 (4 saturate the CPU).
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3
test: install system-deps axe
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Test tiers (markers set in tests/conftest.py from the fixtures a test uses): unit, api,
# integration, e2e, browser. `make test-unit` needs no database server, broker or browser.
test-unit: install
	$(BIN)/python -m pytest -p no:cacheprovider -q -m unit

test-fast: install
	$(BIN)/python -m pytest -p no:cacheprovider -x -q -m "unit or api"

lint: install
	$(BIN)/ruff check libs services tests scripts bench
	$(BIN)/mypy libs/common/citystat_common services/directory/directory services/escalation/escalation \
	  services/indicators/indicators services/intake311/intake311

bench: install
	@command -v wrk >/dev/null || { echo "installing Debian package: wrk"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache

# The stack with demo timings (tickets climb within minutes, daily 311 indicators) and the simulator.
run-demo: install keys
	@rm -rf var/metrics && mkdir -p $(foreach s,$(SERVICES),var/metrics/$(s)) var/mail
	@set -a; . deploy/local.env; . var/local-secrets.env; . deploy/demo.env; set +a; exec $(BIN)/honcho -f deploy/Procfile.demo start
