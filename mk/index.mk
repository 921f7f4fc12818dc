# make index MODEL=splade-tiny DATASET=../shared/data/beir-scifact [BACKEND=numba|lucene] [OUT=outputs]
# Encodes into $(OUT)/encoded/<model>/<corpus> (resumable) and builds $(INDEX_DIR)/<model>/<corpus> (numba) or
# <corpus>-lucene; make retrieve writes $(EVAL_DIR)/<model>/<dataset>[-lucene].trec. <corpus> is msmarco-passage
# for every MS MARCO / TREC DL id (one corpus, one index), else the dataset's slug. pipelines/layout.py decides
# (see LAYOUT in the Makefile), so the evaluation targets (mk/evaluation.mk) find the indexes made here.
ENCODED_DIR = $(call layout_of,$(MODEL),$(DATASET),encoded,$(BACKEND))
INDEX_PATH = $(call layout_of,$(MODEL),$(DATASET),index,$(BACKEND))
RUN_PATH = $(call layout_of,$(MODEL),$(DATASET),run,$(BACKEND))

# NPROC=N: N encoding workers on this machine (--shard-id 0..N-1 --shard-num N), the cores shared among them
NPROC ?= 1

.PHONY: index encode retrieve
encode: $(STAMP)
	seq 0 $$(($(NPROC) - 1)) | OMP_NUM_THREADS=$$(( $$(nproc) / $(NPROC) > 0 ? $$(nproc) / $(NPROC) : 1 )) \
	  xargs -P $(NPROC) -I{} $(SPLADE) encode --model $(MODEL) --dataset $(DATASET) --output $(ENCODED_DIR) \
	  $(if $(filter-out 1,$(NPROC)),--shard-id {} --shard-num $(NPROC))

index: encode
	$(SPLADE) index --encoded $(ENCODED_DIR) --output $(INDEX_PATH) --backend $(BACKEND) --overwrite

retrieve: $(STAMP)
	$(SPLADE) retrieve --model $(MODEL) --dataset $(DATASET) --index $(INDEX_PATH) --backend $(BACKEND) --output $(RUN_PATH)
