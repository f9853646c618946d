# modelops — every target installs what it needs itself (virtualenv, Debian packages, tools), idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
HELM := $(TOOLS)/helm
PYTEST_ARGS ?=
# test workers of make test (pytest-xdist; 0 runs everything in one process)
PYTEST_WORKERS ?= 2

export PATH := $(CURDIR)/$(BIN):$(CURDIR)/$(TOOLS):$(PATH)

.PHONY: help venv deps test lint crds demo bench clean unit fuzz e2e

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv and install modelops with its dev extras (fast when nothing changed)

deps: venv ## Debian packages and tools the tests use (prometheus, promtool, helm, the local cluster's binaries, Traefik)
	@bash scripts/ensure-deps.sh
	@bash scripts/fetch-helm.sh >/dev/null
	@bash scripts/build-kube.sh >/dev/null
	@bash scripts/build-traefik.sh >/dev/null

lint: venv ## ruff, mypy strict on operator/, import-linter contracts
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: venv ## regenerate crds/ from the API models, and the copies in the chart and manifests
	$(BIN)/python -m modelops.api.crd crds
	$(BIN)/python scripts/render-manifests.py

test: deps lint ## the whole test suite (lint included)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

demo: deps ## the local environment playing a whole model lifecycle (about 4 minutes; Ctrl-C stops it cleanly)
	$(BIN)/modelops sandbox demo --dir .sandbox-demo

bench: deps ## benchmarks: 100 and 1,000 ModelDeployments, rollback latency, decide/s -> bench/results.json
	$(BIN)/python -m bench

# Only a KUBECONFIG given on make's command line counts: one merely exported in the shell never redirects the tests.
E2E_KUBECONFIG := $(if $(filter command line,$(origin KUBECONFIG)),$(abspath $(KUBECONFIG)),)

e2e: deps ## end-to-end scenarios on the local cluster, or on any cluster: make e2e KUBECONFIG=path (docs/demo.md)
	MODELOPS_E2E_KUBECONFIG='$(E2E_KUBECONFIG)' $(BIN)/python -m pytest -m e2e -p no:cacheprovider $(PYTEST_ARGS)

unit: venv ## the fast tests only
	$(BIN)/python -m pytest -m 'not integration and not e2e' $(PYTEST_ARGS)

fuzz: venv ## property tests with fresh random examples, 2,000 each (the suite runs a fixed set)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m 'not integration and not e2e' -p no:cacheprovider \
		$(shell grep -rl --include='test_*.py' '^from hypothesis' tests) $(PYTEST_ARGS)

clean: ## remove the virtualenv, tools and caches
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
