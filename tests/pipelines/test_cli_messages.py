"""The CLI's console: the stages' log lines as plain text, and one line per error a user can act on (#13, #10.7).

Ctrl-C and a full disk in real commands are cases of the #13 catalogue (tests/pipelines/bad_inputs.py).
"""
from __future__ import annotations

import argparse
import errno
import logging

import pytest

from contracts.atomic import write_text
from pipelines import cli
from pipelines.commands import _flags


def toy_parser(func) -> argparse.ArgumentParser:
    """The real parser's shape with one command, so that these tests do not depend on every command importing."""
    parser = argparse.ArgumentParser(prog="splade")
    _flags.verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("encode")
    p.add_argument("--output", default=None)
    p.set_defaults(func=func)
    _flags.verbosity(p, after_command=True)
    return parser


def run(monkeypatch, func, *argv: str) -> int:
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: toy_parser(func))
    return cli.main(["encode", *argv])


def speak(args) -> int:
    logging.getLogger("indexing.encode").info("encoded 3 documents")
    logging.getLogger("retrieval.search").debug("block statistics")
    logging.getLogger("evaluation.metrics").warning("2 queries have no judgments")
    return 0


@pytest.mark.parametrize("flags, shown, hidden", [
    ((), ["encoded 3 documents", "2 queries have no judgments"], ["block statistics"]),
    (("-v",), ["encoded 3 documents", "block statistics"], []),
    (("--quiet",), ["2 queries have no judgments"], ["encoded 3 documents"]),
])
def test_the_stages_log_lines_are_plain_console_text(monkeypatch, capsys, flags, shown, hidden):
    assert run(monkeypatch, speak, *flags) == 0
    out = capsys.readouterr().out
    for line in shown:
        assert f"{line}\n" in out.splitlines(keepends=True)  # the words alone, as the prints were
    for line in hidden:
        assert line not in out


def test_verbosity_before_the_command_is_kept(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: toy_parser(speak))
    assert cli.main(["-v", "encode"]) == 0
    assert "block statistics" in capsys.readouterr().out


def test_main_leaves_the_loggers_as_it_found_them(monkeypatch, caplog):
    before = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
              for name in cli.PROJECT_LOGGERS}
    run(monkeypatch, speak)
    assert before == {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
                      for name in cli.PROJECT_LOGGERS}
    with caplog.at_level(logging.INFO):
        logging.getLogger("indexing.encode").info("still reaches caplog")
    assert "still reaches caplog" in caplog.text


def raising(error: BaseException):
    def func(args):
        raise error
    return func


def test_output_that_is_a_folder_names_the_path(monkeypatch, capsys, tmp_path):
    def write_output(args):
        write_text(args.output, "x")
    assert run(monkeypatch, write_output, "--output", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == f"splade encode: error: {tmp_path}: is a folder, where a file is to be written; give the name " \
                  f"of a file (inside it, if you like)\n"


@pytest.mark.parametrize("error, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/run.trec"), "/data/run.trec: permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out"), "/data/out: is a folder, where a file is"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such"), "/no/such: no such file or folder"),
    (OSError(errno.EIO, "Input/output error", "/mnt/x"), "/mnt/x: Input/output error"),
    (ValueError("run.trec, line 3: score 'x' is not a number"), "run.trec, line 3: score 'x' is not a number"),
    (KeyError("unknown preset 'Z'"), "unknown preset 'Z'"),
])
def test_os_errors_are_one_line_with_the_path(monkeypatch, capsys, error, expected):
    assert run(monkeypatch, raising(error)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"splade encode: error: {expected}") and err.count("\n") == 1


def test_splade_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("SPLADE_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        run(monkeypatch, raising(KeyboardInterrupt()))
    with pytest.raises(PermissionError):
        run(monkeypatch, raising(PermissionError(errno.EACCES, "Permission denied", "/x")))


def test_every_real_command_takes_verbose_and_quiet():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"encode", "index", "retrieve", "evaluate"} <= set(commands)
    for name, command in commands.items():
        args = parser.parse_args([name, "-q", *_required_placeholders(command)])
        assert _flags.log_level(args) == logging.WARNING, name


def _required_placeholders(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if action.required and action.option_strings:
            out += [action.option_strings[-1], *(["x"] * (action.nargs if isinstance(action.nargs, int) else 1))]
        elif not action.option_strings and action.dest != "help" and action.nargs not in ("?", "*"):
            out.append("x")
    return out
