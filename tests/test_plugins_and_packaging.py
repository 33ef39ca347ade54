"""Suite-wide: plugin discovery, lazy imports, the CLI, and the distributions' metadata."""

import importlib.metadata as md
import json
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from noisygrad import plugins
from noisygrad.tour.cli import app

PLUGINS = ["bio", "dsp", "pinn", "quantum"]


def test_every_plugin_is_discovered_with_its_distribution():
    statuses = plugins.available()
    assert [s.plugin.name for s in statuses] == PLUGINS
    for s in statuses:
        assert s.distribution == f"noisygrad-{s.plugin.name}"
        assert s.version == "0.1.0"
        assert s.usable, s.missing


def test_listing_plugins_imports_no_heavy_package():
    code = (
        "import sys; from noisygrad import plugins; plugins.available(); "
        "heavy = [m for m in ('torch', 'deepxde', 'qiskit', 'qiskit_aer', 'numba') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_field_package_names_the_extra_to_install():
    plugin = plugins.Plugin(
        name="quantum", module="noisygrad.quantum", requires=("qiskit", "surely-not-a-real-distribution")
    )
    assert plugin.missing() == ["surely-not-a-real-distribution"]
    with pytest.raises(plugins.MissingDependencyError, match=r"pip install 'noisygrad\[quantum\]'") as raised:
        plugins.require(plugin)
    # the missing package by name too: that command works from a clone as well as from the package index
    assert "pip install surely-not-a-real-distribution" in str(raised.value)


def test_plugins_declare_their_field_packages_and_experiments_in_metadata():
    declared = {s.plugin.name: s.plugin for s in plugins.available()}
    assert {"qiskit", "qiskit-algorithms"} <= set(declared["quantum"].requires)
    assert "qiskit-aer" not in declared["quantum"].requires  # an extra: aer or aer-gpu, never both
    assert "deepxde" in declared["pinn"].requires
    for name, plugin in declared.items():
        assert plugin.module == f"noisygrad.{name}"
        assert all(exp.startswith(f"{name}.") for exp in plugin.experiments)


def test_an_unknown_plugin_says_what_is_installed():
    with pytest.raises(plugins.MissingDependencyError, match="installed: bio, dsp, pinn, quantum") as raised:
        plugins.load("astronomy")
    # nothing named noisygrad is on the package index yet: the clone's documented command comes with the extra
    assert "pip install ./packages/core ./packages/astronomy './[astronomy]'" in str(raised.value)


def test_load_imports_the_plugin_through_the_namespace():
    module = plugins.load("dsp")
    assert module.__name__ == "noisygrad.dsp"


def test_core_distribution_pulls_no_field_package():
    """A plain install of the core pulls no field package; numba only through the opt-in ``fast`` extra."""
    unconditional = [Requirement(line) for line in md.requires("noisygrad-core") or []]
    unconditional = [req.name.lower() for req in unconditional if req.marker is None]
    assert unconditional, "the core declares its base requirements"
    for heavy in ("deepxde", "qiskit", "qiskit-aer", "numba"):
        assert heavy not in unconditional
    for extra in ("test", "tour", "ray", "dask"):
        assert not {"deepxde", "qiskit"} & {name.split("[")[0] for name in _pulled_by_core(extra)}


def _pulled_by_core(extra):
    return {
        Requirement(line).name.lower()
        for line in md.requires("noisygrad-core") or []
        if Requirement(line).marker is not None and Requirement(line).marker.evaluate({"extra": extra})
    }


def _pulled_by(extra):
    pulled = set()
    for line in md.requires("noisygrad") or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}):
            pulled.add(f"{req.name}{req.specifier}")
    return pulled


def test_meta_distribution_extras_pull_the_plugins():
    for name in PLUGINS:
        assert _pulled_by(name) == {f"noisygrad-{name}==0.1.0"}
    assert _pulled_by("all") == {f"noisygrad-{name}==0.1.0" for name in PLUGINS}
    assert _pulled_by("gpu") == {"noisygrad-quantum==0.1.0"}
    assert md.metadata("noisygrad").get_all("Provides-Extra") == ["all", "bio", "dsp", "gpu", "pinn", "quantum"]


runner = CliRunner()


def test_cli_plugins_lists_versions():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for name in PLUGINS:
        assert f"noisygrad-{name}" in result.output


def test_cli_run_prints_machine_readable_findings():
    result = runner.invoke(app, ["run", "core.noise-ball", "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    assert entry["experiment"] == "core.noise-ball"
    assert all(f["passed"] for f in entry["findings"])


def test_cli_run_unknown_experiment_exits_2():
    result = runner.invoke(app, ["run", "core.nothing"])
    assert result.exit_code == 2
    assert "no experiment named 'core.nothing'" in result.output


def test_cli_list_shows_core_experiments():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "core.minibatch-variance" in result.output
