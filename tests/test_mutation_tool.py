"""tools/mutation.py's bookkeeping (issue 18): mutant ids that survive unrelated edits, the equivalents file
read strictly, and every entry of the project's equivalents file naming a current mutant. No mutant is run."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools/mutation.py")
assert _spec is not None
assert _spec.loader is not None
mutation = importlib.util.module_from_spec(_spec)
sys.modules["mutation_tool"] = mutation
_spec.loader.exec_module(mutation)

SOURCE = """
def f(x, y):
    a = x + y  # the sum
    b = x + y
    return a * b


def g(x):
    return x + 1
"""


def _ids(tmp_path: Path, text: str) -> dict[str, tuple[int, str, str]]:
    path = tmp_path / "src" / "pkg" / "mod.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return {m.key: (m.line, m.op, m.detail) for m in mutation.mutants_of("t", path)}


def test_ids_are_unique_and_survive_edits_elsewhere(tmp_path):
    before = _ids(tmp_path, SOURCE)
    assert len(before) == len(mutation.mutants_of("t", tmp_path / "src" / "pkg" / "mod.py"))  # unique
    # lines added above, a comment reworded, another function edited: every id of f stays, only the lines move
    edited = "import math\n\n\n" + SOURCE.replace("return x + 1", "return x - 2 * math.pi")
    edited = edited.replace("# the sum", "# a reworded comment")
    after = _ids(tmp_path, edited)
    kept = [k for k in before if k.startswith("t:f:")]
    assert kept
    assert all(k in after for k in kept)
    assert all(after[k][0] == before[k][0] + 3 for k in kept)
    # the two identical lines `x + y` in f are told apart by their occurrence
    assert sum(k.startswith("t:f:") and v[1:] == ("binop", "Add->Sub") for k, v in before.items()) == 2
    # g's edited line gives new ids
    assert not any(k.startswith("t:g:") for k in set(before) & set(after))


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "eq.toml"
    path.write_text(body)
    return path


def test_the_equivalents_file_is_read_strictly(tmp_path):
    ok = '[[mutant]]\ntarget = "t"\nid = "abc"\nkind = "equivalent"\nreason = "r"\n'
    assert mutation.read_listed(_write(tmp_path, ok), {"t"})["t:abc"]["kind"] == "equivalent"
    with pytest.raises(ValueError, match="kind"):
        mutation.read_listed(_write(tmp_path, ok.replace('"equivalent"', '"maybe"')), {"t"})
    with pytest.raises(ValueError, match="reason"):
        mutation.read_listed(_write(tmp_path, ok.replace('reason = "r"', 'reason = " "')), {"t"})
    with pytest.raises(ValueError, match="target"):
        mutation.read_listed(_write(tmp_path, ok), {"u"})
    with pytest.raises(ValueError, match="twice"):
        mutation.read_listed(_write(tmp_path, ok + ok), {"t"})


def test_summary_scores_exclude_listed_mutants():
    results = [
        mutation.Result("t:f:1", "t", 1, "binop", "Add->Sub", "killed", 0.1),
        mutation.Result("t:f:2", "t", 2, "binop", "Add->Sub", "survived", 0.1, listed="equivalent"),
        mutation.Result("t:f:3", "t", 3, "binop", "Add->Sub", "survived", 0.1),
        mutation.Result("t:f:4", "t", 4, "binop", "Add->Sub", "timeout", 0.1),
    ]
    row = mutation.summarize(results, {"t": True})["t"]
    assert (row["mutants"], row["killed"], row["equivalent"], row["survived_unlisted"]) == (4, 2, 1, 1)
    assert row["score"] == 0.5
    assert row["score_excluding_listed"] == pytest.approx(2 / 3)


def test_every_listed_mutant_of_the_project_is_a_current_mutant():
    config = tomllib.loads((ROOT / ".ci/mutation.toml").read_text())
    listed = mutation.read_listed(ROOT / ".ci" / config["equivalents"], {t["name"] for t in config["target"]})
    current = {
        mutation._listed_key(m) for t in config["target"] for m in mutation.mutants_of(t["name"], ROOT / t["module"])
    }
    stale = sorted(set(listed) - current)
    assert not stale, f"entries of .ci/{config['equivalents']} that name no current mutant (source edited?): {stale}"


def test_every_target_with_numba_kernels_of_its_own_runs_them_uncompiled():
    """numba's disk cache knows a kernel by its file and name, so a mutant of a module with ``@compiled`` (or
    ``@njit``) kernels would run the unmutated kernel cached earlier: such targets must say ``jit = false``."""
    config = tomllib.loads((ROOT / ".ci/mutation.toml").read_text())
    decorated = re.compile(r"(?m)^\s*@(compiled|njit)\b")  # a decorator line, not the word in a docstring
    compiled = [t["name"] for t in config["target"] if decorated.search((ROOT / t["module"]).read_text())]
    assert compiled, "no target has kernels of its own: the check below would be vacuous"
    jitted = [t["name"] for t in config["target"] if t["name"] in compiled and t.get("jit", True)]
    assert jitted == []
