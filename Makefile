# Two commands for a fresh machine: `make run` and `make test`. Only python3 (>= 3.11) and make
# are needed; everything else is installed into .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config.example.yaml
# Where `make run` listens: `make run PORT=9000`, `make run HOST=0.0.0.0` (every interface).
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run test lint format bench screenshots docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kabarin serve --config $(CONFIG) --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Three workers on two cores: most end-to-end time is spent waiting on servers and peers. One
# file's tests stay in one worker, so a module's shared server or browser is started once.
test: lint
	$(BIN)/pytest -n 3 --dist loadfile

# The site, from docs/ (the reference pages are written from the code as it builds), into site/.
# Offline: nothing is fetched, and the site loads nothing from another host.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

screenshots: $(STAMP)
	KABARIN_SCREENSHOTS=docs/images $(BIN)/pytest -q tests/e2e/test_ui.py tests/e2e/test_ui_couriers.py tests/e2e/test_tracking_page.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# About 10 minutes on 2 cores. bench/ingest.py runs bench/store_floor.py itself, as the sustained ceiling.
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/deliver.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/replicas.py
	$(BIN)/python bench/tracking_page.py
	$(BIN)/python bench/insights.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis *.egg-info site
