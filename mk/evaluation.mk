# Evaluation targets: score runs as the official tools do, fuse them, and build the results table.
#
#   make eval-msmarco MODEL=...            MS MARCO dev/small: MRR@10, R@1k
#   make eval-trec    MODEL=...            TREC DL 2019 and 2020: NDCG@10, R@1k (rel >= 2)
#   make eval-beir    MODEL=... BEIR="scifact nfcorpus"   BEIR NDCG@10
#   make ensemble     MODELS="B E F"       fuse the runs of those models (FUSION=normalized|rrf|combsum..., WEIGHTS=)
#   make flops        MODEL=...            FLOPS and mean non-zeros of MS MARCO dev queries against the index
#   make results-table                      every metrics.json under EVAL_DIR -> results.md, .csv, .png
#
# DATASET= (one or several, names or local folders) replaces the default datasets of a target; INDEX= names the
# index to retrieve from when a run is missing. A run already at $(EVAL_DIR)/<model>/<dataset>.trec is reused.
# Every path comes from pipelines/layout.py (LAYOUT in the Makefile), the same rule as mk/index.mk's.

.PHONY: eval-msmarco eval-trec eval-beir ensemble flops results-table

MSMARCO_DEV ?= msmarco-passage/dev/small
TREC_DL ?= msmarco-passage/trec-dl-2019/judged msmarco-passage/trec-dl-2020/judged
BEIR ?= scifact nfcorpus fiqa arguana scidocs
MODELS ?= $(MODEL)
FUSION ?= normalized
WEIGHTS ?=

# Was the variable given by the user (command line or environment) rather than by a Makefile default?
eval_user_set = $(or $(findstring command,$(origin $(1))),$(findstring environment,$(origin $(1))))
eval_datasets_or = $(if $(call eval_user_set,DATASET),$(DATASET),$(1))
eval_empty :=
eval_space := $(eval_empty) $(eval_empty)

# $(call eval_datasets,DATASETS,CONVENTION): retrieve where the run is missing, then score every dataset.
# The index of an MS MARCO id is the MS MARCO passage index; of a local folder or BEIR set, its own.
define eval_datasets
	@set -e; for d in $(1); do \
	  paths=$$($(LAYOUT) --model '$(MODEL)' --dataset "$$d"); eval "$$paths"; \
	  $(if $(call eval_user_set,INDEX),index='$(INDEX)';) \
	  if [ ! -s "$$run" ]; then \
	    if [ ! -e "$$index" ]; then \
	      echo "error: no run at $$run and no index at $$index to make it." >&2; \
	      echo "  build the index:  make index MODEL=$(MODEL) DATASET=<the corpus of $$d>   (or pass INDEX=<folder>)" >&2; \
	      echo "  or put a TREC run at $$run" >&2; \
	      echo "  offline, ir_datasets ids cannot be fetched: point DATASET= at local folders, e.g." >&2; \
	      echo "  DATASET=../shared/data/trec-dl-2019 (a pooled subset: never report it as the official figure)" >&2; \
	      exit 2; \
	    fi; \
	    echo "== retrieving $$d with $(MODEL) from $$index"; \
	    $(SPLADE) retrieve --model "$(MODEL)" --dataset "$$d" --index "$$index" --output "$$run"; \
	  fi; \
	  echo "== $$d ($$run)"; \
	  $(SPLADE) evaluate --run "$$run" --dataset "$$d" --convention $(2) --name "$(MODEL)" --model "$(MODEL)" \
	    --output "$$metrics"; \
	done
	@echo "make results-table collects every figure under $(EVAL_DIR) into one table."
endef

eval-msmarco: $(STAMP)
	$(call eval_datasets,$(call eval_datasets_or,$(MSMARCO_DEV)),msmarco)

eval-trec: $(STAMP)
	$(call eval_datasets,$(call eval_datasets_or,$(TREC_DL)),trec-dl)

eval-beir: $(STAMP)
	$(call eval_datasets,$(call eval_datasets_or,$(addprefix beir/,$(BEIR))),beir)

ENSEMBLE_NAME = ensemble $(subst $(eval_space),+,$(strip $(shell $(LAYOUT) --slug $(MODELS))))

# Fuse, per dataset, the runs the models in MODELS left under EVAL_DIR; a dataset none of them has is skipped.
ensemble: $(STAMP)
	@test $(words $(MODELS)) -ge 2 || { echo 'error: give two or more models: make ensemble MODELS="B E F"' >&2; exit 2; }
	@set -e; done_any=; for d in $(call eval_datasets_or,$(MSMARCO_DEV) $(TREC_DL)); do \
	  runs=; missing=; \
	  for m in $(MODELS); do \
	    paths=$$($(LAYOUT) --model "$$m" --dataset "$$d"); eval "$$paths"; \
	    if [ -s "$$run" ]; then runs="$$runs $$run"; else missing="$$missing $$m"; fi; \
	  done; \
	  if [ -z "$$runs" ]; then echo "-- $$d: no run of $(MODELS) yet, skipped"; continue; fi; \
	  if [ -n "$$missing" ]; then \
	    echo "error: $$d has no run of:$$missing (looked for $(EVAL_DIR)/<model>/$$dataset_slug.trec)." >&2; \
	    echo "  make them first, e.g. make eval-trec MODEL=<model> DATASET=$$d" >&2; exit 2; \
	  fi; \
	  echo "== $(ENSEMBLE_NAME) on $$d ($(FUSION))"; \
	  paths=$$($(LAYOUT) --model '$(ENSEMBLE_NAME)' --dataset "$$d"); eval "$$paths"; \
	  $(SPLADE) fuse --run $$runs --method $(FUSION) $(if $(WEIGHTS),--weights $(WEIGHTS)) --dataset "$$d" \
	    --name "$(ENSEMBLE_NAME)" --output "$$run"; \
	  done_any=1; \
	done; \
	test -n "$$done_any" || { echo "error: none of $(MODELS) has a run under $(EVAL_DIR): run make eval-trec MODEL=... first" >&2; exit 2; }

FLOPS_QUERIES ?= $(MSMARCO_DEV)

flops: $(STAMP)
	$(SPLADE) flops --model "$(MODEL)" --dataset "$(FLOPS_QUERIES)" \
	  --index "$(if $(call eval_user_set,INDEX),$(INDEX),$(call layout_of,$(MODEL),$(MSMARCO_DEV),index))" \
	  --name "$(MODEL)" --output $(call layout_of,$(MODEL),$(MSMARCO_DEV),flops)

results-table: $(STAMP)
	$(SPLADE) table --metrics $(EVAL_DIR) --output $(EVAL_DIR)/results
