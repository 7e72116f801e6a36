# circuitdb — the two commands a newcomer runs: `make demo` and `make test`.
# Each sets up what it needs on a fresh machine: a .venv, torch (the CPU build 2.13.0 unless the venv already has a
# torch, e.g. your CUDA build), the package with its test extras, and the Node linter for Neo4j's Cypher grammar.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
STORE  ?= embedded:./circuitdb-data

.PHONY: venv demo test test-fast lint-deps bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(VENV)/.installed

$(VENV)/.installed: $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	@touch $@

lint-deps: tools/cypher-lint/node_modules/.installed

tools/cypher-lint/node_modules/.installed: tools/cypher-lint/package.json tools/cypher-lint/package-lock.json
	npm ci --prefix tools/cypher-lint --no-audit --no-fund --loglevel=error
	@touch $@

demo: venv
	$(VENV)/bin/circuitdb demo --store "$(STORE)"

test: venv lint-deps
	$(PY) -m pytest -q

test-fast: venv
	CIRCUITDB_SKIP_CYPHER_LINT=1 $(PY) -m pytest -q -x -m "not slow"

bench: venv
	$(PY) bench/store_bench.py
	$(PY) bench/eap_bench.py
	$(PY) bench/feature_bench.py
	$(PY) bench/query_bench.py

clean:
	rm -rf $(VENV) circuitdb-data tools/cypher-lint/node_modules .pytest_cache
