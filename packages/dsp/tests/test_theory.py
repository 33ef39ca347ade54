"""Closed forms of noisygrad.dsp.theory: limits, special cases, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisygrad.dsp import theory


def test_white_input_closed_forms():
    taps, s2 = 16, 2.0
    R = s2 * np.eye(taps)
    # mean-square bound for white Gaussian input: eta(mu) = L mu s2 / (2 (1 - mu s2)) = 1
    assert theory.lms_stability_bound(R) == pytest.approx(2 / ((taps + 2) * s2), rel=1e-12)
    assert theory.lms_stability_bound(R, kind="mean") == pytest.approx(2 / s2, rel=1e-15)
    mu = 0.01
    eta = taps * mu * s2 / (2 * (1 - mu * s2))
    assert theory.lms_misadjustment(mu, R) == pytest.approx(eta / (1 - eta), rel=1e-14)
    assert theory.lms_misadjustment(mu, R, form="small-step") == pytest.approx(mu * taps * s2 / 2, rel=1e-15)
    tr = mu * taps * s2
    assert theory.lms_misadjustment(mu, R, form="separation") == pytest.approx(tr / (2 - tr), rel=1e-15)


def test_exact_form_approaches_the_small_step_form_and_exceeds_it():
    lam = np.linspace(0.2, 3.0, 10)  # a coloured input, given by its eigenvalues
    for mu in (1e-5, 1e-4):
        small = theory.lms_misadjustment(mu, lam, form="small-step")
        exact = theory.lms_misadjustment(mu, lam)
        assert exact > small
        assert exact / small - 1 < 3 * mu * lam.sum()
    # the matrix and its eigenvalues give the same answer
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    R = q @ np.diag(lam) @ q.T
    assert theory.lms_misadjustment(0.01, R) == pytest.approx(theory.lms_misadjustment(0.01, lam), rel=1e-10)


def test_misadjustment_past_the_bound_raises_naming_it():
    bound = theory.lms_stability_bound(np.ones(16))
    with pytest.raises(ValueError, match=r"mean-square stability bound 0\.111"):
        theory.lms_misadjustment(1.01 * bound, np.ones(16))
    assert math.isfinite(theory.lms_misadjustment(0.99 * bound, np.ones(16)))
    with pytest.raises(ValueError, match="mu must be"):
        theory.lms_misadjustment(0.0, np.ones(4))
    with pytest.raises(ValueError, match="form must be"):
        theory.lms_misadjustment(0.01, np.ones(4), form="widrow")
    with pytest.raises(ValueError, match="R must be positive semi-definite"):
        theory.lms_misadjustment(0.01, [1.0, -1.0])


def test_time_constants():
    lam = np.array([0.5, 2.0])
    tau = theory.lms_time_constants(0.01, lam)
    np.testing.assert_allclose(tau, -1 / np.log(1 - 0.01 * lam), rtol=1e-14)
    np.testing.assert_allclose(tau, 1 / (0.01 * lam), rtol=0.02)  # ~ 1/(mu l) for small steps
    np.testing.assert_allclose(theory.lms_time_constants(0.01, lam, mse=True), tau / 2, rtol=1e-15)
    with pytest.raises(ValueError, match="mean-convergence bound"):
        theory.lms_time_constants(1.0, lam)


def test_rls_tracking_optimum_minimises_the_tracking_error():
    taps, noise_var, trq = 8, 1e-2, 8 * 2.5e-7  # white input s2 = 1, sigma_q = 5e-4
    lam_opt = theory.rls_optimal_forgetting(taps, noise_var, trq)
    assert 1 - lam_opt == pytest.approx(5e-4 / 0.1, rel=1e-12)  # sigma_x sigma_q / sigma_v
    grid = 1 - np.geomspace(1e-4, 1e-1, 20001)
    emse = np.array([theory.rls_tracking_emse(lam, taps, noise_var, trq) for lam in grid])
    best = grid[np.argmin(emse)]
    assert (1 - best) / (1 - lam_opt) == pytest.approx(1.0, abs=0.01)
    # the minimum is about sqrt(L sigma_v^2 tr(RQ))
    assert emse.min() == pytest.approx(math.sqrt(taps * noise_var * trq), rel=0.01)
    with pytest.raises(ValueError, match="too large for RLS"):
        theory.rls_optimal_forgetting(2, 1e-2, 1.0)
    with pytest.raises(ValueError, match=r"lam must lie in \(0.0, 1.0\)"):
        theory.rls_tracking_emse(1.0, 4, 1.0, 0.1)


def test_lms_tracking_optimum():
    mu = theory.lms_optimal_step(1e-2, 8.0, 8 * 2.5e-7)
    grid = np.geomspace(mu / 3, mu * 3, 2001)
    best = grid[np.argmin([theory.lms_tracking_emse(m, 1e-2, 8.0, 8 * 2.5e-7) for m in grid])]
    assert best == pytest.approx(mu, rel=2e-3)


def test_noise_ball_with_noise_at_the_optimum_gives_the_additive_formula():
    """Additive gradient noise J_min R (white, power s2): K = mu J_min / (2 - mu s2) I, M = mu tr R / (2 - mu s2)."""
    taps, s2, noise_var, mu = 6, 1.5, 0.01, 0.05
    R = s2 * np.eye(taps)
    K = theory.noise_ball_covariance(mu, R, noise_var * R)
    np.testing.assert_allclose(K, mu * noise_var / (2 - mu * s2) * np.eye(taps), rtol=1e-12, atol=1e-18)
    m = theory.noise_ball_misadjustment(mu, R, noise_var * R, noise_var)
    assert m == pytest.approx(mu * taps * s2 / (2 - mu * s2), rel=1e-12)
    # with the Gaussian fourth-moment noise 2RKR + R tr(RK) included, its fixed point is the exact formula
    k = mu * noise_var / 2
    for _ in range(200):
        sigma = noise_var * R + R @ (k * np.eye(taps)) @ R + R * np.trace(R * k)
        k = theory.noise_ball_covariance(mu, R, sigma)[0, 0]
    assert np.trace(R) * k / noise_var == pytest.approx(theory.lms_misadjustment(mu, R), rel=1e-10)


def test_ewls_checks():
    with pytest.raises(ValueError, match="same number of samples"):
        theory.ewls_weights(np.ones((4, 2)), np.ones(3), 0.9, 1.0)
    with pytest.raises(ValueError, match="lam"):
        theory.ewls_weights(np.ones((4, 2)), np.ones(4), 1.5, 1.0)
