# make index MODEL=splade-tiny DATASET=../shared/data/beir-scifact [BACKEND=numba|lucene] [OUT=outputs]
# Encodes into $(OUT)/encoded/<model>/<corpus> (resumable) and builds $(OUT)/index/<model>/<corpus>
# (numba) or <corpus>-lucene. <corpus> is msmarco-passage for every MS MARCO / TREC DL id (one corpus, one
# index), else the dataset's slug: the evaluation targets (mk/evaluation.mk) look for indexes there.
BACKEND ?= numba
index_slug = $(shell printf '%s' '$(1)' | sed -e 's#^\(\.\{1,2\}/\)*##' -e 's#[^A-Za-z0-9._-]\{1,\}#-#g' -e 's#^-##' -e 's#-$$##')
CORPUS_SLUG = $(if $(filter msmarco-passage/%,$(DATASET)),msmarco-passage,$(call index_slug,$(DATASET)))
ENCODED_DIR = $(OUT)/encoded/$(call index_slug,$(MODEL))/$(CORPUS_SLUG)
INDEX_PATH = $(OUT)/index/$(call index_slug,$(MODEL))/$(CORPUS_SLUG)$(if $(filter lucene,$(BACKEND)),-lucene,)
RUN_PATH = $(OUT)/eval/$(call index_slug,$(MODEL))/$(call index_slug,$(DATASET))$(if $(filter lucene,$(BACKEND)),-lucene,).trec

.PHONY: index encode retrieve
encode: $(STAMP)
	$(SPLADE) encode --model $(MODEL) --dataset $(DATASET) --output $(ENCODED_DIR)

index: encode
	$(SPLADE) index --encoded $(ENCODED_DIR) --output $(INDEX_PATH) --backend $(BACKEND) --overwrite

retrieve: $(STAMP)
	$(SPLADE) retrieve --model $(MODEL) --dataset $(DATASET) --index $(INDEX_PATH) --backend $(BACKEND) --output $(RUN_PATH)
