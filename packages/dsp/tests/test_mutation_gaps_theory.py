"""Exact tests of noisygrad.dsp.theory, sgd and simulations that close the gaps mutation testing found.

Every closed form is checked at a coloured input (unequal eigenvalues, ``noise_var`` and ``mu`` away from 1, 2
and each other), so that a changed constant, operator or exponent changes the number; every checked interval at
both of its ends, exactly; the simulations against a plain re-implementation that draws the same numbers from
the same generator (so the comparison is to rounding, not to a Monte-Carlo tolerance).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov

import noisygrad as ng
from noisygrad.dsp import LMS, RLS, StreamingLeastSquares, sgd_lms, theory
from noisygrad.dsp.sgd import gradient_noise_covariance
from noisygrad.dsp.simulations import Misadjustment, simulate_lms_misadjustment, simulate_rls_tracking

LAM = np.array([0.3, 1.7, 0.9, 2.6])  # a coloured input's eigenvalues, unsorted on purpose


def _coloured_matrix(lam: np.ndarray, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.size, lam.size)))
    r = q @ np.diag(lam) @ q.T
    return (r + r.T) / 2


def _eta(mu: float, lam: np.ndarray) -> float:
    return float(sum(mu * x / (2 * (1 - mu * x)) for x in lam))


# -- input_eigenvalues ----------------------------------------------------------------------------------------


def test_input_eigenvalues_of_a_matrix_a_vector_and_a_scalar():
    np.testing.assert_allclose(theory.input_eigenvalues([[2.0, 1.0], [1.0, 2.0]]), [1.0, 3.0], rtol=1e-14)
    np.testing.assert_array_equal(theory.input_eigenvalues(LAM), LAM)  # 1-D: the eigenvalues as given
    np.testing.assert_array_equal(theory.input_eigenvalues(2.5), [2.5])
    np.testing.assert_array_equal(theory.input_eigenvalues([0.5]), [0.5])  # one eigenvalue, below 1
    np.testing.assert_array_equal(theory.input_eigenvalues([0.0, 0.25]), [0.0, 0.25])  # one zero is allowed
    np.testing.assert_allclose(theory.input_eigenvalues(0.5 * np.eye(3)), [0.5, 0.5, 0.5], rtol=1e-15)
    with pytest.raises(ValueError, match=r"^R must have 1 or 2 dimensions"):
        theory.input_eigenvalues(np.ones((2, 2, 2)))


@pytest.mark.parametrize(
    "R",
    [
        np.ones((2, 3)),  # not square
        [[2.0, 1.0 + 1e-8], [1.0, 2.0]],  # asymmetric beyond the relative 1e-10 (within numpy's default 1e-5)
        [[1e-3, 1e-9], [0.0, 1e-3]],  # asymmetric, tiny entries: no absolute allowance
    ],
    ids=["not-square", "asymmetric", "asymmetric-tiny"],
)
def test_input_eigenvalues_refuses_a_matrix_that_is_not_symmetric_square(R):
    with pytest.raises(ValueError, match="R must be a symmetric square matrix"):
        theory.input_eigenvalues(R)


def test_input_eigenvalues_allows_rounding_asymmetry():
    r = np.array([[2.0, 1.0], [1.0 + 1e-12, 2.0]])
    assert theory.input_eigenvalues(r).shape == (2,)


@pytest.mark.parametrize("R", [np.array([]), [1.0, -1.0], [0.0, 0.0], [[0.0, 0.0], [0.0, 0.0]]])
def test_input_eigenvalues_refuses_empty_negative_or_zero(R):
    with pytest.raises(ValueError, match="R"):
        theory.input_eigenvalues(R)


# -- LMS: stability bound, misadjustment, time constants -------------------------------------------------------


def test_mean_square_stability_bound_is_the_root_of_eta_to_rounding():
    for lam in (LAM, 1e4 * LAM):  # large eigenvalues: a small bound, where an absolute tolerance would show
        bound = theory.lms_stability_bound(lam)
        assert 0 < bound < 1 / lam.max()
        assert _eta(bound, lam) == pytest.approx(1.0, rel=1e-12, abs=0)
    assert theory.lms_stability_bound(_coloured_matrix(LAM), kind="mean-square") == pytest.approx(
        theory.lms_stability_bound(LAM), rel=1e-12
    )
    assert theory.lms_stability_bound(LAM, kind="mean") == 2.0 / 2.6
    with pytest.raises(ValueError, match="kind must be 'mean' or 'mean-square'"):
        theory.lms_stability_bound(LAM, kind="mean_square")


def test_lms_misadjustment_forms_on_a_coloured_input():
    mu, tr = 0.07, float(LAM.sum())
    eta = _eta(mu, LAM)
    assert theory.lms_misadjustment(mu, LAM) == pytest.approx(eta / (1 - eta), rel=1e-14)
    assert theory.lms_misadjustment(mu, LAM, form="exact") == theory.lms_misadjustment(mu, LAM)
    assert theory.lms_misadjustment(mu, _coloured_matrix(LAM)) == pytest.approx(eta / (1 - eta), rel=1e-12)
    assert theory.lms_misadjustment(mu, LAM, form="small-step") == pytest.approx(mu * tr / 2, rel=1e-15)
    assert theory.lms_misadjustment(mu, LAM, form="separation") == pytest.approx(mu * tr / (2 - mu * tr), rel=1e-15)
    with pytest.raises(ValueError, match=r"form must be one of \('exact', 'small-step', 'separation'\)"):
        theory.lms_misadjustment(mu, LAM, form="widrow")


def test_lms_misadjustment_refuses_each_form_at_its_bound_exactly():
    # separation: mu tr(R) = 2 exactly (tr = 4, mu = 0.5)
    with pytest.raises(ValueError, match="separation form"):
        theory.lms_misadjustment(0.5, [1.0, 3.0], form="separation")
    assert theory.lms_misadjustment(0.25, [1.0, 3.0], form="separation") == 1.0
    # exact: eta = 1 exactly (two white taps of power 1 at mu = 0.5: 2 * 0.5 / (2 * 0.5))
    assert _eta(0.5, np.ones(2)) == 1.0
    with pytest.raises(ValueError, match="mean-square stability bound"):
        theory.lms_misadjustment(0.5, np.ones(2))
    # exact: mu l_max = 1 exactly, and past it (where eta < 1 but the mode diverges)
    with pytest.raises(ValueError, match="mean-square stability bound"):
        theory.lms_misadjustment(1.0, [1.0])
    assert _eta(1.5, np.ones(1)) < 1
    with pytest.raises(ValueError, match="mean-square stability bound"):
        theory.lms_misadjustment(1.5, [1.0])
    assert _eta(0.5, np.array([4.0])) < 1  # mu l_max = 2 (and mu / l_max = 1 / 8)
    with pytest.raises(ValueError, match="mean-square stability bound"):
        theory.lms_misadjustment(0.5, [4.0])


def test_lms_time_constants_sorted_with_zero_modes_and_large_steps():
    mu = 0.6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the zero mode's log(1) = 0 divides without a warning
        tau = theory.lms_time_constants(mu, [2.5, 0.0, 0.4])
        tau_mse = theory.lms_time_constants(mu, [2.5, 0.0, 0.4], mse=True)
    assert tau[0] == np.inf
    # 0.4 gives |1 - 0.24|; 2.5 gives |1 - 1.5| = 0.5 (past 1 / l, the mode oscillates but converges)
    np.testing.assert_allclose(tau[1:], [-1 / math.log(1 - mu * 0.4), -1 / math.log(0.5)], rtol=1e-14)
    np.testing.assert_array_equal(tau_mse, tau / 2)
    np.testing.assert_array_equal(theory.lms_time_constants(mu, [0.4], mse=False), tau[1:2])
    np.testing.assert_array_equal(theory.lms_time_constants(mu, [0.4]), tau[1:2])  # default: weights, not MSE
    with pytest.raises(ValueError, match="mean-convergence bound"):
        theory.lms_time_constants(0.8, [2.5])  # mu = 2 / l_max exactly
    assert math.isfinite(theory.lms_time_constants(0.79, [2.5])[0])


# -- tracking ----------------------------------------------------------------------------------------------------


def test_lms_tracking_closed_forms():
    mu, s2, trr, trq = 0.03, 0.2, 4.0, 7e-4
    assert theory.lms_tracking_emse(mu, s2, trr, trq) == pytest.approx(mu * s2 * trr / 2 + trq / (2 * mu), rel=1e-15)
    assert theory.lms_optimal_step(s2, trr, trq) == pytest.approx(math.sqrt(trq / (s2 * trr)), rel=1e-15)
    for bad in ({"mu": 0.0}, {"noise_var": 0.0}, {"trace_r": 0.0}, {"trace_q": 0.0}):
        args = {"mu": mu, "noise_var": s2, "trace_r": trr, "trace_q": trq} | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            theory.lms_tracking_emse(**args)


def test_rls_tracking_closed_forms_and_ranges():
    lam, taps, s2, trq = 0.9, 3, 0.2, 0.05
    expected = (1 - lam) * taps * s2 / (1 + lam) + trq / (1 - lam**2)
    assert theory.rls_tracking_emse(lam, taps, s2, trq) == pytest.approx(expected, rel=1e-14)
    stationary = (1 - lam) * taps * s2 / (1 + lam)
    assert theory.rls_tracking_emse(lam, taps, s2, 0.0) == pytest.approx(stationary, rel=1e-14)  # trace_rq = 0
    for bad_lam in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"lam must lie in \(0.0, 1.0\)"):
            theory.rls_tracking_emse(bad_lam, taps, s2, trq)
    with pytest.raises(ValueError, match="trace_rq"):
        theory.rls_tracking_emse(lam, taps, s2, -1e-9)
    with pytest.raises(ValueError, match="trace_rq"):
        theory.rls_tracking_emse(lam, taps, s2, math.inf)
    with pytest.raises(TypeError, match="taps"):
        theory.rls_tracking_emse(lam, 3.0, s2, trq)
    with pytest.raises(ValueError, match="noise_var"):
        theory.rls_tracking_emse(lam, taps, 0.0, trq)
    # the optimum: 1 - sqrt(tr(RQ) / (L J_min)); at tr(RQ) = L J_min exactly, RLS cannot track
    assert theory.rls_optimal_forgetting(taps, s2, trq) == pytest.approx(1 - math.sqrt(trq / (taps * s2)), rel=1e-15)
    with pytest.raises(ValueError, match="too large for RLS to track"):
        theory.rls_optimal_forgetting(4, 0.25, 1.0)
    with pytest.raises(TypeError, match="taps"):
        theory.rls_optimal_forgetting(4.0, 0.25, 0.5)


# -- noise ball ---------------------------------------------------------------------------------------------------


def test_noise_ball_solves_the_lyapunov_equation_for_a_coloured_hessian():
    mu = 0.11
    h = _coloured_matrix(LAM, seed=1)
    sigma = _coloured_matrix(np.array([0.2, 0.05, 0.4, 0.1]), seed=2)
    k = theory.noise_ball_covariance(mu, h, sigma)
    a = np.eye(4) - mu * h
    np.testing.assert_allclose(k, a @ k @ a + mu**2 * sigma, rtol=1e-10, atol=1e-15)
    m = theory.noise_ball_misadjustment(mu, h, sigma, 0.3)
    assert m == pytest.approx(np.trace(h @ k) / 0.3, rel=1e-12)


@pytest.mark.parametrize(
    ("hessian", "noise_cov", "match"),
    [
        (np.eye(2), np.eye(3), "hessian and noise_cov must be square of the same shape"),
        (np.ones((2, 3)), np.ones((2, 3)), "hessian and noise_cov must be square of the same shape"),
        (np.ones(2), np.eye(2), "^hessian must have 2 dimensions"),
        (np.eye(2), np.ones(2), "^noise_cov must have 2 dimensions"),
    ],
    ids=["different-shapes", "not-square", "hessian-1d", "noise_cov-1d"],
)
def test_noise_ball_refuses_mismatched_or_non_square(hessian, noise_cov, match):
    with pytest.raises(ValueError, match=match):
        theory.noise_ball_covariance(0.1, hessian, noise_cov)


def test_noise_ball_misadjustment_takes_a_matrix_only():
    with pytest.raises(ValueError, match=r"^R must have 2 dimensions"):
        theory.noise_ball_misadjustment(0.1, np.ones(2), np.eye(2), 0.1)
    with pytest.raises(ValueError, match="noise_var"):
        theory.noise_ball_misadjustment(0.1, np.eye(2), np.eye(2), 0.0)


# -- exponentially weighted least squares ----------------------------------------------------------------------


def test_ewls_weights_are_the_weighted_regularised_least_squares_solution():
    rng = np.random.default_rng(4)
    n, taps, lam, delta = 5, 3, 0.8, 2.5  # few samples: the regulariser lam^N delta matters
    u, d = rng.standard_normal((n, taps)), rng.standard_normal(n)
    gram = lam**n * delta * np.eye(taps)
    rhs = np.zeros(taps)
    for j in range(n):
        gram += lam ** (n - 1 - j) * np.outer(u[j], u[j])
        rhs += lam ** (n - 1 - j) * d[j] * u[j]
    np.testing.assert_allclose(theory.ewls_weights(u, d, lam, delta), np.linalg.solve(gram, rhs), rtol=1e-12)
    # lam = 1 is allowed (no forgetting): ordinary ridge regression with ridge delta
    ridge = np.linalg.solve(u.T @ u + delta * np.eye(taps), u.T @ d)
    np.testing.assert_allclose(theory.ewls_weights(u, d, 1.0, delta), ridge, rtol=1e-12)
    for bad_lam in (0.0, 1.0000001):
        with pytest.raises(ValueError, match=r"lam must lie in \(0.0, 1.0\]"):
            theory.ewls_weights(u, d, bad_lam, delta)
    with pytest.raises(ValueError, match="same number of samples"):
        theory.ewls_weights(u, d[:-1], lam, delta)
    with pytest.raises(ValueError, match=r"^u must have 2 dimensions"):
        theory.ewls_weights(d, d, lam, delta)
    with pytest.raises(ValueError, match=r"^d must have 1 dimensions"):
        theory.ewls_weights(u, u, lam, delta)
    with pytest.raises(ValueError, match="delta"):
        theory.ewls_weights(u, d, lam, 0.0)


# -- LMF, sign-sign, affine projection ---------------------------------------------------------------------------


@pytest.mark.parametrize(("noise", "k4", "k6"), [("gaussian", 3.0, 15.0), ("uniform", 9 / 5, 27 / 7)])
def test_lmf_excess_mse_closed_forms(noise, k4, k6):
    mu, s2 = 0.05, 0.3
    tr = float(LAM.sum())
    m4, m6 = k4 * s2**2, k6 * s2**3
    first = mu * tr * m6 / (6 * s2 - 15 * mu * tr * m4)
    assert theory.lmf_excess_mse(mu, LAM, s2, noise=noise) == pytest.approx(first, rel=1e-14)
    assert theory.lmf_excess_mse(mu, LAM, s2, noise=noise, form="first-order") == pytest.approx(first, rel=1e-14)
    small = mu * tr * m6 / (6 * s2)
    assert theory.lmf_excess_mse(mu, LAM, s2, noise=noise, form="small-step") == pytest.approx(small, rel=1e-14)


def test_lmf_defaults_are_gaussian_first_order():
    assert theory.lmf_excess_mse(0.05, LAM, 0.3) == theory.lmf_excess_mse(
        0.05, LAM, 0.3, noise="gaussian", form="first-order"
    )
    with pytest.raises(ValueError, match=r"noise must be one of \['gaussian', 'uniform'\]"):
        theory.lmf_excess_mse(0.05, LAM, 0.3, noise="laplace")


def test_lmf_refuses_the_step_where_the_denominator_is_zero_exactly():
    mu, s2 = 0.5, 0.25
    m4 = 3.0 * s2**2
    tr = 6.0 * s2 / (15.0 * mu * m4)
    while 6.0 * s2 - 15.0 * mu * tr * m4 > 0:  # the float trace at which the module's denominator is 0.0
        tr = np.nextafter(tr, np.inf)
    while 6.0 * s2 - 15.0 * mu * tr * m4 < 0:
        tr = np.nextafter(tr, 0.0)
    assert 6.0 * s2 - 15.0 * mu * tr * m4 == 0.0
    with pytest.raises(ValueError, match=r"mu must be < 6 s2 / \(15 tr\(R\) m4\)"):
        theory.lmf_excess_mse(mu, [tr], s2)
    below = float(np.nextafter(np.nextafter(tr, 0.0), 0.0))
    assert 6.0 * s2 - 15.0 * mu * below * m4 > 0
    assert theory.lmf_excess_mse(mu, [below], s2) > 0


def _sign_sign_fixed_point_residual(mu: float, r: np.ndarray, s2: float, emse: float) -> float:
    """``tr(R K) - emse`` with ``K`` the stationary covariance at ``s_e^2 = s2 + emse`` (the docstring's law)."""
    dinv = 1 / np.sqrt(np.diag(r))
    s = (2 / np.pi) * np.arcsin(np.clip(r * np.outer(dinv, dinv), -1, 1))
    a = np.eye(r.shape[0]) - mu * 2 / (np.pi * math.sqrt(s2 + emse)) * (dinv[:, None] * r)
    k = solve_discrete_lyapunov(a, mu**2 * s)
    return float(np.trace(r @ k)) - emse


def test_sign_sign_excess_mse_is_the_fixed_point_of_its_law():
    r = np.array([[1.5, 0.6, 0.2], [0.6, 0.8, -0.3], [0.2, -0.3, 2.4]])  # unequal diagonal, correlated
    # the second: an excess MSE of 1.6 s2, so the iteration contracts slowly (24 rounds); its relative residual is
    # 1.3e-14 here, and 7e-12 if the stopping rule were absolute (1e-13) instead of relative to the excess MSE
    for mu, s2 in ((3e-3, 0.04), (0.01, 0.001)):
        emse = theory.sign_sign_excess_mse(mu, r, s2)
        assert emse > 0
        assert abs(_sign_sign_fixed_point_residual(mu, r, s2, emse)) <= 5e-13 * emse
    assert theory.sign_sign_excess_mse(1e-3, 0.5, 0.01) == theory.sign_sign_excess_mse(1e-3, [[0.5]], 0.01)
    assert theory.sign_sign_excess_mse(1e-3, [[2, 1], [1, 2]], 0.01) == theory.sign_sign_excess_mse(
        1e-3, np.array([[2.0, 1.0], [1.0, 2.0]]), 0.01
    )


@pytest.mark.parametrize(
    "R",
    [
        np.ones((2, 3)),
        [[2.0, 1.0 + 1e-8], [1.0, 2.0]],
        [[1e-3, 1e-9], [0.0, 1e-3]],
        [[1.0, 0.0], [0.0, 0.0]],
        [[1.0, 2.0], [2.0, 1.0]],
        np.ones(3),
    ],
    ids=["not-square", "asymmetric", "asymmetric-tiny", "singular", "indefinite", "1-d"],
)
def test_sign_sign_refuses_what_is_not_symmetric_positive_definite(R):
    with pytest.raises(ValueError, match="R must be a symmetric positive definite matrix"):
        theory.sign_sign_excess_mse(1e-3, R, 0.01)


def test_sign_sign_refuses_a_boolean_r_as_input_eigenvalues_does():
    with pytest.raises(TypeError, match="R must hold real numbers"):
        theory.sign_sign_excess_mse(1e-3, np.eye(2, dtype=bool), 0.01)
    with pytest.raises(TypeError, match="must hold real numbers"):
        theory.input_eigenvalues(np.eye(2, dtype=bool))


def test_inverse_energy_closed_form_for_two_pairs_of_eigenvalues():
    # int_0^inf dt / ((1 + 2 a t)(1 + 2 b t)) = ln(b / a) / (2 (b - a))
    for a, b in ((0.5, 3.0), (1e-3, 2e3)):  # a b != 1, so 2 l t and 2 t / l differ
        expected = math.log(b / a) / (2 * (b - a))
        assert theory.inverse_energy([a, a, b, b]) == pytest.approx(expected, rel=1e-10)
        assert theory.inverse_energy([0.0, a, 0.0, a, b, b]) == pytest.approx(expected, rel=1e-10)  # zeros dropped
    assert theory.inverse_energy([2.0, 2.0, 2.0]) == pytest.approx(1 / (2.0 * (3 - 2)), rel=1e-10)  # 3 taps: finite
    with pytest.raises(ValueError, match="infinite for 2 nonzero"):
        theory.inverse_energy([0.0, 1.0, 3.0])


def test_ap_misadjustment_closed_form_and_range():
    order, mu = 3, 0.7
    lam = np.array([0.5, 0.5, 3.0, 3.0])
    expected = order * mu / (2 - mu) * 7.0 * (math.log(6.0) / 5.0)
    assert theory.ap_misadjustment(mu, lam, order=order) == pytest.approx(expected, rel=1e-8)
    assert theory.ap_misadjustment(mu, lam) == pytest.approx(expected / order, rel=1e-8)  # default order 1
    for bad in (0.0, 2.0):
        with pytest.raises(ValueError, match=r"mu must lie in \(0.0, 2.0\)"):
            theory.ap_misadjustment(bad, lam)
    assert theory.ap_misadjustment(1.999, lam) > 0


# -- sgd.py: LMS as SGD ----------------------------------------------------------------------------------------


def test_streaming_estimate_is_one_samples_loss_gradient_and_cost():
    rng = np.random.default_rng(5)
    u, d = rng.standard_normal((6, 3)), rng.standard_normal(6)
    est = StreamingLeastSquares(u, d)
    assert est.position == 0
    assert est.state_dict() == {"position": 0}
    w = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    for k in range(3):
        e = d[k] - u[k] @ w.numpy()
        estimate = est.estimate(w, torch.Generator())
        assert estimate.stats == {"error": pytest.approx(e, rel=1e-14)}
        assert float(estimate.value) == pytest.approx(0.5 * e**2, rel=1e-14)
        np.testing.assert_allclose(estimate.grad.numpy(), -e * u[k], rtol=1e-14)
        assert estimate.cost == ng.Cost(examples=1)
        assert est.position == k + 1
    assert est.state_dict() == {"position": 3}
    est.load_state_dict({"position": 5})
    assert est.position == 5
    e5 = d[5] - u[5] @ w.numpy()
    assert est.estimate(w, torch.Generator()).stats["error"] == pytest.approx(e5, rel=1e-14)
    with pytest.raises(IndexError, match="exhausted after 6 samples"):
        est.estimate(w, torch.Generator())


def test_streaming_copies_its_inputs_and_checks_shapes():
    u, d = np.arange(12.0).reshape(4, 3) / 10, np.linspace(-1, 1, 4)
    est = StreamingLeastSquares(u, d)
    u[:] = 0.0
    d[:] = 0.0
    e0 = np.linspace(-1, 1, 4)[0] - np.arange(3.0) / 10 @ np.ones(3)
    assert est.estimate(torch.ones(3, dtype=torch.float64), torch.Generator()).stats["error"] == pytest.approx(e0)
    with pytest.raises(ValueError, match="same number of samples"):
        StreamingLeastSquares(np.ones((3, 4)), np.ones(4))  # taps equal to the other's length: still refused
    with pytest.raises(ValueError, match=r"^u must have 2 dimensions"):
        StreamingLeastSquares(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match=r"^d must have 1 dimensions"):
        StreamingLeastSquares(np.ones((4, 1)), np.ones((4, 1)))
    est = StreamingLeastSquares(np.ones((4, 2)), np.ones(4))
    with pytest.raises(ng.NonFiniteGradientError, match="the stream did not advance"):
        est.estimate(torch.tensor([math.nan, 0.0], dtype=torch.float64), torch.Generator())
    assert est.position == 0


def test_sgd_lms_starts_at_w0():
    rng = np.random.default_rng(6)
    u, d, w0 = rng.standard_normal((30, 3)), rng.standard_normal(30), np.array([0.4, -0.1, 0.2])
    lms = LMS(3, 0.05, w0=w0)
    lms.run_regressors(u, d=d)
    np.testing.assert_allclose(sgd_lms(u, d, 0.05, w0=w0), lms.weights, rtol=0, atol=1e-13)
    plain = LMS(3, 0.05)
    plain.run_regressors(u, d=d)
    np.testing.assert_allclose(sgd_lms(u, d, 0.05), plain.weights, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match=r"^w0 must have 1 dimensions"):
        sgd_lms(u, d, 0.05, w0=np.zeros((3, 1)))


def test_gradient_noise_covariance_closed_form():
    rng = np.random.default_rng(7)
    n, taps = 9, 3
    u, e = rng.standard_normal((n, taps)), rng.standard_normal(n)
    weights, w_opt = rng.standard_normal((n, taps)), rng.standard_normal(taps)
    r = _coloured_matrix(np.array([0.5, 1.0, 2.0]))
    xi = np.array([-e[k] * u[k] - r @ (weights[k] - w_opt) for k in range(n)])
    expected = sum(np.outer(x, x) for x in xi) / n
    np.testing.assert_allclose(gradient_noise_covariance(u, e, weights, w_opt, r), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"u": np.ones(9)}, "^u must have 2 dimensions"),
        ({"e": np.ones((9, 1))}, "^e must have 1 dimensions"),
        ({"weights": np.ones(9)}, "^weights must have 2 dimensions"),
        ({"w_opt": np.ones((3, 1))}, "^w_opt must have 1 dimensions"),
        ({"R": np.ones(3)}, "^R must have 2 dimensions"),
        ({"weights": np.ones((9, 2))}, "must agree"),
        ({"e": np.ones(8)}, "must agree"),
        ({"w_opt": np.ones(2)}, "must agree"),
    ],
    ids=["u-1d", "e-2d", "weights-1d", "w_opt-2d", "R-1d", "weights-shape", "e-length", "w_opt-length"],
)
def test_gradient_noise_covariance_refuses_shapes(change, match):
    args = {"u": np.ones((9, 3)), "e": np.ones(9), "weights": np.ones((9, 3)), "w_opt": np.ones(3), "R": np.eye(3)}
    with pytest.raises(ValueError, match=match):
        gradient_noise_covariance(**(args | change))


# -- simulations.py ------------------------------------------------------------------------------------------


def _reference_lms(mu, taps, noise_var, channels, burn_in, average, seed, chunk):
    """The simulation written plainly: the same draws from the same generator, one sample at a time."""
    rng = np.random.default_rng(seed)
    n_burn, n_avg = int(burn_in / (2 * mu)), int(average / (2 * mu))
    total = n_burn + n_avg
    w_opt = rng.standard_normal((channels, taps)) / math.sqrt(taps)
    xs, vs, done = [], [], 0
    while done < total:  # the draws come chunk by chunk: inputs, then noise
        n = min(chunk, total - done)
        xs.append(rng.standard_normal((channels, n)))
        vs.append(math.sqrt(noise_var) * rng.standard_normal((channels, n)))
        done += n
    x, v = np.concatenate(xs, axis=1), np.concatenate(vs, axis=1)
    per = np.zeros(channels)
    for c in range(channels):
        w, xp = np.zeros(taps), np.concatenate([np.zeros(taps - 1), x[c]])
        for k in range(total):
            u = xp[k : k + taps][::-1]
            if k >= n_burn:
                per[c] += np.sum((w - w_opt[c]) ** 2)
            w = w + mu * (w_opt[c] @ u + v[c, k] - w @ u) * u
    per /= n_avg * noise_var
    return per.mean(), per.std(ddof=1) / math.sqrt(channels), total


def _reference_rls(lam, taps, noise_var, sigma_q, channels, samples, burn_in, seed, chunk):
    rng = np.random.default_rng(seed)
    us, qs, vs, done = [], [], [], 0
    while done < samples:
        n = min(chunk, samples - done)
        us.append(rng.standard_normal((channels, n, taps)))
        qs.append(sigma_q * rng.standard_normal((channels, n, taps)))
        vs.append(math.sqrt(noise_var) * rng.standard_normal((channels, n)))
        done += n
    u, v = np.concatenate(us, axis=1), np.concatenate(vs, axis=1)
    walk = np.cumsum(np.concatenate(qs, axis=1), axis=1)
    _, e = RLS(taps, lam).run_regressors(u, d=np.einsum("bnl,bnl->bn", u, walk) + v)
    burn = int(burn_in / (1 - lam))
    per = np.sum((e - v)[:, burn:] ** 2, axis=1) / (samples - burn)
    return per.mean(), per.std(ddof=1) / math.sqrt(channels)


def test_lms_simulation_equals_its_plain_reference_across_chunks():
    # burn-in ends inside the third chunk (25 of 65 samples, chunks of 11): every chunk boundary is crossed
    kw = {"taps": 3, "noise_var": 0.04, "channels": 3, "burn_in": 2.5, "average": 4.0, "seed": 5, "chunk": 11}
    m = simulate_lms_misadjustment(0.05, **kw)
    mean, se, total = _reference_lms(0.05, **kw)
    assert (m.channels, m.samples) == (3, total) == (3, 65)
    assert m.mean == pytest.approx(mean, rel=1e-12)
    assert m.stderr == pytest.approx(se, rel=1e-12)
    zero_burn = simulate_lms_misadjustment(0.05, **(kw | {"burn_in": 0.0, "channels": 2}))
    mean0, se0, total0 = _reference_lms(0.05, **(kw | {"burn_in": 0.0, "channels": 2}))
    assert (zero_burn.mean, zero_burn.stderr, zero_burn.samples) == (
        pytest.approx(mean0, rel=1e-12),
        pytest.approx(se0, rel=1e-12),
        total0,
    )


def test_rls_simulation_equals_its_plain_reference_across_chunks():
    kw = {"taps": 2, "noise_var": 0.05, "sigma_q": 0.01, "channels": 3, "samples": 70, "burn_in": 2.5, "seed": 8}
    for chunk in (13, 70):
        got = simulate_rls_tracking(0.9, chunk=chunk, **kw)  # burn-in: 25 samples
        np.testing.assert_allclose(got, _reference_rls(0.9, chunk=chunk, **kw), rtol=1e-10)
    still = kw | {"sigma_q": 0.0, "burn_in": 0.0, "channels": 2}  # a fixed system, no burn-in: both allowed
    np.testing.assert_allclose(
        simulate_rls_tracking(0.9, chunk=13, **still), _reference_rls(0.9, chunk=13, **still), rtol=1e-10
    )


def test_simulation_defaults_are_the_documented_ones():
    assert simulate_lms_misadjustment(0.1) == simulate_lms_misadjustment(
        0.1, taps=16, noise_var=0.01, channels=32, burn_in=20.0, average=200.0, seed=0, chunk=16384
    )
    # the default chunk: 16500 samples, more than one chunk of 16384
    kw = {"taps": 2, "channels": 2, "burn_in": 0.0, "average": 330.0}
    default = simulate_lms_misadjustment(0.01, **kw)
    assert default.samples == 16500
    assert default == simulate_lms_misadjustment(0.01, chunk=16384, **kw)
    assert default != simulate_lms_misadjustment(0.01, chunk=16385, **kw)
    assert simulate_rls_tracking(0.9, samples=20_500) == simulate_rls_tracking(
        0.9, taps=8, noise_var=1e-2, sigma_q=5e-4, channels=8, samples=20_500, burn_in=20.0, seed=0, chunk=20_000
    )
    with pytest.raises(ValueError, match=r"got samples = 200000$"):  # the default number of samples
        simulate_rls_tracking(0.5, burn_in=1e6)


def test_simulations_check_channels_and_seed_ends():
    assert simulate_lms_misadjustment(0.1, taps=2, channels=2, burn_in=1.0, average=2.0).channels == 2
    with pytest.raises(ValueError, match="channels must be >= 2"):
        simulate_rls_tracking(0.9, channels=1, samples=100)
    with pytest.raises(ValueError, match="channels must be an integer > 0"):
        simulate_rls_tracking(0.9, channels=0, samples=100)
    small = {"taps": 2, "channels": 2, "samples": 60, "burn_in": 1.0}
    assert simulate_rls_tracking(0.9, seed=0, **small) == simulate_rls_tracking(0.9, **small)
    with pytest.raises(ValueError, match="burn_in"):
        simulate_rls_tracking(0.9, **(small | {"burn_in": -1.0}))
    with pytest.raises(ValueError, match="samples must exceed the burn-in"):
        simulate_rls_tracking(0.5, samples=40, burn_in=20.0)  # burn-in of exactly 40 samples
    with pytest.raises(ValueError, match=r"burn_in / \(1 - lam\) = inf samples"):  # lam = 1 never forgets
        simulate_rls_tracking(1.0, samples=100)
    assert len(simulate_rls_tracking(0.5, samples=41, burn_in=20.0, taps=2, channels=2)) == 2


def test_misadjustment_is_frozen():
    m = Misadjustment(0.1, 0.01, 4, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.mean = 0.2  # type: ignore[misc]
