# circuitdb — the two commands a newcomer runs: `make demo` and `make test`.
# Each sets up what it needs on a fresh machine: a .venv, torch (2.13.0 unless the venv already has a torch, e.g. your
# own CUDA build), the package with its test extras, and the Node linter for Neo4j's Cypher grammar. Python packages
# go in with uv (bootstrapped into the venv by pip): a cold install of torch takes ~20 s instead of ~2 min, and a
# second venv on the same machine hard-links uv's cache.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
STORE  ?= embedded:./circuitdb-data

.PHONY: venv demo test test-fast lint-deps chromium bench clean

UV     := $(VENV)/bin/uv
UVPIP  := $(UV) pip install -q --python $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q uv

venv: $(VENV)/.installed

$(VENV)/.installed: $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(UVPIP) "$(TORCH)"
	$(UVPIP) -e ".[test]"
	@touch $@

lint-deps: tools/cypher-lint/node_modules/.installed

tools/cypher-lint/node_modules/.installed: tools/cypher-lint/package.json tools/cypher-lint/package-lock.json
	npm ci --prefix tools/cypher-lint --no-audit --no-fund --loglevel=error
	@touch $@

demo: venv
	$(VENV)/bin/circuitdb demo --store "$(STORE)"

# Headless Chromium for the HTML-view tests (tests/browser.py drives it through Python playwright; never
# `playwright install`). Debian's package, installed as root when /usr/bin/chromium is absent; without root it says so
# and the browser tests skip (except under CI=true, where they fail).
CHROMIUM ?= /usr/bin/chromium

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium (for the HTML-view tests)"; \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "$(CHROMIUM) is absent and this is not root: browser tests will skip (run make chromium as root)"; fi; \
	fi

test: venv lint-deps chromium
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
