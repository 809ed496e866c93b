# GEAR: the two commands a newcomer needs are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= gear-results
# Model files (e.g. YAMNet TFLite): $GEAR_MODELS_DIR, else ../shared/models when it exists.
GEAR_MODELS_DIR ?= $(abspath $(wildcard ../shared/models))
export GEAR_MODELS_DIR
STAMP := $(VENV)/.gear-installed

.PHONY: run test test-fast venv browser bench clean

$(STAMP): setup.cfg setup.py requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium drives the report's browser test (the project never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

run: $(STAMP)
	$(VENV)/bin/gear run --out $(OUT)

test: $(STAMP) browser
	$(PY) -m pytest -ra

test-fast: $(STAMP)
	$(PY) -m pytest -ra -m "not slow and not browser"

bench: $(STAMP)
	$(PY) benchmarks/run_benchmarks.py

clean:
	rm -rf $(VENV) build *.egg-info
