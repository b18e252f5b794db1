# `make demo` and `make test` set everything up themselves: a .venv with mlp and its dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# mlp's dependencies (and its serve extra) as wheels (not mlp itself): the CI-steps test installs a fresh venv from this folder and the
# project's freshly built wheel, and from nothing else, as a runner would. Refreshed when pyproject.toml changes.
WHEELHOUSE := $(VENV)/wheelhouse
DEMO_ROWS ?= 20000
export DVC_NO_ANALYTICS := 1

.PHONY: install wheelhouse sysdeps demo test bench repro clean

# requirements.lock (`mlp lock`): this repository's own pipeline runs with the versions it pins, as a project's CI does.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' -c requirements.lock
	touch $(STAMP)

install: $(STAMP)

$(WHEELHOUSE)/.ready: pyproject.toml requirements.lock $(STAMP)
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip wheel -q -w $(WHEELHOUSE) '.[serve]' -c requirements.lock
	rm -f $(WHEELHOUSE)/mlp_pipeline-*.whl
	touch $@

wheelhouse: $(WHEELHOUSE)/.ready

# Debian packages the tests need beyond Python's (each package's name is also its command's): chromium opens
# the monitor's HTML report headless; wrk loads `mlp serve` (tests/test_serving_health.py); postgresql is the
# server of tests/test_database.py and bench/database.py (its commands live in /usr/lib/postgresql/*/bin, off
# the PATH: checked there). Installed when missing and root; otherwise the line says what to install.
SYSDEPS := chromium wrk postgresql

sysdeps:
	@missing=""; for p in $(SYSDEPS); do command -v $$p >/dev/null 2>&1 || ls /usr/lib/$$p/*/bin/initdb >/dev/null 2>&1 \
		|| missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
		echo "make sysdeps: missing$$missing; install as root: apt-get install$$missing" >&2; \
	fi

# A new project from the bundled churn sample, in the git-ignored folder demo/, run end to end.
demo: install
	rm -rf demo
	$(BIN)/mlp init demo --rows $(DEMO_ROWS)
	cd demo && ../$(BIN)/mlp repro

# The suite in TEST_WORKERS parallel processes (pytest-xdist); TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: install wheelhouse sysdeps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# This repository's own reference pipeline: the raw sample is regenerated (same bytes as data/raw/churn.csv.dvc).
repro: install
	$(BIN)/mlp sample churn --rows 10000 -o data/raw/churn.csv
	$(BIN)/mlp repro

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf demo bench/out .pytest_cache
