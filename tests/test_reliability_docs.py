"""The docs' reliability page lists every case of the bad-input matrix (regenerate it with
``tests/bad_input_table.py`` when the matrix changes)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "reliability.md"
_spec = importlib.util.spec_from_file_location("bad_input_matrix", HERE / "test_bad_inputs.py")
assert _spec is not None
assert _spec.loader is not None
matrix = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = matrix  # its dataclasses look their module up there
_spec.loader.exec_module(matrix)


def test_the_reliability_page_lists_every_case_of_the_matrix():
    listed = set(re.findall(r"^\| `([^`]+)` \|", PAGE.read_text(), flags=re.MULTILINE))
    cases = {case.id for cases in matrix.CASES.values() for case in cases}
    missing, stale = sorted(cases - listed), sorted(listed - cases)
    hint = "docs/reliability.md is out of date: run tests/bad_input_table.py"
    assert not missing, f"{hint}; {len(missing)} cases missing, e.g. {missing[:3]}"
    assert not stale, f"{hint}; {len(stale)} cases no longer in the matrix, e.g. {stale[:3]}"


def test_open_cases_are_marked_open_on_the_page():
    text = PAGE.read_text()
    for case in (c for cases in matrix.CASES.values() for c in cases if c.xfail):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{case.id}` |"))
        assert "open:" in row, f"{case.id} is a strict xfail in the matrix but not marked open on the page"
