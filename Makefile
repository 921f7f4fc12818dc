# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates or reuses .venv; installing is skipped while pyproject.toml is unchanged.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SPLADE := $(PY) -m pipelines
STAMP := $(VENV)/.installed
MODEL ?= splade-tiny
DATASET ?= demo
OUT ?= outputs

.PHONY: install test demo help
.DEFAULT_GOAL := help

help:
	@echo "make demo     splade-tiny end to end on the embedded collection (DATASET=... for another)"
	@echo "make test     the test suite"
	@echo "make index    encode DATASET with MODEL and build its index (BACKEND=numba|lucene)"
	@echo "make train    train a preset (PRESET=A..F) or fine-tune MODEL on DATASET"
	@echo "make retrieve run the queries of DATASET against the index of MODEL (BACKEND=numba|lucene)"
	@echo "make eval-msmarco / eval-trec / eval-beir   retrieve where the run is missing, then score (MODEL=, DATASET=, INDEX=)"
	@echo "make ensemble MODELS=\"B E F\"   fuse the runs of several models (normalised per query, summed)"
	@echo "make flops    FLOPS and mean non-zeros of MS MARCO dev queries against MODEL's index"
	@echo "make results-table   every metrics.json under outputs/eval into results.md, .csv and .png"
	@echo "make bench    speed benchmark of the index against its peers (long)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and alone: the CPU build; a bare `torch` requirement would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(SPLADE) demo --model $(MODEL) --dataset $(DATASET)

-include mk/*.mk
