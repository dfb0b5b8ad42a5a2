# gapsvm: the user's path is `make features` then `make train`; `make demo` does it all.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
GAPSVM := $(BIN)/gapsvm

DATA     ?= ../shared/data/persons/train
OUT      ?= out
SIZE     ?= 128x64
FEATURES ?= $(OUT)/features.joblib
MODEL    ?= $(OUT)/model.skops
CLASSIFIER ?= linearsvc
IMAGES   ?= $(DATA)
DEMO_OUT ?= demo_out

.PHONY: help install weights features train cam demo test test-fast lint bench clean

help:
	@echo "make demo      set everything up from nothing and run the demo (offline)"
	@echo "make test      run the test suite"
	@echo "make test-fast the pure-core tests: no TensorFlow, no data, no weights (< 1 min)"
	@echo "make lint      ruff and the layer contracts (import-linter)"
	@echo "make features  DATA=folder [SIZE=128x64] [FEATURES=out/features.joblib]"
	@echo "make train     [FEATURES=...] [MODEL=out/model.skops] [CLASSIFIER=linearsvc]"
	@echo "make cam       [MODEL=...] [IMAGES=...] -> $(OUT)/cam/*.png"
	@echo "make bench     speed and memory ratios (benchmarks/README.md)"

# The virtualenv is rebuilt only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[offline,demo,dev,dask]'
	touch $@

install: $(VENV)/.installed

weights: install
	$(GAPSVM) weights install

features: weights
	$(GAPSVM) features $(DATA) --input-size $(SIZE) --out $(FEATURES)

train: install
	$(GAPSVM) train $(FEATURES) --classifier $(CLASSIFIER) --out $(MODEL)

cam: install
	$(GAPSVM) cam $(MODEL) $(IMAGES) --out $(OUT)/cam

demo: weights
	$(GAPSVM) demo --out $(DEMO_OUT)

# The notebook runs too (nbmake): CI fails if any of its cells fails.
test: weights
	$(BIN)/python -m pytest -q tests notebooks/quickstart.ipynb --nbmake

# Deselects what needs the network, the real data or the weights; tests/conftest.py fails the
# run if TensorFlow was imported all the same.
FAST_MARKERS := not slow and not needs_data and not needs_weights
test-fast: install
	$(BIN)/python -m pytest -q tests -m "$(FAST_MARKERS)"

# The layers (docs/architecture.md) are a contract: an upward import fails here.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache

# BENCH_ARGS=--full adds 10,000 images and the input-pipeline comparison; --quick is smaller.
bench: weights
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(OUT) $(DEMO_OUT) .pytest_cache .ruff_cache
