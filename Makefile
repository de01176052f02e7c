# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean chromium

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

test: $(DEV) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The report test opens report.html in headless Chromium (Debian's package). Installed
# only when missing and apt-get exists (as root, or through sudo without a password);
# without it that one test is skipped, with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	    $$SUDO apt-get install -y chromium || \
	    { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; } || \
	    echo "make: chromium not installed: the report's browser test will be skipped"; }

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .  # README.md's Python blocks too

bench: $(DEV)
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,mean,rounds -p no:randomly

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
