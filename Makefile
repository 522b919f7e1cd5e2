# Two entry points (see README): `make run` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/nclab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch is pinned explicitly: a bare `torch` would pull the newest CUDA build (several GB)
	$(BIN)/pip install "torch==2.13.0" -e ".[dev]"
	touch $(BIN)/nclab

run: $(BIN)/nclab
	$(BIN)/nclab run --out results

test: $(BIN)/nclab
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results
