"""`splade reproduce`: run the commands of the reproduction file and check their figures (Pyserini's 2CR style).

The file (pipelines/reproduction/trec-dl.yaml) lists each figure this project reproduces with the command that makes
it and the value expected; this runner, tests/pipelines/test_reproduction.py and the README's reproduction table
all read it, so a figure is written down once.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml  # PyYAML: a dependency of transformers, accelerate and pyserini; YAML is the format 2CR files use

from contracts.manifest import read_json
from evaluation.tables import markdown_table
from pipelines.cli import build_parser  # builds its parser from the command modules at call time: no cycle

REPRODUCTION_FILE = Path(__file__).resolve().parents[1] / "reproduction" / "trec-dl.yaml"
DEFAULT_DATA = Path(os.environ.get("SPLADE_DATA", "../shared/data"))
DIGITS = 4  # the sources print 4 decimals; a figure reproduces when it rounds to the expected one


@dataclass(frozen=True)
class Check:
    """One condition on one topic set: the command to run and the figures it must print."""

    condition: str
    display: str
    topic: str
    label: str  # the topic set as the table shows it (DL19)
    folder: str  # the topic set's folder under the data folder
    tag: str
    command: str  # template: $data, $folder, $tag, $output
    scores: dict[str, float]
    published: str | None = None

    def argv(self, data: str | Path, output_dir: str | Path) -> list[str]:
        """The command's arguments, `splade` first, with the template filled in.

        Args:
            data: the shared data folder.
            output_dir: where the command writes (as `<output_dir>/<condition>.<topic>.*`).
        """
        values = {"data": str(data), "folder": str(Path(data) / self.folder), "tag": self.tag,
                  "output": str(self.output_prefix(output_dir))}
        return shlex.split(Template(self.command).substitute(values))

    def output_prefix(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / f"{self.condition}.{self.topic}"


@dataclass
class Outcome:
    """What one check measured: figure -> (expected, measured or None), and the command's output on failure."""

    check: Check
    figures: dict[str, tuple[float, float | None]]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(m is not None and round(m, DIGITS) == round(e, DIGITS)
                                          for e, m in self.figures.values())


def load_checks(path: str | Path = REPRODUCTION_FILE) -> list[Check]:
    """Every (condition, topic set) of a reproduction file, in file order.

    Args:
        path: the YAML file.

    Returns:
        The checks.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a condition or topic entry missing a field, an unknown topic key, a duplicate name, a score
            that is not a number (naming the file and the condition).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no reproduction file here")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("conditions"), list):
        raise ValueError(f"{path}: expected `topics:` and a list `conditions:`")
    topics = spec.get("topics") or {}
    checks: list[Check] = []
    names: set[str] = set()
    for i, cond in enumerate(spec["conditions"], 1):
        where = f"{path}, condition {cond.get('name', i) if isinstance(cond, dict) else i}"
        if not isinstance(cond, dict) or not all(k in cond for k in ("name", "command", "topics")):
            raise ValueError(f"{where}: needs name, command and topics")
        if cond["name"] in names:
            raise ValueError(f"{where}: the name is used twice")
        names.add(cond["name"])
        for entry in cond["topics"]:
            key = entry.get("topic") if isinstance(entry, dict) else None
            if key not in topics:
                raise ValueError(f"{where}: topic {key!r} is not one of the file's topics ({', '.join(topics)})")
            scores = entry.get("scores")
            if not isinstance(scores, dict) or not scores or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
                raise ValueError(f"{where}, topic {key}: scores must map figure names to numbers")
            t = topics[key]
            checks.append(Check(condition=cond["name"], display=cond.get("display", cond["name"]), topic=key,
                                label=t.get("label", key), folder=t["folder"], tag=t.get("tag", key),
                                command=" ".join(str(cond["command"]).split()),
                                scores={k: float(v) for k, v in scores.items()}, published=cond.get("published")))
    return checks


def run_check(check: Check, data: str | Path, output_dir: str | Path) -> Outcome:
    """Run one check's command in this process and compare the figures of the metrics.json it writes.

    Args:
        check: the check.
        data: the shared data folder.
        output_dir: where the command's files go.

    Returns:
        The Outcome; a command that fails gives an Outcome with its error, never an exception.
    """
    argv = check.argv(data, output_dir)
    if argv[:1] != ["splade"]:
        return Outcome(check, {}, f"the command must start with `splade`: {' '.join(argv)}")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            args = build_parser().parse_args(argv[1:])
            status = args.func(args) or 0
    except SystemExit as e:  # argparse refused the command line
        return Outcome(check, {}, f"bad command line (exit {e.code}): {captured.getvalue().strip()}")
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        return Outcome(check, {}, f"{type(e).__name__}: {e}")
    if status != 0:
        return Outcome(check, {}, f"exit status {status}: {captured.getvalue().strip()}")
    metrics = read_json(Path(f"{check.output_prefix(output_dir)}.metrics.json"), what="metrics file")["metrics"]
    return Outcome(check, {f: (expected, metrics.get(f)) for f, expected in check.scores.items()})


def reproduction_markdown(checks: list[Check]) -> str:
    """The README's reproduction table: one row per condition, one column per (topic set, figure).

    Args:
        checks: from load_checks.

    Returns:
        The Markdown table.
    """
    columns = list(dict.fromkeys((c.label, f) for c in checks for f in c.scores))
    rows: dict[str, dict] = {}
    for c in checks:
        row = rows.setdefault(c.condition, {"display": c.display, "published": c.published, "figures": {}})
        row["figures"].update({(c.label, f): v for f, v in c.scores.items()})
    body = [[r["display"], *(f"{r['figures'][col]:.{DIGITS}f}" if col in r["figures"] else "–" for col in columns),
             f"same figures in {r['published']}" if r["published"] else "this project, on the reference run"]
            for r in rows.values()]
    return markdown_table(["run", *(f"{label} {f}" for label, f in columns), "published"], body,
                          right=[False] + [True] * len(columns) + [False])


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="run the reproduction file's commands and check each figure (OK or expected vs measured)",
        description="Runs each condition of the reproduction file (pipelines/reproduction/trec-dl.yaml) on each of "
                    "its topic sets and prints OK, or the expected figure against the measured one. Exit status 1 "
                    "when a figure differs.")
    p.add_argument("--condition", nargs="+", help="only these conditions (see --list)")
    p.add_argument("--topic", nargs="+", help="only these topic sets (dl19, dl20)")
    p.add_argument("--list", action="store_true", help="list the conditions and topic sets, run nothing")
    p.add_argument("--markdown", action="store_true", help="print the README's reproduction table, run nothing")
    p.add_argument("--show-commands", action="store_true", help="print each command before running it")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="the shared data folder with trec-dl-2019/ and trec-dl-2020/ (default: $SPLADE_DATA, else "
                        "%(default)s)")
    p.add_argument("--output", default="outputs/reproduce", help="where the commands write (default: %(default)s)")
    p.add_argument("--file", default=str(REPRODUCTION_FILE), help="the reproduction file (default: the packaged one)")
    p.set_defaults(func=cmd_reproduce)


def _select(checks: list[Check], args: argparse.Namespace) -> list[Check]:
    for flag, known in (("condition", [c.condition for c in checks]), ("topic", [c.topic for c in checks])):
        unknown = [v for v in getattr(args, flag) or [] if v not in known]
        if unknown:
            expected = ", ".join(dict.fromkeys(known))
            raise ValueError(f"unknown --{flag} {', '.join(unknown)}: expected one of {expected}")
    return [c for c in checks if (not args.condition or c.condition in args.condition)
            and (not args.topic or c.topic in args.topic)]


def cmd_reproduce(args: argparse.Namespace) -> int:
    checks = load_checks(args.file)
    if args.markdown:
        print(reproduction_markdown(checks), end="")
        return 0
    chosen = _select(checks, args)
    if args.list:
        for c in chosen:
            print(f"{c.condition:20} {c.topic:6} {', '.join(f'{f} {v:.{DIGITS}f}' for f, v in c.scores.items())}")
        return 0
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"{args.data}: no data folder here (give --data, the folder holding trec-dl-2019/)")
    failed = 0
    for c in chosen:
        if args.show_commands:
            print("$ " + shlex.join(c.argv(args.data, args.output)))
        outcome = run_check(c, args.data, args.output)
        if outcome.error:
            failed += len(c.scores)
            print(f"{c.condition} {c.label}: FAILED to run: {outcome.error}")
            continue
        for figure, (expected, measured) in outcome.figures.items():
            if measured is not None and round(measured, DIGITS) == round(expected, DIGITS):
                print(f"{c.condition} {c.label} {figure}: {measured:.{DIGITS}f} OK")
            else:
                failed += 1
                shown = "absent" if measured is None else f"{measured:.{DIGITS}f}"
                print(f"{c.condition} {c.label} {figure}: expected {expected:.{DIGITS}f}, measured {shown}")
    total = sum(len(c.scores) for c in chosen)
    print(f"{total - failed} of {total} figures reproduced" + ("" if failed else ": all OK"),
          file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0
