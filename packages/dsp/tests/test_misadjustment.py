"""LMS misadjustment measured by simulation against the closed forms; RLS tracking against its theory.

Sizes: the relative standard error of a misadjustment estimate is ~0.7% with 32 channels x 200 time constants
and ~0.35% with 64 x 400 (measured here), so the 5% and 10% acceptance tolerances are >= 7 standard errors;
each test also asserts the tolerance is at least 4 of its own standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisygrad.dsp import RLS, theory
from noisygrad.dsp.experiments import simulate_lms_misadjustment

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


def _rls_tracking_emse(
    lam: float, seed: int, taps: int = 8, n: int = 200_000, channels: int = 8
) -> tuple[float, float]:
    """Excess MSE of RLS tracking a random walk (white unit-power input): mean and standard error."""
    noise_var, sigma_q = 1e-2, 5e-4
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((channels, n, taps))
    w = np.cumsum(sigma_q * rng.standard_normal((channels, n, taps)), axis=1)
    v = math.sqrt(noise_var) * rng.standard_normal((channels, n))
    rls = RLS(taps, lam)
    _, e = rls.run_regressors(u, np.einsum("bnl,bnl->bn", u, w) + v)
    burn = int(20 / (1 - lam))
    excess = np.mean((e[:, burn:] - v[:, burn:]) ** 2, axis=1)  # e - v = (w_o - w)^T u: the a-priori excess error
    return float(excess.mean()), float(excess.std(ddof=1) / math.sqrt(channels))


@pytest.mark.slow
def test_rls_tracking_error_and_best_forgetting_factor():
    taps, noise_var, trq = 8, 1e-2, 8 * (5e-4) ** 2
    lam_opt = theory.rls_optimal_forgetting(taps, noise_var, trq)
    one_minus = (1 - lam_opt) * np.array([0.5, 0.7, 1.0, 1.4, 2.0])
    measured = []
    for k, om in enumerate(one_minus):
        mean, se = _rls_tracking_emse(1 - om, seed=k)
        predicted = theory.rls_tracking_emse(1 - om, taps, noise_var, trq)
        assert mean == pytest.approx(predicted, rel=0.05)
        assert 4 * se < 0.05 * predicted
        measured.append(mean)
    # best lambda: vertex of a parabola in log(1 - lam) through the measured points
    coef = np.polyfit(np.log(one_minus), np.log(measured), 2)
    best = math.exp(-coef[1] / (2 * coef[0]))
    assert best == pytest.approx(1 - lam_opt, rel=0.10)
