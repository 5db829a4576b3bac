# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
# pytest-xdist workers: one per core (CI has 2).
WORKERS ?= auto

.PHONY: demo test test-all bench docs clean

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

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(WORKERS)

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(WORKERS) -m "slow or not slow"

bench: $(VENV)/.installed
	$(PY) -m benchmarks.activations
	@for b in benchmarks/*.py; do \
	  m=$$(basename $$b .py); \
	  case $$m in __init__|activations|common) ;; *) $(PY) -m benchmarks.$$m || exit 1;; esac; \
	done

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PIP) install -e ".[docs]"
	touch $@

# The documentation site (not a set-up command): site/, built offline, strict.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) results .pytest_cache site
