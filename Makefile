# physiodiff: set-up, demo, tests, benchmarks. Everything runs inside .venv, created here.
# torch==2.13.0 is installed first (a CPU build is on these machines; an unpinned torch pulls CUDA),
# then the project, then k-diffusion with --no-deps (its own dependencies pull a torchvision that
# cannot load with CPU torch; only its sampling module is used, see diffusion/samplers/kdiff.py).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# glibc malloc tuning for large activations (docs/design.md section 9); the one place the project sets it
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296

.PHONY: help install demo test test-slow bench serve browser-deps clean

install: $(STAMP)

help:
	@echo "make install        create .venv and install the project"
	@echo "make demo           the shipped CTG model (models/ctg-4hz, if there): generate every pH class, plot"
	@echo "                    beside real test windows, evaluate; then train a tiny model (~8 min on 2 free cores)"
	@echo "make demo DEMO_TRAIN=0   only the shipped model's part (more knobs: tools/demo.sh's header)"
	@echo "make test           the test suite without slow tests (< 10 min on 2 cores); make test-slow: the rest"
	@echo "make bench          the benchmarks (bench/run_all.py)"
	@echo "make serve          the web app on the models under models/ (docs/serve.md)"
	@echo "make browser-deps   Chromium and its driver for the browser test"
	@echo "make clean          remove .venv"

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps k-diffusion==0.1.1.post1
	touch $(STAMP)

demo: install
	bash tools/demo.sh

test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m bench.run_all

# the web app on the models under models/ (docs/serve.md); more options: make serve SERVE_ARGS="--port 8080"
SERVE_ARGS ?=
serve: install
	@if [ -z "$$(find models -name '*.safetensors' -not -path '*/checkpoints/*' 2>/dev/null | head -n 1)" ]; then \
		echo "error: make serve: no trained models under models/ yet (put a model.safetensors in models/<name>/," \
		     "or run: $(PY) -m serve --models PATH/TO/model.safetensors)" >&2; exit 2; fi
	$(PY) -m serve --models models $(SERVE_ARGS)

# headless Chromium and its driver for the web app's browser test (tests/test_serve_browser.py, slow)
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver

clean:
	rm -rf $(VENV) .pytest_cache
