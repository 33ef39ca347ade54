"""The core science headline experiments pass at their quick size (the tour runs them too)."""

from __future__ import annotations

import pytest

from noisygrad.tour.registry import experiments

# the claims behind the slower ones are held by their modules' own tests; here they run as the tour runs them
FAST = ["core.spsa-variance"]
SLOW = [
    "core.lyapunov",
    "core.sgld-boltzmann",
    "core.heavy-tails",
    "core.cosine-alignment",
    "core.variance-reduction",
    "core.lbfgs-noise",
]


def _check(name: str) -> None:
    findings = experiments()[name].run(seed=0, quick=True)
    assert findings
    for finding in findings:
        assert finding.experiment == name
        assert finding.passed, finding


@pytest.mark.parametrize("name", FAST)
def test_fast_experiments_pass(name: str) -> None:
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slower_experiments_pass(name: str) -> None:
    _check(name)
