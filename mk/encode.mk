# make bench-encoding: CPU encoding speed per precision against the plain torch loop, and SciFact NDCG@10 (long)
# make bench-gpu: GPU encoding speed of splade-tiny and a 66M BERT at 256 tokens against the hardware's limit
# make bench-gpu-smoke: the same script on the CPU with a few passages (checks that it runs)
.PHONY: bench-encoding bench-gpu bench-gpu-smoke
bench-encoding: $(STAMP)
	$(PY) -m benchmarks.encoding --ndcg

bench-gpu: $(STAMP)
	$(PY) -m benchmarks.gpu_encode --device cuda

bench-gpu-smoke: $(STAMP)
	$(PY) -m benchmarks.gpu_encode --device cpu --passages 2 --check 2
