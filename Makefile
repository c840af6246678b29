# Quiver: make run (the main job) and make test (everything) on a fresh machine.
SHELL := /bin/bash
GO ?= go
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PKG_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' pyclient/quiver/__init__.py)
# The binary reports the package's version, plus the commit it was built from.
VERSION ?= $(PKG_VERSION)+$(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
QUICK ?=

.PHONY: setup build wheel run run-builtins test test-tools test-go test-py test-e2e chaos bench lint clean

setup: $(VENV)/.installed build ## Python venv with pinned deps, Go modules, the binary

$(VENV)/.installed: pyclient/requirements.txt pyclient/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r pyclient/requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e pyclient
	touch $@

build: ## bin/quiver
	$(GO) mod download
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/quiver ./cmd/quiver
	mkdir -p pyclient/quiver/_bin && cp bin/quiver pyclient/quiver/_bin/quiver.tmp && mv pyclient/quiver/_bin/quiver.tmp pyclient/quiver/_bin/quiver

wheel: $(VENV)/.installed ## dist/: platform wheels (Linux x86_64 and aarch64) with the node's binary inside
	$(PY) pyclient/build_wheels.py --out dist

run: setup ## the main job: a heavy PySpark pandas UDF on skewed data, plain and accelerated
	$(PY) spark-jobs/demo.py

run-builtins: setup ## start a node, call every built-in on generated data, stop it
	@rundir=$$(mktemp -d); chmod 700 $$rundir; \
	trap 'bin/quiver stop --run-dir $$rundir >/dev/null 2>&1; rm -rf $$rundir' EXIT; \
	bin/quiver start --run-dir $$rundir --listen 127.0.0.1:0 --python $(CURDIR)/$(PY) && \
	QUIVER_ADDRESS=grpc+unix://$$rundir/quiver.sock $(PY) spark-jobs/builtins_demo.py && \
	bin/quiver status --address grpc+unix://$$rundir/quiver.sock

test: setup $(VENV)/.test-installed test-tools test-go test-py test-e2e ## all tests

$(VENV)/.test-installed: test/requirements.txt $(VENV)/.installed ## test-only deps (Databend's UDF client)
	$(PY) -m pip install -q --disable-pip-version-check -r test/requirements.txt
	touch $@

test-tools: ## where apt can install them: headless Chromium (the dashboard's test) and iptables (delayed links where the kernel has no netem); else those tests skip
	@for tool in chromium iptables; do \
		command -v $$tool >/dev/null || ! command -v apt-get >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$tool >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$tool >/dev/null 2>&1; } || \
		echo "$$tool could not be installed: the tests that need it will skip"; \
	done

test-go:
	$(GO) vet ./...
	QUIVER_PYTHON=$(CURDIR)/$(PY) $(GO) test -race -count=1 ./...

test-py: $(VENV)/.test-installed ## the Python client's own tests, against a real node
	QUIVER_BIN=$(CURDIR)/bin/quiver $(PY) -m pytest -q pyclient/tests

test-e2e: ## test/: real PySpark, node processes started and restarted, the examples
	QUIVER_BIN=$(CURDIR)/bin/quiver $(PY) -m pytest -q test

CHAOS_SECONDS ?= 600
chaos: setup ## a three-node cluster under verified load and faults for CHAOS_SECONDS (600); a 60 s one runs in test-go
	QUIVER_PYTHON=$(CURDIR)/$(PY) $(GO) test -count=1 -timeout 0 -run '^TestChaos$$' -v ./test \
		-chaos-seconds $(CHAOS_SECONDS) -chaos-report $(CURDIR)/bench/chaos-report.txt

bench: setup $(VENV)/.bench-installed ## the whole suite; rewrites bench/RESULTS.md and bench/charts/ (QUICK=1: small)
	$(PY) bench/run_all.py $(if $(QUICK),--quick,)

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed ## benchmark-only deps (ray, scikit-learn, matplotlib)
	$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin dist $(VENV)
