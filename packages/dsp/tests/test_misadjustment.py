"""LMS misadjustment measured by simulation against the closed forms; RLS tracking against its theory.

Sizes: the relative standard error of a misadjustment estimate is ~0.7% with 32 channels x 200 time constants
and ~0.35% with 64 x 400 (measured here), so the 5% and 10% acceptance tolerances are >= 7 standard errors;
each test also asserts the tolerance is at least 4 of its own standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from noisygrad.dsp import theory
from noisygrad.dsp.experiments import rls_tracking, simulate_lms_misadjustment

TAPS = 16


def _check(mu_tr: float, channels: int, average: float, seed: int) -> None:
    mu = mu_tr / TAPS
    m = simulate_lms_misadjustment(mu, taps=TAPS, channels=channels, average=average, seed=seed)
    exact = theory.lms_misadjustment(mu, np.ones(TAPS))
    assert 4 * m.stderr < 0.05 * exact, "the run is too short for the tolerance"
    assert m.mean == pytest.approx(exact, rel=0.05)
    if mu_tr <= 0.1:
        small = mu_tr / 2
        assert 4 * m.stderr < 0.10 * small
        assert m.mean == pytest.approx(small, rel=0.10)


@pytest.mark.parametrize(("mu_tr", "seed"), [(0.05, 1), (0.4, 2), (0.8, 3)])
def test_lms_misadjustment_matches_the_exact_formula(mu_tr, seed):
    _check(mu_tr, channels=32, average=200.0, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mu_tr", "seed"), [(0.01, 11), (0.02, 12), (0.05, 13), (0.1, 14), (0.2, 15), (0.4, 16), (0.8, 17)]
)
def test_lms_misadjustment_sweep(mu_tr, seed):
    _check(mu_tr, channels=64, average=400.0, seed=seed)


@pytest.mark.slow
def test_rls_tracking_error_and_best_forgetting_factor():
    """Tracking error within 5% of theory at 5 forgetting factors around the optimum; best lambda within 10%."""
    findings = rls_tracking(seed=0, quick=False)
    assert len(findings) == 6
    for f in findings:
        assert 4 * f.uncertainty < f.tolerance, "the run is too short for the tolerance"
        assert f.passed, (f.claim, f.predicted, f.measured, f.uncertainty)
