"""Encoding speed and effectiveness per precision, against the plain torch loop of ANCHORS.md, in one run.

    .venv/bin/python -m benchmarks.encoding [--docs 1000] [--abstracts 300] [--queries 200] [--ndcg]

Texts: the first --docs passages of ../shared/data/trec-dl-2019/corpus.jsonl and the first --abstracts SciFact
abstracts; single queries from TREC DL 2019. Every system encodes the same texts, rounds alternate between the
systems (the machine is shared: the best round of each counts), and the table gives docs/s, single-query p50 ms
and, with --ndcg, SciFact NDCG@10 through the project's own path (encode, index, retrieve, evaluate).

bf16 on a CPU without AVX512-BF16/AMX runs torch's reference kernels (tens of times slower than fp32), so there
its speed is measured on --bf16-docs texts only and its NDCG@10 is that of bf16 numerics emulated in fp32 (weights
and the projection's inputs rounded to bf16, products accumulated in fp32, as bf16 hardware does), labelled so.
On a CPU with bf16 instructions (oneDNN says so) bf16 is timed on every text and evaluated natively.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from contracts.datasets import read_corpus
from indexing import encoder as encoder_module
from indexing.encoder import SpladeEncoder, _Projection, _vocab_projection_removed, document_text, has_bf16_matmul
from pipelines.datasets import resolve_dataset
from pipelines.models import resolve_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class PlainLoop:
    """The baseline of ANCHORS.md: fp32, token-budget batches of up to 8,192 tokens, the MLM head over the packed
    real tokens of a batch into one reused buffer, then one max per document."""

    def __init__(self, encoder: SpladeEncoder, budget: int = 8192):
        self.encoder, self.budget = encoder, budget
        head = encoder.mlm.get_output_embeddings()
        self.weight_t, self.bias = head.weight.detach().t().contiguous(), head.bias.detach()
        self.buffer = torch.empty(budget, self.weight_t.shape[1])

    @torch.inference_mode()
    def encode(self, texts: list[str], max_length: int) -> sp.csr_matrix:
        enc = self.encoder
        features = enc.tokenizer(texts, truncation=True, max_length=max_length)
        lengths = np.asarray([len(x) for x in features["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        rows, start = [None] * len(texts), 0
        while start < len(order):
            take = max(1, self.budget // int(lengths[order[start]]))
            batch = order[start : start + take]
            start += take
            padded = enc.tokenizer.pad({k: [v[i] for i in batch] for k, v in features.items()}, return_tensors="pt")
            mask = padded["attention_mask"].bool()
            with _vocab_projection_removed(enc.mlm):
                hidden = enc.mlm(**padded).logits
            tokens = hidden[mask]
            logits = torch.addmm(self.bias, tokens, self.weight_t, out=self.buffer[: len(tokens)])
            offset = 0
            for row, n in zip(batch, mask.sum(1).tolist()):
                pooled = logits[offset : offset + n].amax(0).relu_().log1p_()
                rows[row] = sp.csr_matrix(pooled.numpy())
                offset += n
        return sp.vstack(rows, format="csr")


class EmulatedBf16Projection(_Projection):
    """bf16 numerics at fp32 speed: inputs and weights rounded to bf16, products accumulated in fp32."""

    def __init__(self, head, vocab_tile):
        super().__init__(head, "fp32", vocab_tile)
        self.weight_t = self.weight_t.bfloat16().float()
        self.bias = self.bias.bfloat16().float()

    def __call__(self, x, start, stop, out):
        return super().__call__(x.bfloat16().float(), start, stop, out).bfloat16().float()


def _one_thread_small(encoder: SpladeEncoder, texts, max_length):
    """encoder.encode with batches of at most 512 padded tokens (single queries) on one thread."""
    saved, encoder_module.SINGLE_THREAD_TOKENS = encoder_module.SINGLE_THREAD_TOKENS, 512
    try:
        return encoder.encode(texts, max_length)
    finally:
        encoder_module.SINGLE_THREAD_TOKENS = saved


def read_texts(path: Path, n: int) -> list[str]:
    """The first n documents of a corpus.jsonl as the encoder sees them (title and text, as Dataset.corpus())."""
    return [document_text(d.get("title"), d["text"]) for d in itertools.islice(read_corpus(path), n)]


def timed(encode, texts) -> float:
    started = time.perf_counter()
    encode(texts)
    return time.perf_counter() - started


def query_p50(encode, queries) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        encode([q])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def ndcg_scifact(encoder: SpladeEncoder, work: Path) -> float:
    from pipelines.workflows import evaluate_model  # the project's own encode -> index -> retrieve -> evaluate

    dataset = resolve_dataset(DATA / "beir-scifact")
    result = evaluate_model(encoder, dataset, work / "encoded", work / "index", work / "run.trec", convention="beir",
                            k=100, progress=False)
    return float(result.metrics["NDCG@10"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--abstracts", type=int, default=300)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bf16-docs", type=int, default=40, help="texts for the (slow on CPU) native bf16 timing")
    parser.add_argument("--precisions", default="fp32,int8,bf16")
    parser.add_argument("--ndcg", action="store_true", help="also SciFact NDCG@10 per precision (long)")
    parser.add_argument("--skip-speed", action="store_true", help="only the NDCG@10 (one process per precision)")
    parser.add_argument("--output", default="outputs/bench-encoding.json")
    parser.add_argument("--work", default="outputs/bench-encoding", help="encoded SciFact and indexes per precision")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    model = resolve_model("splade-tiny")
    passages = read_texts(DATA / "trec-dl-2019" / "corpus.jsonl", args.docs)
    abstracts = read_texts(DATA / "beir-scifact" / "corpus.jsonl", args.abstracts)
    with open(DATA / "trec-dl-2019" / "queries.tsv", encoding="utf-8") as f:
        queries = [line.split("\t", 1)[1].strip() for line in itertools.islice(f, args.queries)]
    precisions = args.precisions.split(",")
    native_bf16 = has_bf16_matmul()  # AVX512-BF16 or AMX: oneDNN's bf16 kernels
    encoders = {p: SpladeEncoder(model, precision=p) for p in precisions}
    fp32 = encoders.get("fp32") or SpladeEncoder(model)
    plain = PlainLoop(fp32)
    systems = {"plain loop (fp32)": lambda t, n=256: plain.encode(t, n)}
    systems.update({f"encoder {p}": (lambda t, n=256, e=e: e.encode(t, n)) for p, e in encoders.items()})
    if "fp32" in encoders and native_bf16:  # what the bf16 screening of fp32 gives: the same encoder without it
        saved, encoder_module.SCREEN_FP32 = encoder_module.SCREEN_FP32, False
        unscreened = SpladeEncoder(model)
        encoder_module.SCREEN_FP32 = saved
        systems["encoder fp32, unscreened"] = lambda t, n=256: unscreened.encode(t, n)
    if "fp32" in encoders:  # the same encoder with small batches on one thread (SINGLE_THREAD_TOKENS)
        systems["encoder fp32, one thread per query"] = lambda t, n=256: _one_thread_small(encoders["fp32"], t, n)

    reference = plain.encode(passages[:50], 256).toarray()
    agreement = {} if args.skip_speed else {
        name: float(np.abs(run(passages[:50]).toarray() - reference).max()) for name, run in systems.items()
        if native_bf16 or "bf16" not in name}
    best = {name: {"passages": np.inf, "abstracts": np.inf, "query_ms": np.inf} for name in systems}
    for _ in range(0 if args.skip_speed else args.rounds):
        for name, run in systems.items():
            few = "bf16" in name and not native_bf16
            p, a = (passages[: args.bf16_docs], abstracts[: args.bf16_docs // 3]) if few else (passages, abstracts)
            best[name]["passages"] = min(best[name]["passages"], timed(run, p) / len(p))
            best[name]["abstracts"] = min(best[name]["abstracts"], timed(run, a) / len(a))
            single = queries[: 20 if few else len(queries)]
            best[name]["query_ms"] = min(best[name]["query_ms"], query_p50(lambda q, run=run: run(q, 64), single))
    ndcg = {}
    if args.ndcg:
        for p, e in encoders.items():
            if p == "bf16" and not native_bf16:
                e = SpladeEncoder(model)
                e.projection = EmulatedBf16Projection(e.mlm.get_output_embeddings(), e.vocab_tile)
                e.mlm.to(torch.bfloat16).to(torch.float32)  # the body's weights rounded to bf16
                p = "bf16 (emulated numerics)"
            work = Path(args.work) / p.split()[0]  # kept: a run stopped part-way resumes its encoding
            ndcg[p] = ndcg_scifact(e, work)
            print(f"NDCG@10 {p}: {ndcg[p]:.4f}", flush=True)

    if args.skip_speed:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"ndcg": ndcg}, indent=1))
        return 0
    base = best["plain loop (fp32)"]
    lines = ["| system | passages docs/s | abstracts docs/s | vs plain loop | single query p50 ms | vs plain loop | "
             "max |diff| vs plain loop |", "|---|---|---|---|---|---|---|"]
    for name, b in best.items():
        lines.append(f"| {name} | {1 / b['passages']:.1f} | {1 / b['abstracts']:.1f} | "
                     f"{base['passages'] / b['passages']:.2f}x / {base['abstracts'] / b['abstracts']:.2f}x | "
                     f"{b['query_ms']:.2f} | {base['query_ms'] / b['query_ms']:.2f}x | "
                     f"{agreement.get(name, float('nan')):.2e} |")
    if ndcg:
        lines += ["", "| precision | SciFact NDCG@10 |", "|---|---|"] + [f"| {p} | {v:.4f} |" for p, v in ndcg.items()]
    print("\n".join(lines))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"best_seconds_per_doc": best, "agreement": agreement, "ndcg": ndcg,
                                             "threads": torch.get_num_threads(), "native_bf16": native_bf16,
                                             "cpu_capability": torch.backends.cpu.get_cpu_capability()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
