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

.PHONY: venv demo test test-fast lint-deps chromium bench clean neo4j neo4j-if-java neo4j-start

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

# A local Neo4j 5.26 LTS Community server without Docker (tools/neo4j-server, Maven; jars cached in ~/.m2, rebuilt only
# when the pom or the Java source changes). The tests start it on free ports with an empty database (tests/conftest.py);
# `make neo4j-start NEO4J_PASSWORD=...` runs it in the foreground on 7687 (Bolt) / 7474 (HTTP + Browser), data in
# $(NEO4J_HOME). docker-compose.yml runs the same version.
NEO4J_DIR  := tools/neo4j-server
NEO4J_CP   := $(NEO4J_DIR)/target/classpath.txt
NEO4J_HOME ?= .neo4j-home
NEO4J_JAVA_OPTS ?= -Xms256m -Xmx1g -XX:+UseSerialGC

neo4j: $(NEO4J_CP)

$(NEO4J_CP): $(NEO4J_DIR)/pom.xml $(wildcard $(NEO4J_DIR)/src/main/java/circuitdb/*.java)
	mvn -q -B -Dstyle.color=never -f $(NEO4J_DIR)/pom.xml package
	@touch $@

# `make test` builds the server where Java and Maven exist (CI must have them); elsewhere the live tests skip
neo4j-if-java:
	@if command -v java >/dev/null && command -v mvn >/dev/null; then $(MAKE) --no-print-directory neo4j; \
	elif [ "$$CI" = true ]; then echo "CI needs Java 17 and Maven 3 for the live Neo4j tests" >&2; exit 1; \
	else echo "no java/mvn: the live Neo4j tests will skip" >&2; fi

neo4j-start: neo4j
	@mkdir -p $(NEO4J_HOME)
	CIRCUITDB_NEO4J_PASSWORD="$${NEO4J_PASSWORD:?set NEO4J_PASSWORD (at least 8 characters)}" \
	  java $(NEO4J_JAVA_OPTS) -cp "$(NEO4J_DIR)/target/circuitdb-neo4j-server-1.0.jar:$$(cat $(NEO4J_CP))" \
	  circuitdb.Neo4jServer --home $(NEO4J_HOME) --bolt-port $${NEO4J_BOLT_PORT:-7687} --http-port $${NEO4J_HTTP_PORT:-7474}

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

test: venv lint-deps chromium neo4j-if-java
	$(PY) -m pytest -q

test-fast: venv
	CIRCUITDB_SKIP_CYPHER_LINT=1 $(PY) -m pytest -q -x -m "not slow"

bench: venv
	$(PY) bench/store_bench.py
	$(PY) bench/eap_bench.py
	$(PY) bench/feature_bench.py
	$(PY) bench/query_bench.py
	$(PY) bench/ingest_bench.py

clean:
	rm -rf $(VENV) circuitdb-data circuitdb-demo tools/cypher-lint/node_modules .pytest_cache $(NEO4J_DIR)/target
