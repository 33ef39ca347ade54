"""Exact tests that close the mutation-testing gaps of ``noise/theory.py``, ``noise/momentum.py`` and
``noise/per_example.py`` (issue 18).

Every check is exact or to rounding (float64), against references written independently of the code under test:
stationary covariances from a dense Kronecker solve of the Lyapunov equation, with the iteration matrices of the
heavy ball and Nesterov built by applying ``torch.optim.SGD``'s update rule to unit vectors; the least-squares
batch moments by enumerating every batch; Adam's exact mean step by adaptive quadrature (scipy ``quad``) of the
same integral with the finite-step weights; the probe's trace from the very signs its generator draws. The
argument checks are held at their boundaries (tolerances of the symmetry and positive-semi-definite checks, the
smallest batch, the stability edge). No statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from torch import nn

import noisygrad as ng
from noisygrad.noise import momentum as momentum_module
from noisygrad.noise.momentum import adam_expected_step, heavy_ball_stationary_covariance
from noisygrad.noise.per_example import (
    NOISE_METHODS,
    BatchNoise,
    PerExampleNoise,
    batch_noise,
    check_noise_method,
    linear_layers,
)
from noisygrad.noise.theory import (
    NoiseBall,
    langevin_stationary_covariance,
    least_squares_sgld_noise_correction,
    least_squares_sgld_stationary_covariance,
    least_squares_stationary_covariance,
    mean_first_passage_time,
    noise_ball,
    sgd_stationary_covariance,
)

F64 = torch.float64
A = np.array([[1.0, 0.3], [0.3, 0.2]])  # eigenvalues 0.1 and 1.1, axes tilted from C's
C = np.array([[1.0, -0.2], [-0.2, 0.5]])


def _discrete_lyapunov(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``S = M S M^T + Q`` by a dense Kronecker solve (independent of scipy's Lyapunov solvers)."""
    n = m.shape[0]
    return np.linalg.solve(np.eye(n * n) - np.kron(m, m), q.reshape(-1)).reshape(n, n)


def _continuous_lyapunov(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``A S + S A^T = Q`` by a dense Kronecker solve."""
    n = a.shape[0]
    eye = np.eye(n)
    return np.linalg.solve(np.kron(a, eye) + np.kron(eye, a), q.reshape(-1)).reshape(n, n)


# ------------------------------------------------------------------------------------------- theory: SGD


def test_theory_gap_sgd_discrete_and_continuous_covariances_solve_their_lyapunov_equations() -> None:
    lr, b = 0.3, 4
    expected = _discrete_lyapunov(np.eye(2) - lr * A, lr**2 * C / b)
    np.testing.assert_allclose(sgd_stationary_covariance(A, C, lr, b), expected, rtol=1e-12)
    np.testing.assert_allclose(
        sgd_stationary_covariance(A, C, lr, b, method="continuous"), _continuous_lyapunov(A, lr * C / b), rtol=1e-12
    )
    # defaults: batch_size 1 and the discrete method; a torch tensor is read as the same matrix
    default = sgd_stationary_covariance(A, C, lr)
    np.testing.assert_allclose(default, _discrete_lyapunov(np.eye(2) - lr * A, lr**2 * C), rtol=1e-12)
    np.testing.assert_allclose(sgd_stationary_covariance(torch.tensor(A), torch.tensor(C), lr), default, rtol=1e-15)
    # one dimension: lr c / (B a (2 - lr a))
    assert sgd_stationary_covariance([[2.0]], [[0.7]], 0.3, 5)[0, 0] == pytest.approx(
        0.3 * 0.7 / (5 * 2.0 * (2 - 0.6)), rel=1e-13
    )


def test_theory_gap_sgd_refuses_the_stability_edge_and_a_singular_continuous_hessian() -> None:
    # lr = 2 / lambda_max exactly: I - lr A = diag(-1, 0) has spectral radius 1, no stationary law
    with pytest.raises(ValueError, match="unstable"):
        sgd_stationary_covariance(np.diag([1.0, 0.5]), np.eye(2), 2.0)
    sgd_stationary_covariance(np.diag([1.0, 0.5]), np.eye(2), 1.999)
    with pytest.raises(ValueError, match="unstable"):  # a flat direction: radius exactly 1 at any lr
        sgd_stationary_covariance(np.diag([1.0, 0.0]), np.eye(2), 0.1)
    with pytest.raises(ValueError, match="positive definite for the continuous"):
        sgd_stationary_covariance(np.diag([1.0, 0.0]), np.eye(2), 0.1, method="continuous")
    # a small positive eigenvalue is accepted
    small = sgd_stationary_covariance(np.diag([1.0, 0.01]), np.eye(2), 0.1, method="continuous")
    np.testing.assert_allclose(np.diag(small), [0.05, 5.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("hessian", "match"),
    [
        ([1.0, 2.0], r"^hessian must be a non-empty square matrix, got shape \(2,\)"),
        (np.ones((2, 3)), r"^hessian must be a non-empty square matrix, got shape \(2, 3\)"),
        (np.ones((0, 0)), r"^hessian must be a non-empty square matrix, got shape \(0, 0\)"),
        ([[1.0, np.nan], [np.nan, 1.0]], r"^hessian must hold finite numbers"),
        ([[1.0, 0.0], [1.0, 1.0]], r"^hessian must be symmetric"),
    ],
)
def test_theory_gap_matrices_are_refused_naming_the_argument(hessian: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sgd_stationary_covariance(hessian, np.eye(2), 0.1)  # type: ignore[arg-type]


def test_theory_gap_matrices_must_hold_numbers() -> None:
    with pytest.raises(TypeError, match=r"^hessian must be a square matrix of numbers, got str"):
        sgd_stationary_covariance("H", np.eye(2), 0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^noise_cov must be a square matrix of numbers, got list"):
        sgd_stationary_covariance(np.eye(2), [["a", "b"], ["c", "d"]], 0.1)  # type: ignore[list-item]
    # integer entries are read as float64
    got = sgd_stationary_covariance([[2, 0], [0, 1]], [[1, 0], [0, 1]], 0.25)
    assert got.dtype == np.float64
    np.testing.assert_allclose(np.diag(got), [0.25 / (2 * 1.5), 0.25 / 1.75], rtol=1e-14)


def test_theory_gap_a_one_by_one_matrix_is_accepted() -> None:
    assert sgd_stationary_covariance([[1.0]], [[1.0]], 0.5)[0, 0] == pytest.approx(0.5 / 1.5, rel=1e-14)


def test_theory_gap_the_symmetry_check_allows_rounding_relative_to_the_matrix_scale() -> None:
    # |m_ij - m_ji| <= 1e-12 max(1, max|m|) + 1e-10 |m_ji|: at scale 1 an absolute 1e-12, at scale 1e6 1e-6
    sgd_stationary_covariance([[1.0, 0.5e-12], [0.0, 1.0]], np.eye(2), 0.1)
    with pytest.raises(ValueError, match=r"^hessian must be symmetric"):
        sgd_stationary_covariance([[1.0, 1.5e-12], [0.0, 1.0]], np.eye(2), 0.1)
    sgd_stationary_covariance([[1e6, 0.5e-6], [0.0, 1.0]], np.eye(2), 1e-7)
    with pytest.raises(ValueError, match=r"^hessian must be symmetric"):
        sgd_stationary_covariance([[1e6, 2e-6], [0.0, 1.0]], np.eye(2), 1e-7)
    # and 1e-10 relative to the entry: a relative 5e-11 passes, 5e-9 and 1e-7 do not (ones of size 1)
    sgd_stationary_covariance([[2.0, 1.0 + 5e-11], [1.0, 2.0]], np.eye(2), 0.1)
    for gap in (5e-9, 1e-7):
        with pytest.raises(ValueError, match=r"^hessian must be symmetric"):
            sgd_stationary_covariance([[2.0, 1.0 + gap], [1.0, 2.0]], np.eye(2), 0.1)


def test_theory_gap_the_covariance_check_allows_rounding_below_zero_only() -> None:
    # the smallest eigenvalue may be down to -1e-12 max(1, max|eigenvalue|), no further
    sgd_stationary_covariance(np.eye(2), np.diag([1.0, 0.0]), 0.1)  # singular noise: one direction only
    sgd_stationary_covariance(np.eye(2), np.diag([1.0, -1e-12]), 0.1)
    with pytest.raises(ValueError, match=r"^noise_cov must be positive semi-definite"):
        sgd_stationary_covariance(np.eye(2), np.diag([1.0, -1.5e-12]), 0.1)
    sgd_stationary_covariance(np.eye(2), np.diag([100.0, -5e-11]), 0.1)  # scale 100: down to -1e-10
    with pytest.raises(ValueError, match=r"^noise_cov must be positive semi-definite"):
        sgd_stationary_covariance(np.eye(2), np.diag([100.0, -2e-10]), 0.1)
    with pytest.raises(ValueError, match=r"^noise_cov must be positive semi-definite"):
        sgd_stationary_covariance(np.eye(2), np.diag([1.0, -1e-3]), 0.1)
    with pytest.raises(ValueError, match=r"^noise_cov must be positive semi-definite"):
        sgd_stationary_covariance(np.eye(2), np.diag([-1e-3, 1.0]), 0.1)


def test_theory_gap_noise_ball_fields_and_defaults() -> None:
    lr, b = 0.2, 3
    sigma = _discrete_lyapunov(np.eye(2) - lr * A, lr**2 * C / b)
    ball = noise_ball(A, C, lr, b)
    np.testing.assert_allclose(ball.covariance, sigma, rtol=1e-12)
    assert ball.mean_square_distance == pytest.approx(np.trace(sigma), rel=1e-12)
    assert ball.mean_square_distance < 1  # (a clamp at 1 would show)
    assert ball.radius == pytest.approx(math.sqrt(np.trace(sigma)), rel=1e-12)
    assert ball.excess_loss == pytest.approx(0.5 * np.trace(A @ sigma), rel=1e-12)
    assert noise_ball(A, C, lr).mean_square_distance == pytest.approx(b * ball.mean_square_distance, rel=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ball.radius = 0.0  # type: ignore[misc]
    assert isinstance(ball, NoiseBall)


# ------------------------------------------------------------------------------------- theory: Langevin


def test_theory_gap_langevin_covariance_in_one_dimension_and_defaults() -> None:
    lam, h, t, v = 2.0, 0.1, 0.7, 3.0
    decay = 1 - (1 - h * lam) ** 2
    got = langevin_stationary_covariance([[lam]], h, t, [[v]])
    assert got[0, 0] == pytest.approx((2 * h * t + h * h * v) / decay, rel=1e-13)
    assert langevin_stationary_covariance([[lam]], h)[0, 0] == pytest.approx(2 * h / decay, rel=1e-13)  # T = 1
    np.testing.assert_allclose(
        langevin_stationary_covariance(A, h, t, C),
        _discrete_lyapunov(np.eye(2) - h * A, 2 * h * t * np.eye(2) + h * h * C),
    )
    with pytest.raises(ValueError, match=r"^grad_noise_cov has shape"):
        langevin_stationary_covariance(A, h, t, np.eye(3))
    with pytest.raises(ValueError, match=r"^grad_noise_cov must be positive semi-definite"):
        langevin_stationary_covariance(A, h, t, -np.eye(2))
    with pytest.raises(ValueError, match=r"^hessian must be symmetric"):
        langevin_stationary_covariance([[1.0, 1.0], [0.0, 1.0]], h, t)
    with pytest.raises(ValueError, match="unstable"):
        langevin_stationary_covariance(A, 2.0, t)


def test_theory_gap_langevin_noise_correction_is_exact_and_checked_at_its_psd_boundary() -> None:
    # injected 2 h T I - h^2 C: with C = T A + V the law is T A^-1 exactly
    h, t = 0.1, 0.5
    exact = langevin_stationary_covariance(A, h, t, C, noise_correction=t * A + C)
    np.testing.assert_allclose(exact, t * np.linalg.inv(A), rtol=1e-10)
    one_d = langevin_stationary_covariance([[2.0]], h, t, noise_correction=[[3.0]])
    assert one_d[0, 0] == pytest.approx((2 * h * t - h * h * 3.0) / (1 - (1 - 2 * h) ** 2), rel=1e-13)
    with pytest.raises(ValueError, match=r"^noise_correction must be symmetric"):
        langevin_stationary_covariance(A, h, t, noise_correction=[[1.0, 1.0], [0.0, 1.0]])
    # h = 0.5, T = 2: 2 h T I - h^2 C = 2 I - C / 4, whose eigenvalue may fall to -1e-12 (2 h T), no further
    langevin_stationary_covariance([[0.5]], 0.5, 2.0, noise_correction=[[8.0]])  # exactly 0
    langevin_stationary_covariance([[0.5]], 0.5, 2.0, noise_correction=[[8.0 + 4e-12]])  # -1e-12
    with pytest.raises(ValueError, match="noise_correction is too large"):
        langevin_stationary_covariance([[0.5]], 0.5, 2.0, noise_correction=[[8.0 + 10e-12]])  # -2.5e-12


# ------------------------------------------------------------------------------- theory: least squares


def _regression_data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and least-squares residuals (orthogonal to the features' columns: ``sum_i x_i r_i = 0``)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(1.0, 0.5, d)
    y = x @ rng.normal(size=d) + rng.normal(size=n)
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return x, x @ w - y


def _batches(n: int, b: int, replace: bool) -> list[tuple[int, ...]]:
    """Every equally likely batch: ordered draws with replacement, or subsets without."""
    return list(itertools.product(range(n), repeat=b)) if replace else list(itertools.combinations(range(n), b))


def _enumerated_covariance(
    x: np.ndarray,
    r: np.ndarray,
    lr: float,
    b: int,
    replace: bool,
    scale: float,
    prior: np.ndarray,
    injected: np.ndarray,
) -> np.ndarray:
    """``Sigma = E[(I - lr A_B) Sigma (I - lr A_B)^T] + lr^2 Cov(m_B) + Q`` with the expectations over every batch."""
    d = x.shape[1]
    batches = _batches(x.shape[0], b, replace)
    transition = np.zeros((d * d, d * d))
    offsets = []
    for batch in batches:
        xb = x[list(batch)]
        step = np.eye(d) - lr * (prior + scale * xb.T @ xb / b)
        transition += np.kron(step, step) / len(batches)
        offsets.append(scale * (xb * r[list(batch), None]).mean(0))
    offset_cov = np.cov(np.array(offsets).T, bias=True).reshape(d, d)  # over the equally likely batches
    q = lr**2 * offset_cov + injected
    return np.linalg.solve(np.eye(d * d) - transition, q.reshape(-1)).reshape(d, d)


@pytest.mark.parametrize(
    ("n", "b", "replace"), [(6, 1, True), (6, 2, True), (3, 4, True), (6, 3, False), (6, 6, False)]
)
def test_theory_gap_least_squares_covariance_by_enumerating_every_batch(n: int, b: int, replace: bool) -> None:
    x, r = _regression_data(n, 2, 21)
    lr = 0.15
    zero, none = np.zeros((2, 2)), np.zeros((2, 2))
    if replace:  # least_squares_stationary_covariance draws with replacement (B > N allowed)
        expected = _enumerated_covariance(x, r, lr, b, True, 1.0, zero, none)
        np.testing.assert_allclose(least_squares_stationary_covariance(x, r, lr, b), expected, rtol=1e-10)
    # SGLD on U: scale N, a matrix prior, temperature T, either sampling scheme
    prior, h, t = np.array([[1.0, 0.2], [0.2, 0.5]]), 0.01, 0.7
    expected = _enumerated_covariance(x, r, h, b, replace, float(n), prior, 2 * h * t * np.eye(2))
    got = least_squares_sgld_stationary_covariance(x, r, h, b, prior_precision=prior, temperature=t, replace=replace)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_theory_gap_least_squares_defaults_and_scalar_prior() -> None:
    x, r = _regression_data(6, 2, 22)
    np.testing.assert_allclose(  # batch_size defaults to 1
        least_squares_stationary_covariance(x, r, 0.15),
        _enumerated_covariance(x, r, 0.15, 1, True, 1.0, np.zeros((2, 2)), np.zeros((2, 2))),
        rtol=1e-10,
    )
    h = 0.01
    # defaults: flat prior, T = 1, with replacement
    default = least_squares_sgld_stationary_covariance(x, r, h, 2)
    expected = _enumerated_covariance(x, r, h, 2, True, 6.0, np.zeros((2, 2)), 2 * h * np.eye(2))
    np.testing.assert_allclose(default, expected, rtol=1e-10)
    scalar = least_squares_sgld_stationary_covariance(x, r, h, 2, prior_precision=2.0)
    matrix = least_squares_sgld_stationary_covariance(x, r, h, 2, prior_precision=2.0 * np.eye(2))
    np.testing.assert_allclose(scalar, matrix, rtol=1e-14)
    for numpy_scalar in (np.float32(2.0), np.float64(2.0), np.int64(2)):  # numpy's scalars are numbers too
        same = least_squares_sgld_stationary_covariance(x, r, h, 2, prior_precision=numpy_scalar)
        np.testing.assert_array_equal(same, scalar)
    np.testing.assert_allclose(
        scalar, _enumerated_covariance(x, r, h, 2, True, 6.0, 2.0 * np.eye(2), 2 * h * np.eye(2)), rtol=1e-10
    )


def test_theory_gap_sgld_noise_correction_matches_the_enumerated_moments() -> None:
    # C = T P + Cov(m_B) + E[(A_B - P) T P^-1 (A_B - P)^T], moments over every batch; defaults T = 1, replace
    x, r = _regression_data(5, 2, 23)
    prior = np.array([[0.6, 0.1], [0.1, 0.9]])
    for b, replace, t in [(2, True, 1.0), (3, False, 0.4)]:
        batches = _batches(5, b, replace)
        hessians = [prior + 5.0 * x[list(bt)].T @ x[list(bt)] / b for bt in batches]
        offsets = np.array([5.0 * (x[list(bt)] * r[list(bt), None]).mean(0) for bt in batches])
        p = np.mean(hessians, axis=0)
        target = t * np.linalg.inv(p)
        multiplicative = np.mean([(hb - p) @ target @ (hb - p).T for hb in hessians], axis=0)
        expected = t * p + np.cov(offsets.T, bias=True) + multiplicative
        if t == 1.0:
            got = least_squares_sgld_noise_correction(x, r, b, prior_precision=prior)
        else:
            got = least_squares_sgld_noise_correction(x, r, b, prior_precision=prior, temperature=t, replace=replace)
        np.testing.assert_allclose(got, expected, rtol=1e-10)
    default = least_squares_sgld_noise_correction(x, r, 2)  # a flat prior (prior_precision=0), T = 1, replace
    hessians = [5.0 * x[list(bt)].T @ x[list(bt)] / 2 for bt in _batches(5, 2, True)]
    offsets = np.array([5.0 * (x[list(bt)] * r[list(bt), None]).mean(0) for bt in _batches(5, 2, True)])
    p = np.mean(hessians, axis=0)
    multiplicative = np.mean([(hb - p) @ np.linalg.inv(p) @ (hb - p).T for hb in hessians], axis=0)
    np.testing.assert_allclose(default, p + np.cov(offsets.T, bias=True) + multiplicative, rtol=1e-10)
    np.testing.assert_array_equal(default, least_squares_sgld_noise_correction(x, r, 2, prior_precision=0.0))


def test_theory_gap_least_squares_inputs_are_checked() -> None:
    x, r = _regression_data(6, 2, 24)
    least_squares_stationary_covariance(x[:2], r[:2], 0.1)  # two examples are enough
    with pytest.raises(ValueError, match=r"^features must have shape \(N, d\) with N >= 2"):
        least_squares_stationary_covariance(x[:1], r[:1], 0.1)
    with pytest.raises(ValueError, match=r"^features must have shape \(N, d\)"):
        least_squares_stationary_covariance(x[:, 0], r, 0.1)
    with pytest.raises(ValueError, match=r"^residuals must have shape \(6,\)"):
        least_squares_stationary_covariance(x, r[:2], 0.1)  # 2 = d: the examples' count is what matters
    with pytest.raises(ValueError, match="features and residuals must be finite"):
        least_squares_stationary_covariance(x, np.where(np.arange(6) == 2, np.nan, r), 0.1)
    with pytest.raises(ValueError, match="features and residuals must be finite"):
        least_squares_stationary_covariance(np.where(x == x[0, 0], np.inf, x), r, 0.1)
    with pytest.raises(TypeError, match=r"^features must be an array of numbers"):
        least_squares_stationary_covariance([["a", "b"]], r, 0.1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^residuals must be an array of numbers"):
        least_squares_stationary_covariance(x, ["a"] * 6, 0.1)  # type: ignore[arg-type]
    got = least_squares_stationary_covariance(torch.tensor(x), torch.tensor(r), 0.1)
    np.testing.assert_allclose(got, least_squares_stationary_covariance(x, r, 0.1), rtol=1e-15)
    # without replacement the batch is at most the whole data set; with replacement it may be larger
    least_squares_sgld_stationary_covariance(x, r, 1e-3, 6, replace=False)
    with pytest.raises(ValueError, match=r"batch_size must be <= the number of examples \(6\)"):
        least_squares_sgld_stationary_covariance(x, r, 1e-3, 7, replace=False)
    least_squares_sgld_stationary_covariance(x, r, 1e-3, 7)
    with pytest.raises(ValueError, match=r"^prior_precision must be a number or a \(2, 2\) matrix, got shape \(3, 3\)"):
        least_squares_sgld_stationary_covariance(x, r, 1e-3, 2, prior_precision=np.eye(3))
    with pytest.raises(ValueError, match=r"^prior_precision must be symmetric"):
        least_squares_sgld_stationary_covariance(x, r, 1e-3, 2, prior_precision=[[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"^noise_correction must be symmetric"):
        least_squares_sgld_stationary_covariance(x, r, 1e-3, 2, noise_correction=[[1.0, 1.0], [0.0, 1.0]])


# ---------------------------------------------------------------------------- theory: first passage time


def test_theory_gap_mean_first_passage_time_of_the_harmonic_well() -> None:
    # U = k x^2 / 2: the inner integral is sqrt(pi T / (2 k)) (1 + erf(y sqrt(k / (2 T)))), in closed form;
    # start where U != 0 (the shift cancels) and T != 1
    k, t, start, end = 1.5, 0.6, -0.4, 1.1

    def potential(x: float) -> float:
        return k * x * x / 2

    def integrand(y: float) -> float:
        inner = math.sqrt(math.pi * t / (2 * k)) * (1 + math.erf(y * math.sqrt(k / (2 * t))))
        return math.exp(potential(y) / t) * inner

    value, _ = scipy.integrate.quad(integrand, start, end, epsabs=0, epsrel=1e-13)
    assert mean_first_passage_time(potential, start, end, t) == pytest.approx(value / t, rel=1e-9)


def test_theory_gap_mean_first_passage_time_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match="potential must be callable"):
        mean_first_passage_time(3.0, 0.0, 1.0, 1.0)  # type: ignore[arg-type]
    for start, end in [(0.0, 0.0), (1.0, 0.0), (0.0, math.inf), (-math.inf, 0.0), (math.nan, 1.0)]:
        with pytest.raises(ValueError, match="end must be finite and larger than start"):
            mean_first_passage_time(lambda x: x * x, start, end, 1.0)
    with pytest.raises(ValueError, match=r"^temperature must"):
        mean_first_passage_time(lambda x: x * x, 0.0, 1.0, 0.0)


# --------------------------------------------------------------------------------- momentum: heavy ball


def _torch_sgd_step(x: np.ndarray, b: np.ndarray, g: np.ndarray, lr: float, beta: float, d: float, nesterov: bool):  # type: ignore[no-untyped-def]
    """One step of ``torch.optim.SGD``'s rule on the buffer ``b`` (after its first step) and ``x``."""
    b_new = beta * b + (1 - d) * g
    direction = g + beta * b_new if nesterov else b_new
    return x - lr * direction, b_new


def _reference_iteration(
    h: np.ndarray, lr: float, beta: float, d: float, nesterov: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(M, N)`` of ``z' = M z + N xi``, ``g = H x + xi``: the rule applied to each unit vector."""
    n = h.shape[0]
    m, gain = np.zeros((2 * n, 2 * n)), np.zeros((2 * n, n))
    for j in range(2 * n):
        z = np.eye(2 * n)[j]
        x, b = z[:n], z[n:]
        m[:, j] = np.concatenate(_torch_sgd_step(x, b, h @ x, lr, beta, d, nesterov))
    for j in range(n):
        m_x, m_b = _torch_sgd_step(np.zeros(n), np.zeros(n), np.eye(n)[j], lr, beta, d, nesterov)
        gain[:, j] = np.concatenate([m_x, m_b])
    return m, gain


@pytest.mark.parametrize(
    ("lr", "beta", "dampening", "nesterov", "batch"),
    [(0.3, 0.9, 0.0, False, 1), (0.7, 0.6, 0.35, False, 3), (0.4, 0.8, 0.0, True, 2), (1.2, 0.3, 0.0, True, 1)],
)
def test_momentum_gap_heavy_ball_and_nesterov_covariances_solve_the_lyapunov_equation_of_the_rule(
    lr: float, beta: float, dampening: float, nesterov: bool, batch: int
) -> None:
    m, gain = _reference_iteration(A, lr, beta, dampening, nesterov)
    expected = _discrete_lyapunov(m, gain @ (C / batch) @ gain.T)
    got = heavy_ball_stationary_covariance(
        A, C, lr, beta, batch, dampening=dampening, nesterov=nesterov, augmented=True
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(got, got.T)
    plain = heavy_ball_stationary_covariance(A, C, lr, beta, batch, dampening=dampening, nesterov=nesterov)
    np.testing.assert_allclose(plain, expected[:2, :2], rtol=1e-10, atol=1e-15)


def test_momentum_gap_continuous_limit_uses_the_effective_step_with_dampening() -> None:
    # lr_eff = lr (1 - d) / (1 - beta): H S + S H = lr_eff C / B
    lr, beta, d, b = 0.02, 0.8, 0.25, 3
    got = heavy_ball_stationary_covariance(A, C, lr, beta, b, dampening=d, method="continuous")
    np.testing.assert_allclose(got, _continuous_lyapunov(A, lr * (1 - d) / (1 - beta) * C / b), rtol=1e-12)


def test_momentum_gap_heavy_ball_refuses_a_flat_direction_and_argument_edges() -> None:
    with pytest.raises(ValueError, match="unstable"):  # lambda = 0: M has the eigenvalue 1 exactly
        heavy_ball_stationary_covariance([[0.0]], [[1.0]], 0.1, 0.5)
    with pytest.raises(ValueError, match=r"^momentum must lie in \[0\.0, 1\.0\)"):
        heavy_ball_stationary_covariance(A, C, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"^dampening must lie in \[0\.0, 1\.0\)"):
        heavy_ball_stationary_covariance(A, C, 0.1, 0.5, dampening=1.0)
    # the per-example covariance must be one: an indefinite noise_cov made a negative "variance"
    with pytest.raises(ValueError, match=r"^noise_cov must be positive semi-definite"):
        heavy_ball_stationary_covariance(A, np.diag([1.0, -0.5]), 0.1, 0.5)
    with pytest.raises(ValueError, match=r"^hessian must be symmetric"):  # named as the argument it is
        heavy_ball_stationary_covariance(np.array([[1.0, 0.5], [0.0, 1.0]]), C, 0.1, 0.5)


# ------------------------------------------------------------------------------------- momentum: Adam


def _adam_reference(snr: float, beta1: float, beta2: float, step: int | None, terms: int = 1200) -> float:
    """``E[m / sqrt(v)]`` by scipy's adaptive quadrature of ``(2 / sqrt pi) int_0^inf E[m e^{-w^2 v}] dw``."""
    k = np.arange(terms if step is None else step, dtype=np.float64)
    first = 1.0 if step is None else 1 - beta1**step
    second = 1.0 if step is None else 1 - beta2**step
    a, b = (1 - beta1) * beta1**k / first, (1 - beta2) * beta2**k / second

    def integrand(w: float) -> float:
        x = 2 * w * w * b
        log_norm = -0.5 * np.log1p(x).sum() - w * w * snr**2 * (b / (1 + x)).sum()
        return float(snr * math.exp(log_norm) * (a / (1 + x)).sum())

    value, _ = scipy.integrate.quad(integrand, 0, np.inf, epsabs=1e-14, epsrel=1e-12, limit=500)
    return 2 / math.sqrt(math.pi) * value


@pytest.mark.parametrize(("betas", "step"), [((0.6, 0.8), 3), ((0.5, 0.9), 7), ((0.7, 0.7), None), ((0.0, 0.6), 4)])
def test_momentum_gap_exact_adam_step_at_finite_steps_against_direct_quadrature(
    betas: tuple[float, float], step: int
) -> None:
    snr = np.array([0.05, 0.7, 2.5])
    got = np.asarray(adam_expected_step(snr, 1.0, betas, step=step))
    expected = [_adam_reference(float(s), *betas, step) for s in snr]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_momentum_gap_exact_adam_step_for_a_clean_gradient_is_lr() -> None:
    # snr -> inf: the step is lr sign(mu) (1 - O(1 / snr^2)). Just below |snr| = 1e4 the quadrature runs with its
    # integrand on the smallest nodes: the piece below w_low (1e-9 of the result) and the trapezoid's end
    # correction must be right. There the second-order expansion is exact to its remainder (<= 1.2 snr^-4, 1e-16),
    # so the two agree to the quadrature's documented 1e-10 (measured 4.4e-11)
    for betas, step in (((0.9, 0.999), None), ((0.9, 0.999), 1), ((0.5, 0.9), 2)):
        snr = np.array([9.9e3, -9.9e3])
        got = np.asarray(adam_expected_step(snr, 1.0, betas, step=step))
        np.testing.assert_allclose(got, adam_expected_step(snr, 1.0, betas, step=step, order=2), rtol=1e-10, atol=0)
    # from 1e4 on, the expansion: 1 - 5e-13 at 1e6 (the quadrature's rounding, 3.5e-16 snr, was 3.7e-10 there), never
    # past lr, and Adam's first step lr erf(snr / sqrt 2) = lr to the last bit
    # (to order snr^-2: 1 - (1/2 + sum a b - (3/2) sum b^2) / snr^2, the stationary sums in closed form)
    coef = 0.5 + 0.1 * 0.001 / (1 - 0.9 * 0.999) - 1.5 * 0.001 / 1.999
    snr = np.array([1e4, 1e6, -1e6, 1e9, 1e15])
    got = np.asarray(adam_expected_step(snr, 1.0, (0.9, 0.999)))
    np.testing.assert_allclose(got, np.sign(snr) * (1 - coef / snr**2), rtol=0, atol=3e-16)
    assert np.all(np.abs(got) <= 1.0)
    first = [adam_expected_step(s, 1.0, step=1) for s in (1e4, 1e6, 1e12)]
    assert first == pytest.approx([1.0, 1.0, 1.0], rel=0, abs=4.5e-16)  # two ulps below 1
    assert max(first) <= 1.0


def test_momentum_gap_the_series_branch_of_the_node_sums_equals_the_direct_sums() -> None:
    # the Taylor branch (2 u b_0 < 1e-5) has error (2 u b_0)^4: equal to the direct sums to rounding
    a, b = momentum_module._ema_weights(0.9, 0.999, None)
    for u in (1e-9, 1e-6, 4.9e-3):
        assert 2 * u * float(b.max()) < momentum_module._SERIES
        got = momentum_module._node_sums(np.array([u]), a, b)
        x = 2 * u * b
        expected = (np.log1p(x).sum(), (b / (1 + x)).sum(), (a / (1 + x)).sum())
        for g, e in zip(got, expected, strict=True):
            assert float(g[0]) == pytest.approx(float(e), rel=1e-14, abs=0)


def test_momentum_gap_second_order_step_at_a_finite_step_uses_the_bias_corrected_weights() -> None:
    beta1, beta2, t, s = 0.8, 0.9, 5, 0.4
    k = np.arange(t)
    a = (1 - beta1) * beta1**k / (1 - beta1**t)
    b = (1 - beta2) * beta2**k / (1 - beta2**t)
    v = 1 + s * s
    closed = s / math.sqrt(v) * (1 - float(a @ b) / v + 0.375 * float(b @ b) * (4 * s * s + 2) / v**2)
    assert adam_expected_step(s, 0.1, (beta1, beta2), step=t, order=2) == pytest.approx(0.1 * closed, rel=1e-13)


def test_momentum_gap_adam_step_defaults_and_input_types() -> None:
    # lr defaults to 1e-3, betas to (0.9, 0.999), the exact (Gaussian) form, the stationary step
    assert adam_expected_step(0.5) == pytest.approx(1e-3 * adam_expected_step(0.5, 1.0, (0.9, 0.999)), rel=1e-15)
    assert adam_expected_step(0.5) == pytest.approx(1e-3 * _adam_reference(0.5, 0.9, 0.999, None, 40000), rel=1e-9)
    # a float32 array (or tensor) is computed in float64: the same numbers as its float64 values
    s32 = np.array([0.3, 1.7], dtype=np.float32)
    got = np.asarray(adam_expected_step(s32, 1.0))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.asarray(adam_expected_step(s32.astype(np.float64), 1.0)))
    np.testing.assert_array_equal(np.asarray(adam_expected_step(torch.tensor(s32), 1.0)), got)
    # beta2 = 0 < beta1 is finite at the first step only (m = v = g there: lr sign(g))
    assert adam_expected_step(1.0, 1.0, (0.9, 0.0), step=1) == pytest.approx(math.erf(1 / math.sqrt(2)), rel=1e-10)
    with pytest.raises(ValueError, match="no finite mean"):
        adam_expected_step(1.0, 1.0, (0.9, 0.0), step=2)
    with pytest.raises(ValueError, match=r"^betas\[0\] must lie in \[0\.0, 1\.0\)"):
        adam_expected_step(1.0, 1.0, (1.0, 0.999))
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        adam_expected_step(1.0, 1.0, "ab")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        adam_expected_step(1.0, 1.0, (0.9, 0.99, 0.9))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- per_example


def _half_squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out.reshape(out.shape[0], -1).mean(1) - y) ** 2


def _objective(module: nn.Module, x_shape: tuple[int, ...], n: int = 12, seed: int = 0, scale: float = 1.0):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    module = module.to(F64)
    X = torch.randn(n, *x_shape, generator=gen, dtype=F64)
    y = torch.randn(n, generator=gen, dtype=F64)
    params = scale * torch.randn(sum(p.numel() for p in module.parameters()), generator=gen, dtype=F64)
    return ng.FiniteSum.from_module(module, _half_squared_error, (X, y)), params


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def _exact_trace(objective: ng.FiniteSum, params: torch.Tensor, idx: torch.Tensor) -> float:
    grads = objective.per_example_grads(params, idx).reshape(len(idx), -1)
    return float((grads - grads.mean(0)).square().sum()) / (len(idx) - 1)


def test_per_example_gap_probe_trace_is_the_sum_over_its_own_signs() -> None:
    # the probe draws torch.randint(0, 2, (probes, B)) from the generator: trace = sum_k |G^T u_k|^2 / (k (B - 1))
    objective, params = _objective(_mlp(), (3,))
    idx = torch.tensor([0, 3, 4, 7, 9, 10])  # B = 6: 1 / B is not a float32 number
    grads = objective.per_example_grads(params, idx).reshape(6, -1)
    for probes in (1, 3):
        signs = torch.randint(0, 2, (probes, 6), generator=torch.Generator().manual_seed(8)).to(F64) * 2 - 1
        u = signs - signs.mean(1, keepdim=True)
        expected = float((u @ grads).square().sum()) / (probes * 5)
        got = batch_noise(
            objective, params, idx, method="probe", generator=torch.Generator().manual_seed(8), probes=probes
        )
        assert got.trace_cov == pytest.approx(expected, rel=1e-12)
        assert got.method == "probe"
        torch.testing.assert_close(got.grad, grads.mean(0), rtol=1e-14, atol=1e-16)
        assert got.value == pytest.approx(float(objective.per_example_values(params, idx).mean()), rel=1e-14)
    # defaults: one probe, and the generator's state advanced by exactly those draws
    gen = torch.Generator().manual_seed(8)
    one = batch_noise(objective, params, idx, method="probe", generator=gen)
    assert (
        one.trace_cov
        == batch_noise(
            objective, params, idx, method="probe", generator=torch.Generator().manual_seed(8), probes=1
        ).trace_cov
    )
    after = torch.Generator().manual_seed(8)
    torch.randint(0, 2, (1, 6), generator=after)
    assert torch.equal(gen.get_state(), after.get_state())
    other = batch_noise(objective, params, idx, method="probe", generator=torch.Generator().manual_seed(9))
    assert other.trace_cov != one.trace_cov


def test_per_example_gap_defaults_are_vmap_and_one_probe() -> None:
    objective, params = _objective(_mlp(), (3,))
    idx = torch.arange(5)
    meter = PerExampleNoise(objective)
    assert (meter.method, meter.probes, meter.objective) == ("vmap", 1, objective)
    result = batch_noise(objective, params, idx)
    assert result.method == "vmap"
    assert result.trace_cov == pytest.approx(_exact_trace(objective, params, idx), rel=1e-13)
    assert NOISE_METHODS == ("vmap", "norms", "probe")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.value = 0.0  # type: ignore[misc]
    assert isinstance(result, BatchNoise)


def test_per_example_gap_vmap_and_norms_fields_are_exact() -> None:
    objective, params = _objective(_mlp(), (3,))
    idx = torch.tensor([1, 2, 5, 6, 11])
    grads = objective.per_example_grads(params, idx).reshape(5, -1)
    truth = _exact_trace(objective, params, idx)
    value = float(objective.per_example_values(params, idx).mean())
    for method in ("vmap", "norms"):
        got = batch_noise(objective, params, idx, method=method)
        assert got.method == method
        assert got.trace_cov == pytest.approx(truth, rel=1e-11)
        assert got.value == pytest.approx(value, rel=1e-14)
        assert got.grad.shape == params.shape
        torch.testing.assert_close(got.grad, grads.mean(0), rtol=1e-13, atol=1e-16)


def test_per_example_gap_a_batch_of_two_and_integer_index_types() -> None:
    objective, params = _objective(_mlp(), (3,))
    for dtype in (torch.int64, torch.int32):
        idx = torch.tensor([2, 9], dtype=dtype)
        for method in ("vmap", "norms"):
            got = batch_noise(objective, params, idx, method=method)
            assert got.trace_cov == pytest.approx(_exact_trace(objective, params, idx.long()), rel=1e-11)
    for bad in (
        torch.tensor([[0, 1], [2, 3]]),
        torch.tensor([0.0, 1.0]),
        [0, 1],
        torch.tensor([0, 1], dtype=torch.int16),
    ):
        with pytest.raises(ValueError, match="indices must be a 1-D integer tensor"):
            batch_noise(objective, params, bad)  # type: ignore[arg-type]


def test_per_example_gap_tiny_and_identical_gradients_give_tiny_and_zero_traces() -> None:
    # a trace far below 1 is kept as it is, and identical per-example gradients give exactly 0 (never < 0)
    module = _mlp().to(F64)
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    objective = ng.FiniteSum.from_module(module, _half_squared_error, (X, torch.zeros(6, dtype=F64)))
    params = 1e-3 * torch.randn(32, generator=torch.Generator().manual_seed(4), dtype=F64)
    idx = torch.arange(6)
    truth = _exact_trace(objective, params, idx)
    assert truth < 1e-3
    assert batch_noise(objective, params, idx, method="norms").trace_cov == pytest.approx(truth, rel=1e-9)
    X = torch.ones(4, 3, dtype=F64)
    same = ng.FiniteSum.from_module(_mlp().to(F64), _half_squared_error, (X, torch.ones(4, dtype=F64)))
    w = torch.linspace(-1, 1, sum(p.numel() for p in _mlp().parameters()), dtype=F64)
    assert batch_noise(same, w, torch.arange(4), method="norms").trace_cov == 0.0


class _KeywordCall(nn.Module):
    """Calls its layers with ``input=`` (the hook reads the input from the keywords) and leaves one unused."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.second = nn.Linear(4, 1)
        self.spare = nn.Linear(3, 2)  # never called: no gradient, allowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(input=torch.tanh(self.first(input=x)))


class _DeadBranch(nn.Module):
    """A layer that runs but whose output the loss never uses (its gradient is ``None``)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(3, 1)
        self.dead = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.dead(x)
        return self.used(x)


class _Image(nn.Module):
    """A linear layer over the last axis of (B, 2, 3, 4) inputs: the positions flatten to T = 6."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).mean((1, 2))


@pytest.mark.parametrize(
    ("make", "x_shape"), [(_KeywordCall, (3,)), (_DeadBranch, (3,)), (_Image, (2, 3, 4))], ids=["kw", "dead", "4d"]
)
def test_per_example_gap_norms_handle_keyword_calls_unused_layers_and_extra_axes(make, x_shape) -> None:  # type: ignore[no-untyped-def]
    objective, params = _objective(make(), x_shape)
    idx = torch.arange(7)
    norms = batch_noise(objective, params, idx, method="norms")
    assert norms.trace_cov == pytest.approx(_exact_trace(objective, params, idx), rel=1e-10)


class _BatchMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(0)).expand(x.shape[0], 1)  # the layer sees one vector, not the batch


class _Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1, keepdim=True) * self.fc(x[:3].T).sum()  # dimension 0 of the layer's input is not the batch


class _BothInPlace(nn.Module):
    """Modifies both the input and the output of its layer in place after the layer ran."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.out = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 1.0
        z = self.fc(h)
        h.mul_(2.0)
        z.tanh_()
        return self.out(z + h)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_BatchMean, r"got input of shape \(3,\); the 'norms' method needs the batch's 5 examples along dimension 0"),
        (_Transposed, r"got input of shape \(3, 3\); the 'norms' method needs the batch's 5 examples"),
        (_BothInPlace, "modified in place"),
    ],
)
def test_per_example_gap_norms_refuse_layers_that_do_not_see_the_batch_as_it_is(make, match) -> None:  # type: ignore[no-untyped-def]
    objective, params = _objective(make(), (3,))
    with pytest.raises(ValueError, match=match):
        batch_noise(objective, params, torch.arange(5), method="norms")


class _LinearWithNorm(nn.Linear):
    """A linear layer that owns a LayerNorm: the norm's parameters are not the linear layer's own."""

    def __init__(self) -> None:
        super().__init__(3, 3)
        self.norm = nn.LayerNorm(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


def test_per_example_gap_linear_layers_owns_only_each_layers_own_parameters() -> None:
    model = nn.Sequential(_LinearWithNorm(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"parameter '0\.norm\.weight' belongs to a LayerNorm"):
        linear_layers(model)
    plain = _mlp()
    assert linear_layers(plain) == (plain[0], plain[2])
    objective, _ = _objective(_mlp(), (3,))
    assert check_noise_method(objective, "norms") == "norms"
    assert check_noise_method(objective, "probe") == "probe"
    for bad in ("bogus", 1, None):
        with pytest.raises(ValueError, match="method must be one of 'vmap', 'norms', 'probe'"):
            check_noise_method(objective, bad)


class _LinearWithInner(nn.Linear):
    """A linear layer holding another one; only the inner layer runs."""

    def __init__(self) -> None:
        super().__init__(3, 1)
        self.inner = nn.Linear(3, 1)


class _CallsTheInnerLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.outer = _LinearWithInner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer.inner(x)


def test_per_example_gap_an_idle_layer_is_judged_by_its_own_parameters_only() -> None:
    # the outer layer never runs and its own weights get no gradient: allowed, although its child's do
    objective, params = _objective(_CallsTheInnerLayer(), (3,))
    idx = torch.arange(6)
    norms = batch_noise(objective, params, idx, method="norms")
    assert norms.trace_cov == pytest.approx(_exact_trace(objective, params, idx), rel=1e-10)
