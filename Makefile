# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
# pytest-xdist workers: one per core (CI has 2).
WORKERS ?= auto

.PHONY: demo test test-all lint fmt bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[experiments]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m experiments.demo

# Lint (ruff), format check (ruff) and type check (pyright, basic mode, actfx/) come first:
# any of them failing fails `make test`.
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright --pythonpath $(PY)

# One test file per worker at a time, the expensive files first (tests/conftest.py): a file's
# fixtures and shared compiles run once, not once per worker.
DIST := --dist loadfile --no-loadscope-reorder

test: lint
	$(PY) -m pytest -n $(WORKERS) $(DIST)

# The deep suite also runs with XLA's full optimisation (the default test run skips most of
# it to compile faster; tests/conftest.py), i.e. the configuration users run.
test-all: lint
	ACTFX_TEST_FULL_OPT=1 $(PY) -m pytest -n $(WORKERS) $(DIST) -m "slow or not slow"

# Fix what can be fixed: ruff's safe lint fixes, then the formatter.
fmt: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed
	$(PY) -m benchmarks.activations
	$(PY) -m benchmarks.accelerator --quick
	@for b in benchmarks/*.py; do \
	  m=$$(basename $$b .py); \
	  case $$m in __init__|activations|common|timing|accelerator) ;; *) $(PY) -m benchmarks.$$m || exit 1;; esac; \
	done

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PIP) install -e ".[docs]"
	touch $@

# The documentation site (not a set-up command): site/, built offline, strict.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) results .pytest_cache site
