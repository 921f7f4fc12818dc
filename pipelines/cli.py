"""`splade <command>`: one subcommand per stage, the same flags everywhere.

Each module in `pipelines/commands/` registers its subcommands through `register(subparsers)`, so the CLI grows
by adding a file (modules whose name starts with `_` are helpers, not commands).

The stages report through `logging`; here their INFO lines become plain console text (`-v` adds DEBUG, `-q` keeps
warnings only), and every error a user can act on becomes one line `splade CMD: error: ...` with exit status 2
(`SPLADE_DEBUG=1` shows the traceback instead).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator

from tqdm.auto import tqdm

from pipelines import commands
from pipelines.commands import _flags

# The project's top-level packages: their loggers (and their modules' children) print to the console.
PROJECT_LOGGERS = ("contracts", "indexing", "retrieval", "evaluation", "training", "pipelines")
INTERRUPTED = 130  # the shell's status for a job stopped by Ctrl-C (128 + SIGINT)


# Which module of `pipelines/commands/` registers each command. `splade CMD` imports only CMD's module, so the
# command modules import what they need at their top (torch included) and `splade evaluate` never pays for
# loading torch; `splade --help` (or an unknown command) imports them all. tests/pipelines/test_cli.py checks
# this table against what the modules register.
COMMAND_MODULES = {
    "check": "stages",
    "compare": "evaluate",
    "demo": "demo",
    "encode": "stages",
    "evaluate": "evaluate",
    "flops": "evaluate",
    "fuse": "evaluate",
    "index": "stages",
    "lucene-compare": "lucene",
    "reproduce": "reproduce",
    "retrieve": "stages",
    "table": "evaluate",
    "train": "train",
}


def command_modules(argv: list[str] | None = None) -> list[str]:
    """The command modules to import for these arguments: the named command's, or all of them.

    Args:
        argv: the arguments after `splade`; None imports every module (for `--help` and the tests).

    Returns:
        Module names inside `pipelines.commands`.
    """
    named = [a for a in (argv or []) if a in COMMAND_MODULES]
    if argv is not None and named:
        return [COMMAND_MODULES[named[0]]]
    return sorted(info.name for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_"))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `splade` parser with the commands of `pipelines/commands/` that these arguments need.

    Args:
        argv: the arguments after `splade`, to register only the named command's module; None registers all.

    Returns:
        The parser; `-v/--verbose` and `-q/--quiet` are accepted before or after the command name.
    """
    parser = argparse.ArgumentParser(
        prog="splade",
        description="Train SPLADE models, encode and index corpora, retrieve and evaluate. "
        "Every command takes the same flags: --model, --dataset, --index, --run, --output.",
    )
    _flags.verbosity(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules(argv):
        importlib.import_module(f"pipelines.commands.{name}").register(subparsers)
    for command_parser in subparsers.choices.values():
        _flags.verbosity(command_parser, after_command=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `splade` command.

    Args:
        argv: the arguments after `splade` (default: the process's).

    Returns:
        The exit status: 0 on success, 2 on an error reported in one line, 130 when interrupted.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    with console_logging(_flags.log_level(args)):
        try:
            return args.func(args) or 0
        except (KeyboardInterrupt, ValueError, RuntimeError, KeyError, OSError) as e:
            if os.environ.get("SPLADE_DEBUG", "") not in ("", "0"):
                raise
            if isinstance(e, BrokenPipeError):  # `splade ... | head`: the reader left; say nothing more
                _silence_stdout()
                return 1
            _close_progress_bars()
            if isinstance(e, KeyboardInterrupt):
                print(f"splade {args.command}: {interrupted_message(args.command)}", file=sys.stderr)
                return INTERRUPTED
            print(f"splade {args.command}: error: {error_message(e, args.command)}", file=sys.stderr)
            return 2


def interrupted_message(command: str) -> str:
    """What Ctrl-C leaves behind: files are written atomically, so only whole files remain.

    Args:
        command: the command that was interrupted.

    Returns:
        The one line to print.
    """
    if command == "encode":
        return "interrupted; what was written is kept, and the same `splade encode` command resumes where it stopped"
    if command == "train":
        return "interrupted; the checkpoints saved so far are kept: run the same command with --resume to continue"
    return "interrupted; files finished before are kept and nothing is left half-written; run the command again"


# What a full disk leaves behind, per command: every file is written atomically and folders are swapped in whole.
KEPT_ON_FULL_DISK = {
    "encode": "the shards finished before are kept and nothing half-written is left: free some space (or choose "
              "another --output) and the same `splade encode` command resumes where it stopped",
    "index": "an index already in --output is left as it was and no partial index is left: free some space (or "
             "choose another --output) and run the command again",
    "train": "the checkpoints saved so far are kept: free some space and run the same command with --resume",
}
KEPT_BY_DEFAULT = ("the files finished before are kept and nothing half-written is left: free some space (or choose "
                   "another --output) and run the command again")


def error_message(error: BaseException, command: str | None = None) -> str:
    """One line saying what went wrong and with which path, for the errors a user can act on.

    Args:
        error: a ValueError, RuntimeError, KeyError or OSError.
        command: the command that failed, to say what a full disk left behind.

    Returns:
        The message, without the `splade CMD: error:` prefix.
    """
    if isinstance(error, KeyError):
        return str(error.args[0]) if error.args else "KeyError"
    if not isinstance(error, OSError) or error.errno is None:
        return str(error)  # the project's own errors (OSError subclasses too) carry their full message
    where = _paths(error)
    if error.errno == errno.ENOSPC:
        return (f"no space left on the device{' writing ' + where if where else ''}; "
                f"{KEPT_ON_FULL_DISK.get(command or '', KEPT_BY_DEFAULT)}")
    if isinstance(error, IsADirectoryError):
        return f"{where}: is a folder, where a file is expected (give a file name, e.g. --output {where}/run.trec)"
    if isinstance(error, NotADirectoryError):
        return f"{where}: a file is in the way where a folder is expected"
    if isinstance(error, PermissionError):
        return f"{where}: permission denied (check who owns it and its mode, or choose another path)"
    if isinstance(error, FileExistsError):
        return f"{where}: already exists"
    if isinstance(error, FileNotFoundError):
        return f"{where}: no such file or folder"
    return f"{where + ': ' if where else ''}{error.strerror or error}"


def _paths(error: OSError) -> str:
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return " -> ".join(paths)


def _close_progress_bars() -> None:
    """End the bars that the error interrupted, so that its message starts a line of its own (tqdm draws on stderr
    without a newline until a bar is closed)."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush raises no second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def console_logging(level: int) -> Iterator[None]:
    """Show the project's log records of `level` and above as plain lines on stdout, where its prints go.

    While it is on, the project's records go to this handler only (not also to a handler on the root logger, which
    would print them twice). The loggers are restored afterwards: a test that calls `main()` leaves no handler bound
    to its captured output behind, and records reach the root logger's handlers (pytest's caplog) again.

    Args:
        level: a `logging` level (INFO by default, DEBUG with -v, WARNING with -q).

    Returns:
        A context manager.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = []
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(level)
        logger.propagate = False  # a handler on the root logger (basicConfig in a library) would print twice
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, old_level, old_propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate
        handler.flush()


if __name__ == "__main__":
    sys.exit(main())
