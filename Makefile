# Every target creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/option-pricing
	$(VENV)/bin/tessera validate examples/option-pricing.toml
	$(VENV)/bin/tessera run examples/option-pricing.toml

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/montecarlo.py
	$(PY) benchmarks/engine.py

lint: $(STAMP)
	$(VENV)/bin/ruff check engine kernels tests benchmarks
	$(VENV)/bin/ruff format --check engine kernels tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs build *.egg-info
