# Training targets.
#   make train PRESET=F                       a preset (A-F or another row: `$(SPLADE) train --list-presets`) on MS MARCO
#   make train PRESET=F NPROC=4               the same, data-parallel on 4 GPUs (torchrun)
#   make train MODEL=... DATASET=folder       fine-tune MODEL on a folder with train-queries.tsv, train-qrels.txt
#   make train PRESET=F TRAIN_ARGS="--max-steps 1000 --lambda-q 0.02 --resume"   any setting overridden
#   make train-scifact                        the CPU proof: splade-tiny on SciFact train, NDCG@10 / FLOPS before and after
PRESET ?=
NPROC ?= 1
TRAIN_ARGS ?=
SCIFACT ?= ../shared/data/beir-scifact
TRAIN_LAUNCH = $(if $(filter-out 1,$(NPROC)),$(PY) -m torch.distributed.run --nproc_per_node $(NPROC) -m pipelines,$(SPLADE))

.PHONY: train train-scifact

train: $(STAMP)
ifeq ($(PRESET),)
	$(TRAIN_LAUNCH) train --model $(MODEL) --dataset $(DATASET) --output $(OUT)/train-$(notdir $(MODEL)) $(TRAIN_ARGS)
else
	$(TRAIN_LAUNCH) train --preset $(PRESET) --output $(OUT)/train-$(PRESET) $(TRAIN_ARGS)
endif

train-scifact: $(STAMP)
	$(SPLADE) train --model splade-tiny --dataset $(SCIFACT) --output $(OUT)/train-scifact --max-length 128 \
		--batch-size 16 --learning-rate 1e-4 --warmup-steps 5 --logging-steps 4 --save-steps 16 --evaluate $(TRAIN_ARGS)
