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

# make bench-scale: MS MARCO-sized synthetic encoded folders (1M, 3M, 8,841,823 passages, 128 non-zeros each),
# `splade index` on each under /usr/bin/time (peak memory, time), searched with the 6,980 MS MARCO dev queries
# (splade-tiny) and synthetic light / heavy queries; the peers that take the corpus in memory at 1M.
# Disk: 8.7 GiB of shards (8.84M; the smaller folders hard-link them) + 5.1 GiB for the 8.84M index. Never in make test.
#   make bench-scale SCALE_SIZES="1000000 8841823"    the sizes to run (each: generate, build, search)
#   make bench-scale SCALE_PEERS=numba,scipy,pisa-maxscore SCALE_PEER_SIZES=1000000
#   make bench-scale SCALE_FULL_PEERS=scipy SCALE_FULL_PEER_SIZES=8841823   the peers that fit at full size (scipy:
#                                                     17.8 GiB at 8.84M; numba and PISA would need 24 and 37 GiB)
#   make bench-scale SCALE_COMPARE_SIZES=1000000     build time against PISA's, back to back in one run (PISA takes
#                                                     the corpus in memory: 4.3 GiB at 1M, about 38 GiB at 8.84M)
SCALE_SIZES ?= 1000000 3000000 8841823
SCALE_PEERS ?= numba,scipy,pisa-maxscore
SCALE_PEER_SIZES ?= 1000000
SCALE_COMPARE_SIZES ?= 1000000
SCALE_FULL_PEERS ?= scipy
SCALE_FULL_PEER_SIZES ?= 8841823

.PHONY: bench-scale
bench-scale: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	for n in $(SCALE_SIZES); do \
		$(PY) -m benchmarks.scale generate --docs $$n && \
		$(PY) -m benchmarks.scale build --docs $$n && \
		$(PY) -m benchmarks.scale search --docs $$n || exit 1; \
	done
	for n in $(SCALE_COMPARE_SIZES); do $(PY) -m benchmarks.scale compare --docs $$n || exit 1; done
	for n in $(SCALE_PEER_SIZES); do $(PY) -m benchmarks.scale peers --docs $$n --systems $(SCALE_PEERS) || exit 1; done
	for n in $(SCALE_FULL_PEER_SIZES); do \
		$(PY) -m benchmarks.scale peers --docs $$n --systems $(SCALE_FULL_PEERS) || exit 1; done
	$(PY) -m benchmarks.scale table
