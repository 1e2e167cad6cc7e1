# Two commands: `make run` and `make test`. Each installs what is missing first.
# `make check` is the fast tier: lint, type check and every test that needs no emulator (< 1 min).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TOOLS := .venv-tools
PIP_FLAGS := --quiet --disable-pip-version-check
# The installer: uv (pinned in constraints.txt), put beside the venv with pip's `--target` and used
# for both venvs: a few seconds where pip (and `python -m venv`'s own pip) take a minute or more.
# Where uv cannot be had or fails, plain venv and pip do the same install.
UV := $(VENV)/.uv/bin/uv
# pytest-xdist workers (`make test SUITE_WORKERS=4`); each worker starts its own stacks on free
# ports with private state dirs (tests/harness.py). The fast tier is CPU-bound: one per core. The
# whole suite also waits (processes starting, daemons' polls, fault tests' deadlines): with one
# worker per core the 2-core machine sat 18 % idle, so it runs one worker more (2 cores, alone:
# 2 workers 6:21, 3 workers 5:37 at 5 % idle, 4 workers 6:02; docs/design.md §11).
CORES := $(shell nproc 2>/dev/null || echo 2)
PYTEST_WORKERS ?= $(CORES)
SUITE_WORKERS ?= $(shell echo $$(($(CORES) + 1)))
# How many of the slowest tests `make test` lists (0: all).
DURATIONS ?= 25

.PHONY: run test check check-defs lint typecheck fast-tests pytest install tools bench faults screenshots clean

# `install_with VENV ARGS`: uv into that venv's interpreter, pip if uv is missing or fails.
define install_with
	@if [ -x $(UV) ] && $(UV) pip install --quiet --python $(1)/bin/python $(2); then :; else \
	  echo "uv missing or failed: installing with pip"; \
	  [ -x $(1)/bin/pip ] || $(1)/bin/python -m ensurepip --upgrade --default-pip >/dev/null; \
	  $(1)/bin/pip install $(PIP_FLAGS) $(2); fi
endef

# Tried once per venv (the marker): an old .venv gets uv too; without network it stays on pip.
$(VENV)/.uv/.tried:
	-$(PYTHON) -m pip install $(PIP_FLAGS) --target $(VENV)/.uv -c constraints.txt uv
	mkdir -p $(VENV)/.uv && touch $@

# `uv venv --seed` keeps pip in the venv (for a one-off `.venv/bin/pip install`).
$(VENV)/bin/python: | $(VENV)/.uv/.tried
	@if [ -x $(UV) ] && $(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV); then :; \
	  else echo "uv missing or failed: python -m venv"; $(PYTHON) -m venv $(VENV); fi

# The marker: reinstall only when the pins change (uv then installs just the difference).
$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python $(VENV)/.uv/.tried
	$(call install_with,$(VENV),-c constraints.txt -e '.[dev]')
	touch $@

# checkov pins an older boto3, so it lives in a venv of its own (docs/design.md §6).
$(TOOLS)/.installed: requirements-tools.txt | $(VENV)/.uv/.tried
	@if [ -x $(UV) ]; then $(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(TOOLS); \
	  else $(PYTHON) -m venv $(TOOLS); fi
	$(call install_with,$(TOOLS),--no-deps -r requirements-tools.txt)
	touch $@

install: $(VENV)/.installed

# Python caches bytecode for every recipe, even where PYTHONDONTWRITEBYTECODE is set (this machine;
# the Dockerfile sets it): uv compiles nothing at install, so without a cache every process the
# tests start (each `sales-ops` call, emulator, stand-in and Dagster process) compiled moto, boto3
# and dagster from source again (a CLI call 2.6 s instead of 1.1 s). Each module is compiled once,
# on its first import: cheaper than compiling every installed package up front (docs/design.md §6).
unexport PYTHONDONTWRITEBYTECODE

tools: $(TOOLS)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# Over both cores too: the tier is CPU-bound (imports of Dagster and boto3 in each case's process).
fast-tests: install
	$(VENV)/bin/python -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadscope

# The type check (~15 s of CPU without its cache, two processes) and the tests side by side.
check: install
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck fast-tests

# `dg check defs`: the code location loads and every definition validates (dagster-dg-cli).
check-defs: install
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dg check defs --use-active-venv

# Both tiers, a worker more than cores. Exit 5 (nothing collected) is a failure too, said in one line.
pytest: install tools
	@$(VENV)/bin/python -m pytest -n $(SUITE_WORKERS) --dist loadscope --durations=$(DURATIONS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; exit $$rc

test: install tools
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck check-defs
	$(MAKE) --no-print-directory pytest

run: install
	./scripts/run_local.sh

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

# Fault suite (issue 11): kills, throttling, poison, full disk on a private stack; prints the table.
faults: install
	$(VENV)/bin/python bench/faults.py

# The README's pictures (docs/*.png) and docs/asset-graph.keys.txt, from a private stack (a few min).
screenshots: install
	$(VENV)/bin/python scripts/screenshot_automation.py --all

clean:
	-$(VENV)/bin/sales-ops local down
	rm -rf .sales-ops
