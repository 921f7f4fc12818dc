"""MS MARCO training at its real size, offline: seeded stand-ins of the four published files, then preset F on them.

    python -m benchmarks.train_rehearsal generate --output outputs/rehearsal/files [--scale 1.0]
    python -m benchmarks.train_rehearsal run --files outputs/rehearsal/files --output outputs/rehearsal/run
    (make train-rehearsal [REHEARSAL_SCALE=0.05] does both)

The stand-ins have the published files' formats and, at scale 1, their sizes:
- `collection.tsv`: 8,841,823 passages `pid<TAB>text`, pids 0..N-1, about 56 words each (3 GB, like the real one);
- `queries.train.tsv`: 808,731 queries `qid<TAB>text`, about 6 words;
- `msmarco-hard-negatives.jsonl.gz`: 502,939 lines `{"qid", "pos": [pid], "neg": {system: [50 pids]}}` for the 13
  systems the dataset card lists (BM25 and 12 dense models), 1.06 positives per query on average;
- `cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz`: a pickled `{qid: {pid: score}}` (int ids, float scores) over
  every query's positives and negatives: 160 million scores, as the card says, so about 318 distinct passages per
  query among its 650 listed negatives (the systems overlap).
The pickle is written as one dict in protocol 2, item batch by item batch (the opcodes `pickle.dump` itself would
write), so the generator never holds the 160 million scores; reading it back is an ordinary `pickle.load`.

`run` calls `splade train --preset F --model splade-tiny --max-steps 3` with the local-file flags (the only way to
train on MS MARCO offline) and reports, per phase, the seconds and the peak memory: reading negatives, loading the
score pickle, building rows, writing rows (text lookup in the collection), training.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.train_synthetic import ZipfWords
from contracts.atomic import atomic_path, write_json

logger = logging.getLogger("benchmarks.train_rehearsal")

PASSAGES = 8_841_823
TRAIN_QUERIES = 808_731
HARD_NEGATIVE_QUERIES = 502_939
SYSTEMS = ("bm25", "msmarco-distilbert-base-tas-b", "msmarco-distilbert-base-v3", "msmarco-MiniLM-L-6-v3",
           "distilbert-margin_mse-cls-dot-v2", "distilbert-margin_mse-cls-dot-v1", "distilbert-margin_mse-mean-dot-v1",
           "mpnet-margin_mse-mean-v1", "co-condenser-margin_mse-cls-v1", "distilbert-margin_mse-mnrl-mean-v1",
           "distilbert-margin_mse-sym_mnrl-mean-v1", "distilbert-margin_mse-sym_mnrl-mean-v2",
           "co-condenser-margin_mse-sym_mnrl-mean-v1")
NEGATIVES_PER_SYSTEM = 50
DISTINCT_PER_QUERY = 318  # 160M scores / 502,939 queries
FILES = {"collection": "collection.tsv", "queries": "queries.train.tsv",
         "hard_negatives": "msmarco-hard-negatives.jsonl.gz",
         "teacher_scores": "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz"}
CHUNK = 100_000


def write_collection(path: Path, count: int, words: ZipfWords) -> None:
    """`pid<TAB>text` lines, pids 0..count-1 in order, like collection.tsv."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for start in range(0, count, CHUNK):
            texts = words.texts(min(CHUNK, count - start), 56)
            out.write("".join(f"{start + i}\t{text}\n" for i, text in enumerate(texts)))


def write_queries(path: Path, qids: np.ndarray, words: ZipfWords) -> None:
    """`qid<TAB>text` lines like queries.train.tsv."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for start in range(0, len(qids), CHUNK):
            part = qids[start:start + CHUNK]
            out.write("".join(f"{q}\t{t}\n" for q, t in zip(part.tolist(), words.texts(len(part), 6))))


def _pickle_body(obj) -> bytes:
    """The opcodes of `obj` without the protocol header and the STOP opcode (protocol 2 has no frames)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def write_negatives_and_scores(negatives_path: Path, scores_path: Path, qids: np.ndarray, num_passages: int,
                               seed: int) -> int:
    """The hard-negatives lines and, for the same queries, the cross-encoder scores of every listed passage.

    Per query: 1 positive (2 for 6% of the queries), a pool of distinct passages from which each of the 13 systems
    lists 50 (so they overlap as real systems do), scores N(7, 2) for positives and N(-2, 4) for negatives.

    Returns:
        The number of scores written.
    """
    rng = np.random.default_rng(seed)
    total = 0
    with atomic_path(negatives_path) as neg_tmp, atomic_path(scores_path) as score_tmp, \
            gzip.open(neg_tmp, "wt", encoding="utf-8", compresslevel=1) as neg_out, \
            gzip.open(score_tmp, "wb", compresslevel=1) as score_out:
        score_out.write(b"\x80\x02}")  # PROTO 2, EMPTY_DICT
        for start in range(0, len(qids), 1000):  # pickle.dump's own batch size for dict items
            score_out.write(b"(")  # MARK
            for qid in qids[start:start + 1000].tolist():
                positives = rng.integers(0, num_passages, size=2 if rng.random() < 0.06 else 1).tolist()
                pool = rng.integers(0, num_passages, size=DISTINCT_PER_QUERY - len(positives))
                lists = {s: pool[rng.choice(len(pool), NEGATIVES_PER_SYSTEM, replace=False)].tolist() for s in SYSTEMS}
                neg_out.write(json.dumps({"qid": qid, "pos": positives, "neg": lists}) + "\n")
                scores = dict(zip(pool.tolist(), np.round(rng.normal(-2.0, 4.0, size=len(pool)), 4).tolist()))
                scores.update(zip(positives, np.round(rng.normal(7.0, 2.0, size=len(positives)), 4).tolist()))
                total += len(scores)
                score_out.write(_pickle_body(qid) + _pickle_body(scores))
            score_out.write(b"u")  # SETITEMS
        score_out.write(b".")  # STOP
    return total


def generate(output: Path, scale: float, seed: int) -> dict:
    """Write the four stand-in files into `output`; returns what was written (counts, sizes, seconds)."""
    output.mkdir(parents=True, exist_ok=True)
    passages = max(int(PASSAGES * scale), 1000)
    train_queries = max(int(TRAIN_QUERIES * scale), 100)
    hard_queries = max(int(HARD_NEGATIVE_QUERIES * scale), 60)
    rng = np.random.default_rng(seed)
    qids = np.sort(rng.choice(np.arange(1_200_000), size=train_queries, replace=False))
    hard_qids = np.sort(rng.choice(qids, size=hard_queries, replace=False))
    words = ZipfWords(seed=seed)
    report = {"scale": scale, "seed": seed, "passages": passages, "train_queries": train_queries,
              "hard_negative_queries": hard_queries, "seconds": {}}
    steps = (("collection", lambda: write_collection(output / FILES["collection"], passages, words)),
             ("queries", lambda: write_queries(output / FILES["queries"], qids, words)),
             ("hard_negatives+teacher_scores", lambda: report.__setitem__("scores", write_negatives_and_scores(
                 output / FILES["hard_negatives"], output / FILES["teacher_scores"], hard_qids, passages, seed))))
    for name, step in steps:
        started = time.perf_counter()
        step()
        report["seconds"][name] = round(time.perf_counter() - started, 1)
        logger.info("wrote %s in %.0f s", name, report["seconds"][name])
    report["bytes"] = {name: (output / file).stat().st_size for name, file in FILES.items()}
    write_json(output / "rehearsal-files.json", report)
    return report


def run(files: Path, output: Path, steps: int, extra: list[str]) -> dict:
    """`splade train --preset F --model splade-tiny --max-steps N` on the stand-ins; the phases' time and memory."""
    cmd = [sys.executable, "-m", "pipelines", "train", "--preset", "F", "--model", "splade-tiny",
           "--max-steps", str(steps), "--output", str(output),
           "--hard-negatives", str(files / FILES["hard_negatives"]),
           "--teacher-scores", str(files / FILES["teacher_scores"]),
           "--collection", str(files / FILES["collection"]), "--train-queries", str(files / FILES["queries"]),
           "--logging-steps", "1", *extra]
    logger.info("%s", " ".join(cmd))
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    rows = json.loads((output / "data" / "train-rows.json").read_text())
    summary = json.loads((output / "training-summary.json").read_text())
    report = {"wall_seconds": round(wall, 1), "phases": rows.get("phases", {}), "rows": rows["rows"],
              "training": {"seconds": summary["train_seconds"], "steps": summary["steps"],
                           "peak_rss_gib": summary.get("peak_rss_gib")},
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
              "files": json.loads((files / "rehearsal-files.json").read_text())}
    write_json(output / "rehearsal.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the stand-in files")
    g.add_argument("--output", default="outputs/rehearsal/files")
    g.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes (default: 1, the real size)")
    g.add_argument("--seed", type=int, default=42)
    r = sub.add_parser("run", help="train preset F on them and report time and memory per phase")
    r.add_argument("--files", default="outputs/rehearsal/files")
    r.add_argument("--output", default="outputs/rehearsal/run")
    r.add_argument("--max-steps", type=int, default=3)
    r.add_argument("train_args", nargs="*", help="more `splade train` flags (after --)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "generate":
        report = generate(Path(args.output), args.scale, args.seed)
    else:
        report = run(Path(args.files), Path(args.output), args.max_steps, args.train_args)
    logger.info("%s", json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
