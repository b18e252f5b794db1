# `make demo` and `make test` set everything up themselves: a .venv with mlp and its dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ROWS ?= 20000
export DVC_NO_ANALYTICS := 1

.PHONY: install demo test bench repro clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# A new project from the bundled churn sample, in the git-ignored folder demo/, run end to end.
demo: install
	rm -rf demo
	$(BIN)/mlp init demo --rows $(DEMO_ROWS)
	cd demo && ../$(BIN)/mlp repro

test: install
	$(BIN)/python -m pytest -q

# This repository's own reference pipeline: the raw sample is regenerated (same bytes as data/raw/churn.csv.dvc).
repro: install
	$(BIN)/mlp sample churn --rows 10000 -o data/raw/churn.csv
	$(BIN)/mlp repro

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf demo bench/out .pytest_cache
