"""The plugin record and its experiments (run at reduced size where a full run would take too long)."""

import importlib

import pytest

from noisygrad.plugins import get
from noisygrad.quantum import experiments


def test_plugin_registers_its_experiments():
    plugin = get("quantum")
    assert set(plugin.experiments) == {
        "quantum.shot-variance",
        "quantum.gradient-variance",
        "quantum.spsa-h2",
        "quantum.adaptive-shots",
    }
    for name, target in plugin.experiments.items():
        module, function = target.split(":")
        assert module == "noisygrad.quantum.experiments"
        assert name == f"quantum.{function.replace('_', '-')}"
        assert callable(getattr(importlib.import_module(module), function))


def test_shot_variance_findings_pass():
    findings = experiments.shot_variance(seed=1)
    assert len(findings) == 3
    assert all(f.passed for f in findings), [f.as_dict() for f in findings if not f.passed]
    shots, gaussian = findings[0], findings[2]
    assert shots.predicted < 0.5 * gaussian.predicted  # real shot noise of H2 is well below the 1/S model


@pytest.mark.slow
def test_gradient_variance_findings_pass():
    findings = experiments.gradient_variance(seed=0)
    assert all(f.passed for f in findings), [f.as_dict() for f in findings if not f.passed]


def test_adaptive_shots_findings_pass():
    noise, held = experiments.adaptive_shots(seed=0)
    assert noise.passed, noise.as_dict()
    assert held.passed, held.as_dict()
    assert noise.uncertainty < 0.01  # the noise measurement is resolved to 1% (seed 0: 1.001 +- 0.003)
    shots = noise.curve.measured
    assert shots[0] == 10
    assert max(shots) > 1000 * shots[0]  # the shots grow as the gradient falls


@pytest.mark.slow
def test_spsa_h2_finding_passes():
    (finding,) = experiments.spsa_h2(seed=0, quick=False)
    assert finding.passed, finding.as_dict()
