"""Where outputs live: the one rule that turns model and dataset names into folder and file names.

The CLI and the Makefile both ask this module, so a name like `.hidden`, `my.model.` or `../x/y` lands in the same
folder whichever of them wrote it. The Makefile runs it as its own small program (standard library only):

    python -m pipelines.layout --model M --dataset D [--backend lucene] [--out outputs]

prints one shell assignment per line (`encoded=...`, `index=...`, `run=...`, ...). It is not a `splade`
subcommand because the `splade` CLI imports torch (seconds) and Make asks once per dataset.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["OutputPaths", "corpus_slug", "mining_dir", "output_paths", "slugify", "work_dir"]

# Every MS MARCO passage id (dev/small, trec-dl-2019/judged, ...) searches one corpus, so one encoding and index.
MSMARCO_PASSAGE = "msmarco-passage"


def slugify(name: str | Path) -> str:
    """A name that is safe as one path component: leading and trailing `.` and `/` dropped, runs of anything
    outside `[A-Za-z0-9._-]` turned into one `-` (`../x/y` -> `x-y`, `.hidden` -> `hidden`, `my.model.` ->
    `my.model`); never empty, never `.` or `..`. The Makefile asks Python for its paths, so this is the one rule.

    Args:
        name: a model or dataset as the user named it.

    Returns:
        The path component.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name).strip("./")).strip("-") or "dataset"


def corpus_slug(dataset: str | Path) -> str:
    """The folder name of the corpus a dataset searches: shared by every MS MARCO passage id, else its own.

    Args:
        dataset: the dataset as the user named it.

    Returns:
        "msmarco-passage" for every MS MARCO passage id, else `slugify(dataset)`.
    """
    text = str(dataset)
    return MSMARCO_PASSAGE if text.startswith(MSMARCO_PASSAGE + "/") else slugify(text)


@dataclass(frozen=True)
class OutputPaths:
    """The default outputs of one (model, dataset, back end); see `output_paths`."""

    model_slug: str
    dataset_slug: str
    encoded: Path  # <out>/encoded/<model>/<corpus>
    index: Path  # <index root>/<model>/<corpus>[-lucene]
    run: Path  # <eval root>/<model>/<dataset>[-lucene].trec
    metrics: Path  # <eval root>/<model>/<dataset>[-lucene].metrics.json
    flops: Path  # <eval root>/<model>/flops.json
    work: Path  # <out>/<model>/<dataset>: `splade demo`'s working folder
    compare: Path  # <out>/lucene-compare/<model>-<dataset>: `splade lucene-compare`'s folder


def output_paths(model: str | Path, dataset: str | Path, backend: str = "numba", out: str | Path = "outputs",
                 index_root: str | Path | None = None, eval_root: str | Path | None = None) -> OutputPaths:
    """Where the encoded corpus, index, run and metrics of `model` on `dataset` go by default.

    Args:
        model: the model as the user named it (packaged name, Hugging Face id or folder).
        dataset: the dataset as the user named it (ir_datasets id or folder).
        backend: `numba` or `lucene`; a Lucene index and its runs get a `-lucene` suffix.
        out: the root of everything (the Makefile's OUT).
        index_root: where indexes go (default `<out>/index`).
        eval_root: where runs and metrics go (default `<out>/eval`).

    Returns:
        The paths; nothing is created.
    """
    out = Path(out)
    index_root = Path(index_root) if index_root else out / "index"
    eval_root = Path(eval_root) if eval_root else out / "eval"
    model_slug, dataset_slug, corpus = slugify(model), slugify(dataset), corpus_slug(dataset)
    suffix = "-lucene" if backend == "lucene" else ""
    return OutputPaths(
        model_slug=model_slug,
        dataset_slug=dataset_slug,
        encoded=out / "encoded" / model_slug / corpus,
        index=index_root / model_slug / f"{corpus}{suffix}",
        run=eval_root / model_slug / f"{dataset_slug}{suffix}.trec",
        metrics=eval_root / model_slug / f"{dataset_slug}{suffix}.metrics.json",
        flops=eval_root / model_slug / "flops.json",
        work=work_dir(model, dataset, out),
        compare=out / "lucene-compare" / f"{model_slug}-{dataset_slug}",
    )


def work_dir(model: str | Path, dataset: str | Path, root: str | Path = "outputs") -> Path:
    """`<root>/<model>/<dataset>`: the demo's encoded/, index/, run.trec and metrics.json.

    Args:
        model, dataset: as the user named them.
        root: the outputs root.

    Returns:
        The folder (not created).
    """
    return Path(root) / slugify(model) / slugify(dataset)


def mining_dir(data_dir: str | Path, miner: str) -> Path:
    """`<data_dir>/mining-<miner>`: a training run's encoded corpus and index of its miner (reused by the
    evaluation of the base model when the miner is that model).

    Args:
        data_dir: the training run's data folder.
        miner: the mining model as the user named it.

    Returns:
        The folder (not created).
    """
    return Path(data_dir) / f"mining-{slugify(miner)}"


def shell_assignments(paths: OutputPaths) -> str:
    """`name=value` lines that a POSIX shell can `eval` (values quoted only where they need it)."""
    return "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in asdict(paths).items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.layout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model name as the user gave it")
    parser.add_argument("--dataset", help="dataset name as the user gave it")
    parser.add_argument("--backend", choices=("numba", "lucene"), default="numba")
    parser.add_argument("--out", default="outputs", help="root folder (default: %(default)s)")
    parser.add_argument("--index-root", default=None, help="default: OUT/index")
    parser.add_argument("--eval-root", default=None, help="default: OUT/eval")
    parser.add_argument("--slug", nargs="+", metavar="NAME", help="only print the slug of each NAME, space-separated")
    args = parser.parse_args(argv)
    if args.slug:
        print(" ".join(slugify(name) for name in args.slug))
        return 0
    if args.model is None or args.dataset is None:
        parser.error("give --model and --dataset (or --slug NAME ...)")
    paths = output_paths(args.model, args.dataset, args.backend, args.out, args.index_root, args.eval_root)
    sys.stdout.write(shell_assignments(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
