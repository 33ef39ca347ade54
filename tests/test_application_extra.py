"""The `noisygrad` command is the application of the core's `tour` extra: without typer, rich or matplotlib it
says what to install instead of a traceback, and the library imports none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from noisygrad import tour


@pytest.mark.parametrize("missing", tour.APPLICATION_DEPENDENCIES)
def test_the_command_names_the_missing_extra(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # as if it were not installed
    with pytest.raises(SystemExit, match=rf"needs {missing}.*noisygrad-core\[tour\]"):
        tour.main()


def test_the_library_imports_no_application_dependency():
    code = (
        "import sys, noisygrad as ng\n"
        "for name in ng.__all__: getattr(ng, name)\n"
        "import noisygrad.checks, noisygrad.rng, noisygrad.loop, noisygrad.plugins\n"
        "print(sorted(m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
