# make lucene-compare [MODEL=splade-tiny] [DATASET=../shared/data/beir-scifact] [OUT=outputs]
# Builds the numba and the Lucene index from one encoded corpus, checks that every query gets the same top-k
# (documents, scores, order) from both, and writes sizes, build times and latencies to figures.json under
# $(OUT)/lucene-compare/<model>-<dataset> (pipelines/layout.py).
# The index itself: make index BACKEND=lucene; a run from it: make retrieve BACKEND=lucene (mk/index.mk).
LUCENE_COMPARE_DATASET = $(if $(or $(findstring command,$(origin DATASET)),$(findstring environment,$(origin DATASET))),$(DATASET),../shared/data/beir-scifact)

.PHONY: lucene-compare
lucene-compare: $(STAMP)
	$(SPLADE) lucene-compare --model $(MODEL) --dataset $(LUCENE_COMPARE_DATASET) \
	  --output $(call layout_of,$(MODEL),$(LUCENE_COMPARE_DATASET),compare)
