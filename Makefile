# The README's two commands: `make demo` (pipeline on embedded defaults) and `make test` (the test suite).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test bench lint clean services stack repro doctor lock lock-check

install: $(VENV)/.installed

# pip is upgraded first: the bundled pip 23 spends ~9 min backtracking through this dependency set.
# constraints.txt pins every package (torch 2.14.1 / torchvision 0.29.1 come from local disk on these machines).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: install
	$(BIN)/pfp run-all --demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

# uv.lock follows constraints.txt (the source of truth): re-run after changing a dependency or a pin.
lock: install
	$(BIN)/python scripts/sync_pins.py lock

# Is uv.lock current (pyproject.toml) and equal to constraints.txt? Reads metadata only, downloads nothing.
lock-check: install
	$(BIN)/uv lock --check
	$(BIN)/python scripts/sync_pins.py check

lint: install
	$(BIN)/ruff check src tests benchmarks scripts steps

# The production topology without Docker (PostgreSQL + moto S3 + MLflow server on loopback); Ctrl-C stops it.
stack: install
	scripts/local-stack.sh

# The pipeline as DVC stages (dvc.yaml); the stages call `pfp`, so the venv's bin goes first on PATH.
repro: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

doctor: install
	$(BIN)/pfp doctor

clean:
	rm -rf .pfp dataset runs data reports .pytest_cache
