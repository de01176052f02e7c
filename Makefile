# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/lakescore demo

test: $(DEV)
	$(BIN)/ruff check engine kernels cluster tests benchmarks
	$(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check engine kernels cluster tests benchmarks
	$(BIN)/ruff format --check engine kernels cluster tests benchmarks

bench: $(DEV)
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,mean,rounds -p no:randomly

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
