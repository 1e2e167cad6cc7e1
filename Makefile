# Two commands: `make run` and `make test`. Each installs what is missing first.
# `make check` is the fast tier: lint, type check and every test that needs no emulator (< 1 min).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TOOLS := .venv-tools
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: run test check check-defs lint typecheck fast-tests install tools bench faults clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	touch $@

# checkov pins an older boto3, so it lives in a venv of its own (docs/design.md §6).
$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_FLAGS) --no-deps -r requirements-tools.txt
	touch $@

install: $(VENV)/.installed

tools: $(TOOLS)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

fast-tests: install
	$(VENV)/bin/python -m pytest -q -m "not slow"

# The type check (~35 s of CPU without its cache) and the tests run side by side on two cores.
check: install
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck fast-tests

# `dg check defs`: the code location loads and every definition validates (dagster-dg-cli).
check-defs: install
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dg check defs --use-active-venv

test: install tools lint typecheck check-defs
	$(VENV)/bin/python -m pytest

run: install
	./scripts/run_local.sh

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

# Fault suite (issue 11): kills, throttling, poison, full disk on a private stack; prints the table.
faults: install
	$(VENV)/bin/python bench/faults.py

clean:
	-$(VENV)/bin/sales-ops local down
	rm -rf .sales-ops
