# The two commands of the README. Both create .venv and install what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 installs from local disk on our machines. On a GPU machine
# set TORCH_SPEC to any CUDA build, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# What the demo needs: stateline and its dependencies, no extras (tests/cli/test_demo.py).
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck pytest bench clean

demo: $(DEMO_STAMP)
	$(BIN)/stateline demo --output demo-output

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/data.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/stream.py --seconds 0.5
	$(BIN)/python bench/anomaly.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/kafka.py
	$(BIN)/python bench/online.py
	$(BIN)/python bench/online_stall.py

$(DEMO_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP) $(DEMO_STAMP)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
