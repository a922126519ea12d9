# Two commands do everything: `make run` (the daemon on the example models) and
# `make test` (every test, installing what they need first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9188

.PHONY: run test lint bench system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@echo "model-health-exporter on http://$(LISTEN)/ (metrics at http://$(LISTEN)/metrics); Ctrl-C stops it"
	$(VENV)/bin/model-health-exporter --models.dir examples/models --state.dir .state \
		--web.listen-address $(LISTEN)

system-deps:
	scripts/install-system-deps.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: $(VENV)/.installed system-deps lint
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(PY) bench/reaction_latency.py
	$(PY) bench/scrape_time.py

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
