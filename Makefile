# fsc developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := test
VENV := .venv
PY := $(VENV)/bin/python
PIP_COMPILE_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links \
	--extra test --extra platform

.PHONY: bootstrap system-deps demo test explore lint lock lock-upgrade

bootstrap:
	@bash scripts/bootstrap.sh

system-deps:
	@bash scripts/system-deps.sh

demo: bootstrap
	$(VENV)/bin/fsc compile examples/campus.fs

test: system-deps bootstrap lint
	$(PY) -m pytest -q -n 2 --dist loadscope

# Random exploration, not CI: the property and fuzz tests (every Hypothesis
# test) with random draws and FSC_EXPLORE_SCALE (default 10) times their
# examples (tests/conftest.py, profile `explore`). Run it before you stop; a
# failure prints the blob that reproduces it and is replayed first next time.
explore: bootstrap
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q -n 2 --dist loadscope -m hypothesis

# Static checks, part of `make test`: lint, formatting, the layer contracts
# (pyproject.toml [tool.importlinter]) and types.
lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Regenerate requirements.lock from pyproject.toml, keeping existing pins where
# they still satisfy it (`make lock-upgrade` moves everything to the newest).
# --allow-unsafe pins setuptools (mininet and pbr need it at run time; without
# a pin `pip install --require-hashes` refuses the lock).
# pip-tools lives in its own venv inside .venv so that it never disturbs the
# locked packages.
TOOLS := $(VENV)/.tools

$(TOOLS)/bin/pip-compile:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check pip-tools

lock: $(TOOLS)/bin/pip-compile
	$(TOOLS)/bin/pip-compile $(PIP_COMPILE_FLAGS) -o requirements.lock pyproject.toml

lock-upgrade: $(TOOLS)/bin/pip-compile
	$(TOOLS)/bin/pip-compile $(PIP_COMPILE_FLAGS) --upgrade -o requirements.lock pyproject.toml
