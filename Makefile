# artjax: `make run` trains the default offline job; `make test` runs the test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/digits
STAMP := $(VENV)/.installed

.PHONY: run test test-slow install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py train --config=configs/gan.py:digits --workdir=$(WORKDIR)
	$(BIN)/python run.py sample --workdir=$(WORKDIR) --num=100 --out=$(WORKDIR)/samples.npz --grid=$(WORKDIR)/samples.png

test: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest tests -m slow

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/throughput.py --vs-torch

clean:
	rm -rf $(VENV) runs *.egg-info
