PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONUNBUFFERED := 1

.PHONY: test bench lint examples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench,test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check rlmetric tests examples benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/core_compare.py --quick

examples: $(STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/multilabel_f1.py
	$(BIN)/python examples/segmentation_iou.py
	$(BIN)/python examples/cartpole.py
	$(BIN)/python examples/metric_env.py

clean:
	rm -rf $(VENV) build *.egg-info
