"""`splade train --help`: every setting explained, its default shown once (issue 13)."""
from __future__ import annotations

import re

import pytest

from pipelines.cli import main
from training.config import TrainingConfig, field_help


def train_help(capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare with single spaces


def test_every_setting_has_help_text():
    helps = field_help()
    assert set(helps) == set(TrainingConfig.__dataclass_fields__)
    assert all(len(text) > 15 for text in helps.values()), [k for k, v in helps.items() if len(v) <= 15]


def test_help_shows_each_setting_with_its_help_and_one_default(capsys):
    text = train_help(capsys)
    assert "(default: None)" not in text
    for name, help_text in field_help().items():
        if name in ("model", "dataset", "extra"):  # flags of their own
            continue
        flag = f"--{name.replace('_', '-')}"
        match = re.search(re.escape(flag) + r" [A-Z]+ (.*?)(?= --[a-z]|$)", text)
        assert match, flag
        entry = match.group(1)
        assert entry.startswith(" ".join(help_text.split())), (flag, entry)
        assert entry.count("(default:") == 1, (flag, entry)
    assert ("--lambda-q FLOAT weight of the FLOPS regulariser on the queries (over the global batch) "
            "(default: 0.0008)") in text
    assert "--max-steps INT" in text and "(default: none)" in text
