# `make setup` once, then `make demo` (the main job) and `make test`. Everything installs into .venv (the same venv Pulumi uses).
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint fmt bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

# The main job end to end: a throwaway OpenBao, the local stack deployed, verify. KEEP=1 keeps the server up.
demo: setup
	$(PYTHON) -m components demo $(if $(KEEP),--keep)

test: setup
	$(PYTHON) -m pytest $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

fmt: setup
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

bench: setup
	$(PYTHON) bench/cli_startup.py
	$(PYTHON) bench/program_scale.py
	$(PYTHON) bench/verify_throughput.py
	$(PYTHON) bench/migrate_cli_calls.py
	$(PYTHON) bench/run_check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
