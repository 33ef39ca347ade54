"""The ``noisygrad`` command as a newcomer meets it: ``--version``, text printed as written (no terminal markup
eaten), errors on stderr and as JSON with ``--json``, declared parameters behind ``-p``, tables readable at 80
columns, and ``list``/``plugins`` without importing torch.

Fake experiments live in a module written to a temporary folder and replace ``experiments()`` in the command, so a
test controls their claims, units and parameters; the real core experiments are run where they take well under a
second (``core.noise-ball``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import noisygrad
from noisygrad import plugins as _plugins
from noisygrad.tour import cli
from noisygrad.tour import registry as tour

FAKES = '''
from noisygrad.tour.findings import Finding
from noisygrad.tour.parameters import Parameter, takes


@takes(
    Parameter("flips", int, 400, "coin flips", full=4000, low=10, high=100_000),
    Parameter("bias", float, 0.5, "probability of heads", low=0.0, high=1.0),
    Parameter("method", str, "exact", "how the fraction is computed", choices=("exact", "rounded")),
    Parameter("loud", bool, False, "say more in the details"),
)
def coin(seed=0, quick=True, *, flips, bias, method, loud):
    """A coin that records the parameters it ran with."""
    details = {"flips": flips, "bias": bias, "method": method, "loud": loud, "quick": quick}
    return [Finding("fake.coin", "heads come up with the coin's bias", bias, bias, 0.0, 0.1, "fraction", details)]


def markup(seed=0, quick=True):
    """[bold]Claims[/bold] may hold square brackets: pip install 'noisygrad[pinn]'."""
    return [
        Finding("fake.markup", "[bold]not bold[/bold], [red]not red[/]: pip install 'noisygrad[pinn]'", 1.0, 1.0,
                0.0, 0.1, "[unit]"),
        Finding("fake.markup", "a [link=x]failed[/link] claim", 1.0, 2.0, 0.0, 0.1, "[unit]"),
    ]


def wide(seed=0, quick=True):
    """Long claims, long units and numbers of every size, as the real experiments have."""
    claim = ("E[cos(g_b, g)] at b=16 of N=2000, far from the optimum (d_eff=85): second-order (delta method) "
             "prediction, with the first-order law (1 + (rho/b)(1 - b/N))^(-1/2) in the details")
    return [
        Finding("fake.wide-experiment-name", claim, 0.000123456789, 0.000120111, 2.34567e-05, 9.87654e-05,
                "relative Frobenius error"),
        Finding("fake.wide-experiment-name", "a large one", 1234567.891, 1234001.5, 1234.5678, 5000.0, "steps^2"),
        Finding.at_most("fake.wide-experiment-name", "an upper bound", 0.0016, 0.00038263148, 0.000123, unit="Ha"),
    ]
'''

runner = CliRunner()


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Register the fake experiments as ``fake.<function>`` (or as ``renamed`` says); returns a setter choosing
    which."""
    (tmp_path / "noisygrad_cli_fakes.py").write_text(textwrap.dedent(FAKES))
    monkeypatch.syspath_prepend(str(tmp_path))

    def use(*names, renamed=None):
        full = {n: (renamed or {}).get(n, f"fake.{n}") for n in names}
        registry = {full[n]: tour.Experiment(full[n], f"noisygrad_cli_fakes:{n}") for n in names}
        monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: registry)

    return use


@pytest.fixture
def narrow(monkeypatch):
    """The command's consoles at 80 columns, as in a default terminal."""
    monkeypatch.setattr(cli, "console", Console(width=80))
    monkeypatch.setattr(cli, "errors", Console(width=80, stderr=True))


def _run(*args):
    return runner.invoke(cli.app, list(args))


# --version ------------------------------------------------------------------------------------------------------


def test_version_prints_the_version_and_exits_0():
    result = _run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"noisygrad {noisygrad.__version__}\n"


# markup -----------------------------------------------------------------------------------------------------------


def test_a_missing_plugin_shows_its_install_command_whole(monkeypatch, narrow):
    plugin = _plugins.Plugin("pinn", "noisygrad.pinn", "PINNs [with brackets]", requires=("deepxde",))
    status = _plugins.PluginStatus(plugin, "noisygrad-pinn", "0.1.0", ("deepxde",))
    monkeypatch.setattr(cli._plugins, "available", lambda: [status])
    result = _run("plugins")
    assert result.exit_code == 0, result.output
    assert plugin.extra in result.stdout  # whole: the markup used to eat "[pinn]" of "pip install 'noisygrad[pinn]'"
    assert "PINNs [with brackets]" in result.stdout
    assert "needs deepxde" in result.stdout


def test_no_plugins_installed_names_the_documented_install_of_all_plugins(monkeypatch, narrow):
    monkeypatch.setattr(cli._plugins, "available", lambda: [])
    result = _run("plugins")
    assert cli.ALL_PLUGINS_INSTALL in result.stdout  # whole, on one line, at 80 columns too
    assert "'./[all]'" in cli.ALL_PLUGINS_INSTALL
    documented = (Path(__file__).resolve().parents[1] / ".ci" / "install-check").read_text()
    assert f'"{cli.ALL_PLUGINS_INSTALL}"' in documented  # the command install-check runs in a fresh venv


def test_claims_units_and_summaries_are_printed_as_written(fakes, monkeypatch):
    fakes("markup")
    monkeypatch.setattr(cli, "console", Console(width=200))
    result = _run("run", "fake.markup")
    assert result.exit_code == 1  # the second claim fails
    assert "[bold]not bold[/bold], [red]not red[/]: pip install 'noisygrad[pinn]'" in result.stdout
    assert "a [link=x]failed[/link] claim ([unit])" in result.stdout
    listed = _run("list", "--describe")
    assert "[bold]Claims[/bold] may hold square brackets: pip install 'noisygrad[pinn]'." in listed.stdout


def test_tour_failures_are_printed_as_written(fakes, monkeypatch, tmp_path):
    fakes("markup")
    monkeypatch.setattr(cli, "console", Console(width=200))
    result = _run("tour", "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert "FAIL #2 fake.markup: a [link=x]failed[/link] claim" in result.stdout
    assert "measured 2 ± 0 [unit]" in result.stdout


# errors -----------------------------------------------------------------------------------------------------------


def test_errors_go_to_stderr_and_nothing_to_stdout():
    result = _run("run", "nosuch")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no experiment named 'nosuch'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuch", "--json"], "no experiment named 'nosuch'"),
        (["run", "fake.coin", "-p", "flips=many", "--json"], "parameter flips takes an integer in [10, 100000]"),
        (["run", "fake.coin", "-p", "flips", "--json"], "--param/-p takes NAME=VALUE, got 'flips'"),
        (["tour", "--only", "nosuch", "--json"], "no experiment named 'nosuch'"),
    ],
)
def test_with_json_an_error_is_a_json_object_on_stdout(fakes, args, message):
    fakes("coin")
    result = _run(*args)
    assert result.exit_code == 2
    error = json.loads(result.stdout)  # stdout parses, whatever went wrong
    assert error["exit_code"] == 2
    assert message in error["error"]
    assert message in " ".join(result.stderr.split())  # and on stderr, for the person at the terminal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "fake.coin", "--json", "--jobs", "0"], "Invalid value for '--jobs' / '-j'"),
        (["run", "--json"], "Missing argument 'names'"),
        (["run", "fake.coin", "--json", "--no-such-option"], "No such option: --no-such-option"),
    ],
)
def test_with_json_a_usage_error_is_a_json_object_too(fakes, capsys, args, message):
    fakes("coin")
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code == 2
    printed = capsys.readouterr()
    error = json.loads(printed.out)
    assert message in error["error"]
    assert error["exit_code"] == 2
    assert message in printed.err


def test_main_with_json_exits_with_the_commands_status(fakes, capsys):
    fakes("coin")
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "fake.coin", "--json", "-p", "flips=20"])
    assert stop.value.code == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["findings"][0]["details"]["flips"] == 20


# parameters -------------------------------------------------------------------------------------------------------


def test_p_sets_declared_parameters_of_every_type(fakes):
    fakes("coin")
    result = _run("run", "fake.coin", "-p", "flips=100", "-p", "bias=0.25", "-p", "method=rounded", "-p", "loud=yes")
    assert result.exit_code == 0, result.output
    result = _run("run", "fake.coin", "--json", "-p", "flips=1_000", "-p", "bias=1", "-p", "loud=false")
    (entry,) = json.loads(result.stdout)
    details = entry["findings"][0]["details"]
    assert details == {"flips": 1000, "bias": 1.0, "method": "exact", "loud": False, "quick": True}
    assert isinstance(details["bias"], float)


def test_the_full_size_takes_the_full_defaults(fakes):
    fakes("coin")
    (entry,) = json.loads(_run("run", "fake.coin", "--json", "--full").stdout)
    assert entry["findings"][0]["details"]["flips"] == 4000
    (entry,) = json.loads(_run("run", "fake.coin", "--json", "--full", "-p", "flips=30").stdout)
    assert entry["findings"][0]["details"]["flips"] == 30


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("flops=3", "experiment fake.coin has no parameter flops; it takes: flips, bias, method, loud"),
        ("flips=3.5", "parameter flips takes an integer in [10, 100000], got '3.5'"),
        ("flips=5", "parameter flips takes an integer in [10, 100000], got 5"),
        ("bias=2", "parameter bias takes a number in [0, 1], got 2.0"),
        ("bias=nan", "parameter bias takes a number in [0, 1], got nan"),
        ("method=fancy", "parameter method takes one of 'exact', 'rounded', got 'fancy'"),
        ("loud=maybe", "parameter loud takes true or false, got 'maybe'"),
    ],
)
def test_a_bad_parameter_is_refused_naming_it_and_what_it_allows(fakes, narrow, pair, message):
    fakes("coin")
    result = _run("run", "fake.coin", "-p", pair)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in " ".join(result.stderr.split())


def test_list_describe_shows_each_parameter(fakes, narrow):
    fakes("coin")
    result = _run("list", "--describe")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "-p flips=INT  default 400 (full: 4000); an integer in [10, 100000]" in out
    assert "-p bias=FLOAT  default 0.5; a number in [0, 1]" in out
    assert "-p method=TEXT  default exact; one of 'exact', 'rounded'" in out
    assert "-p loud=BOOL  default false; true or false" in out
    assert "coin flips" in out


def test_a_real_experiment_takes_its_declared_parameters():
    result = _run("run", "core.noise-ball", "--json", "-p", "chains=300", "-p", "steps=150")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert {(f["details"]["chains"], f["details"]["steps"]) for f in entry["findings"]} == {(300, 150)}
    refused = _run("run", "core.noise-ball", "-p", "chains=10")
    assert refused.exit_code == 2
    assert "parameter chains takes an integer in [100, 10000000], got 10" in " ".join(refused.stderr.split())


# 80 columns -------------------------------------------------------------------------------------------------------


_LONG = "quantum.a-rather-long-experiment-name"  # longer than any real one


def _lines_fit(text, width=80):
    return all(len(line.rstrip()) <= width for line in text.splitlines())


def test_the_findings_table_keeps_names_and_numbers_whole_at_80_columns(fakes, narrow):
    fakes("wide", renamed={"wide": _LONG})
    result = _run("run", _LONG)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert _lines_fit(out)
    for whole in (
        _LONG,
        "0.0001235",
        "0.0001201 ± 2.3e-05",
        "9.9e-05",
        "1.235e+06",
        "1.234e+06 ± 1.2e+03",
        "≤ 0.0016",
        "0.0003826 ± 0.00012",
    ):
        assert any(whole in line for line in out.splitlines()), whole
    numbers = [line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert numbers == ["1", "2", "3"]


def test_the_tour_summary_keeps_names_whole_at_80_columns(fakes, narrow, tmp_path):
    fakes("wide", "markup", renamed={"wide": _LONG})
    result = _run("tour", "--out", str(tmp_path / "r"))
    assert _lines_fit(result.stdout)
    for name in (_LONG, "fake.markup"):
        assert name in result.stdout


def _command(args, **env):
    code = f"import sys\nfrom noisygrad.tour.cli import main\nmain({args!r})"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["list", "plugins"])
def test_list_and_plugins_in_an_80_column_terminal(command):
    done = _command([command], COLUMNS="80")
    assert done.returncode == 0, done.stderr
    assert _lines_fit(done.stdout)
    names = (
        tour.experiments(include_unusable=True) if command == "list" else {s.distribution for s in _plugins.available()}
    )
    for name in names:
        assert name in done.stdout, name


# start-up ---------------------------------------------------------------------------------------------------------


def test_list_plugins_and_version_import_neither_torch_nor_scipy():
    code = textwrap.dedent(
        """
        import sys
        from noisygrad.tour.cli import main
        for args in (["list"], ["plugins"], ["--version"]):
            try:
                main(args)
            except SystemExit:
                pass
        heavy = ("torch", "scipy", "numpy", "matplotlib", "deepxde", "qiskit")
        print("IMPORTED", sorted(name for name in heavy if name in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"


def test_list_describe_says_which_experiment_cannot_be_loaded(fakes, monkeypatch, narrow):
    fakes("coin")
    registry = dict(cli.experiments())
    registry["fake.gone"] = tour.Experiment("fake.gone", "noisygrad_no_such_module:gone")
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: registry)
    result = _run("list", "--describe")
    assert result.exit_code == 0, result.output
    assert "cannot be loaded: ModuleNotFoundError" in result.stdout
    assert "-p flips=INT" in result.stdout  # the other experiments are still described


def test_version_answers_without_the_application_extra(monkeypatch, capsys):
    from noisygrad import tour as application

    monkeypatch.setitem(sys.modules, "typer", None)  # as if the tour extra were not installed
    monkeypatch.setattr(sys, "argv", ["noisygrad", "--version"])
    application.main()
    assert capsys.readouterr().out == f"noisygrad {noisygrad.__version__}\n"
    monkeypatch.setattr(sys, "argv", ["noisygrad", "list"])
    with pytest.raises(SystemExit, match=r"noisygrad-core\[tour\]"):
        application.main()
