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
BACKEND ?= numba
INDEX_DIR ?= $(OUT)/index
EVAL_DIR ?= $(OUT)/eval

# Every output path comes from pipelines/layout.py, the one slug rule the CLI uses too (`.hidden`, `my.model.`,
# `../x/y` land where Python puts them). LAYOUT prints `key=path` lines for one model and dataset (keys: encoded,
# index, run, metrics, flops, work, compare, model_slug, dataset_slug); shell loops `eval` them, and
# $(call layout_of,MODEL,DATASET,KEY[,BACKEND]) picks one in a recipe. It is a small standard-library program,
# not `splade paths`, because the `splade` CLI imports torch (seconds) and a target asks several times.
LAYOUT = $(PY) -m pipelines.layout --out '$(OUT)' --index-root '$(INDEX_DIR)' --eval-root '$(EVAL_DIR)'
layout_of = $(or $(patsubst $(3)=%,%,$(filter $(3)=%,$(shell $(LAYOUT) --model '$(1)' --dataset '$(2)' \
  --backend '$(or $(4),numba)'))),$(error no $(3) path from `$(LAYOUT) --model '$(1)' --dataset '$(2)'`; is $(PY) installed? (make install)))

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
	@echo "$(PY) -m pipelines.layout --model M --dataset D   where these targets put M's outputs on D"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and alone: the CPU build; a bare `torch` requirement would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(SPLADE) demo --model $(MODEL) --dataset $(DATASET) --output $(call layout_of,$(MODEL),$(DATASET),work)

-include mk/*.mk
