"""The ``noisygrad`` command run as a user runs it: the installed console script in a fresh process, its stdout and
stderr read apart, the terminal 80 columns wide.

``tests/test_cli.py`` holds each behaviour with typer's runner and fake experiments; these are the end-to-end
cases the newcomer met: ``noisygrad run nosuch --json`` must print JSON that parses (it printed the error on
stdout), ``-p chains=100`` must set the parameter (it exited 2), ``--version`` must answer, and
``list --describe`` (every experiment imported, so a slow test) must fit 80 columns and show each declared
parameter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import noisygrad
from noisygrad.tour.registry import experiments

_METAVAR = {int: "INT", float: "FLOAT", bool: "BOOL", str: "TEXT"}


def _noisygrad() -> list[str]:
    script = Path(sys.executable).with_name("noisygrad")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from noisygrad.tour import main; main()"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    env.pop("NOISYGRAD_TRACEBACK", None)
    return subprocess.run([*_noisygrad(), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_version_answers_in_a_real_process() -> None:
    done = _run("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"noisygrad {noisygrad.__version__}\n", "")


def test_an_unknown_experiment_with_json_prints_json_on_stdout_and_the_message_on_stderr() -> None:
    done = _run("run", "nosuch", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "error": "no experiment named 'nosuch'; `noisygrad list` shows them",
        "exit_code": 2,
    }
    assert "no experiment named 'nosuch'" in done.stderr
    plain = _run("run", "nosuch")
    assert (plain.returncode, plain.stdout) == (2, "")
    assert "no experiment named 'nosuch'" in plain.stderr


def test_p_sets_a_real_experiments_parameter() -> None:
    done = _run("run", "core.noise-ball", "-p", "chains=100", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    assert entry["passed"] in (True, False)
    assert {f["details"]["chains"] for f in entry["findings"]} == {100}


@pytest.mark.slow  # imports every experiment, DeepXDE and Qiskit included (about 20 s here)
def test_list_describe_fits_80_columns_and_shows_every_declared_parameter() -> None:
    done = _run("list", "--describe", timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, [line for line in lines if len(line.rstrip()) > 80]
    found = experiments()
    assert found, "no experiment installed"
    for name, experiment in found.items():
        assert f"{name}  ready" in done.stdout, name
        for parameter in experiment.parameters():
            shown = f"-p {parameter.name}={_METAVAR[parameter.type]}"
            assert shown in done.stdout, (name, shown)
