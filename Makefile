PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONUNBUFFERED := 1

.PHONY: test bench bench-smoke lint docs examples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench,test,docs]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the CLI smoke run CI makes so that `rlmetric bench` cannot rot
bench-smoke: $(STAMP)
	$(BIN)/rlmetric bench --quick --tasks cancer-f1 --seeds 1 --out bench_smoke

lint: $(STAMP)
	$(BIN)/ruff check rlmetric tests examples benchmarks

# the API reference and guide, into site/; warnings are errors (mkdocs.yml: strict)
docs: $(STAMP)
	mkdir -p docs/results && cp benchmarks/results/*.png docs/results/
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/rlmetric bench --quick --out bench_quick

examples: $(STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/custom_metric.py
	$(BIN)/python examples/shortest_path.py
	$(BIN)/python examples/multilabel_f1.py
	$(BIN)/python examples/segmentation_iou.py
	$(BIN)/python examples/ranking_ndcg.py
	$(BIN)/python examples/cartpole.py
	$(BIN)/python examples/metric_env.py
	$(BIN)/python examples/perceptron_network.py

clean:
	rm -rf $(VENV) build *.egg-info
