"""Every case of issue #13 through the real CLI: its exit status, its message, and what it left on disk.

The cases are data (tests/pipelines/bad_inputs.py); `python -m tests.pipelines.bad_inputs` prints them as the table
of the issue's closing note.
"""
from __future__ import annotations

import pytest

from tests.pipelines.bad_inputs import CASES, Case, build_shared, run_case


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return build_shared(tmp_path_factory.mktemp("bad-inputs") / "shared")


def test_every_case_has_a_unique_name_and_an_issue_item():
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.item for case in CASES} == {*(str(i) for i in range(1, 11)), "msg"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, shared, tmp_path):
    outcome = run_case(case, tmp_path / "case", shared)
    assert outcome.code == case.code, outcome.text[-3000:]
    assert case.matches(outcome), (case.message, case.absent, outcome.text[-3000:])
    if case.check:
        case.check(tmp_path / "case", shared, outcome)
