"""Every script in ``examples/`` runs to completion, and each is shaped for the docs' gallery.

The scripts are discovered, so an example added to ``examples/`` is covered without touching this file.
Each runs in a fresh interpreter (headless matplotlib, a scratch working directory) and must exit 0.
The core's examples run in the default suite; the plugins' (DeepXDE, Qiskit Aer ...) run with
``-m slow``, which CI runs too.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def _marks(script):
    return [] if script.name.startswith("core_") else [pytest.mark.slow]


@pytest.mark.parametrize("script", [pytest.param(s, id=s.name, marks=_marks(s)) for s in SCRIPTS])
def test_example_runs(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{script.name} exited {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_has_a_gallery_title(script):
    # sphinx-gallery renders the module docstring's first paragraph as the example's title and stops the
    # docs build on a script without one; named <package>_*.py so the gallery groups them.
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    assert docstring, f"{script.name} must begin with a docstring: a title line, then what the example shows"
    assert docstring.splitlines()[0].strip(), f"{script.name}: the docstring's first line is the gallery title"
    assert script.stem.split("_")[0] in {"core", "pinn", "quantum", "dsp", "bio"}, script.name
