# make bench: the impact index against its peers on identical vectors (never part of make test).
#   make bench                                  1M synthetic docs + the TREC DL 2019 pool (splade-tiny), all peers
#   make bench BENCH_DOCS=100000                a quicker run
#   make bench BENCH_SKIP=seismic,bmp           leave slow peers out (they are then absent from the table)
# Needs the benchmark extra: pip install -e '.[bench]' (pyterrier-pisa, bmp, pyseismic-lsr, kannolo).
BENCH_DOCS ?= 1000000
BENCH_QUERIES ?= 500
BENCH_TIMED ?= 200
BENCH_SKIP ?=
BENCH_ARGS ?=
BENCH_OUT ?= benchmarks/results

.PHONY: bench
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.bench --docs $(BENCH_DOCS) --queries $(BENCH_QUERIES) --timing-queries $(BENCH_TIMED) \
		--skip '$(BENCH_SKIP)' --output $(BENCH_OUT) $(BENCH_ARGS)
