"""Kalman filter against filterpy; RLS == its Kalman filter == exponentially weighted least squares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from scipy.signal import lfilter

from noisygrad.dsp import RLS, Kalman, kalman_to_rls, rls_to_kalman, tapped_delay_line
from noisygrad.dsp.theory import ewls_weights


def _model(rng: np.random.Generator):
    F = np.array([[1.0, 0.1, 0.005], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]])
    H = rng.standard_normal((2, 3))
    Q = 1e-3 * np.eye(3) + 1e-4
    R = np.array([[0.5, 0.1], [0.1, 0.3]])
    return F, H, Q, R, np.array([0.1, -0.2, 0.3]), np.diag([1.0, 2.0, 0.5])


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
@pytest.mark.parametrize("alpha2", [1.0, 1.03])
def test_kalman_agrees_with_filterpy(alpha2, form):
    """Same model, same data: filtered means, covariances and per-step log-likelihoods equal filterpy's (Joseph
    form there too) to 1e-10, in both of our forms."""
    rng = np.random.default_rng(0)
    F, H, Q, R, x0, P0 = _model(rng)
    z = rng.standard_normal((300, 2))
    ours = Kalman(F, H, Q, R, x0, P0, inflation=alpha2, form=form)
    res = ours.batch_filter(z)
    ref = KalmanFilter(dim_x=3, dim_z=2)
    ref.F, ref.H, ref.Q, ref.R, ref.x, ref.P = F, H, Q, R, x0.copy(), P0.copy()
    ref.alpha = np.sqrt(alpha2)  # filterpy's fading memory: P = alpha^2 F P F^T + Q
    means, covs, lls, pmeans, pcovs = [], [], [], [], []
    for t in range(z.shape[0]):
        ref.predict()
        pmeans.append(ref.x.copy())
        pcovs.append(ref.P.copy())
        ref.update(z[t])
        means.append(ref.x.copy())
        covs.append(ref.P.copy())
        lls.append(ref.log_likelihood)
    np.testing.assert_allclose(res.means, np.array(means), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.covariances, np.array(covs), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.prior_means, np.array(pmeans), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.prior_covariances, np.array(pcovs), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.log_likelihoods, np.array(lls), rtol=1e-10, atol=1e-10)
    assert ours.log_likelihood == pytest.approx(float(np.sum(lls)), rel=1e-10)
    assert np.array_equal(res.covariances, np.swapaxes(res.covariances, 1, 2))  # exactly symmetric


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_predict_update_steps_equal_batch_filter_bit_for_bit(form):
    rng = np.random.default_rng(1)
    F, H, Q, R, x0, P0 = _model(rng)
    z = rng.standard_normal((50, 2))
    a, b = Kalman(F, H, Q, R, x0, P0, form=form), Kalman(F, H, Q, R, x0, P0, form=form)
    x_before, p_before = x0.copy(), P0.copy()
    res = a.run(z)
    np.testing.assert_array_equal(x0, x_before)  # the filter works on its own copies
    np.testing.assert_array_equal(P0, p_before)
    lls = []
    for t in range(50):
        b.predict()
        lls.append(b.update(z[t]))
    np.testing.assert_array_equal(b.x, res.means[-1])
    np.testing.assert_array_equal(b.x, a.x)
    np.testing.assert_array_equal(b.P, a.P)
    np.testing.assert_array_equal(lls, res.log_likelihoods)
    np.testing.assert_array_equal(b.P, b.P.T)
    assert res.covariances is None


def test_log_likelihood_matches_the_batch_gaussian():
    """A static state observed N times: the filter's log-likelihood is that of the joint Gaussian of z."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(2)
    n = 2
    H = rng.standard_normal((12, 1, n))
    P0, r = np.diag([2.0, 0.5]), 0.3
    z = rng.standard_normal(12)
    kf = Kalman(None, np.zeros((1, n)), np.zeros((n, n)), r, np.zeros(n), P0)
    ll = kf.run(z, H=H).log_likelihood
    assert kf.log_likelihood == pytest.approx(ll, rel=1e-15)
    A = H[:, 0, :]
    expected = multivariate_normal(np.zeros(12), A @ P0 @ A.T + r * np.eye(12)).logpdf(z)
    assert ll == pytest.approx(expected, rel=1e-12)


def test_rls_equals_its_kalman_filter_and_weighted_least_squares():
    rng = np.random.default_rng(3)
    taps, lam, delta, n = 16, 0.99, 0.01, 3000
    x = rng.standard_normal(n)
    d = lfilter(rng.standard_normal(taps), 1.0, x) + 0.1 * rng.standard_normal(n)
    u = tapped_delay_line(x, taps)
    rls = RLS(taps, lam, delta=delta, history=True)
    noise_var = 0.01
    kf = rls_to_kalman(rls, noise_var)
    rls.run(x, d=d)
    res = kf.run(d, H=u, covariances=True)
    np.testing.assert_allclose(res.means[:-1], rls.history[1:], rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.means[-1], rls.weights, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.covariances[-1] / noise_var, rls.P, rtol=0, atol=1e-10)
    # the square-root form of the same filter (F = I, Q = 0: the factor is only scaled by lam^-1/2 per step)
    sqrt = Kalman(None, np.zeros((1, taps)), np.zeros((taps, taps)), noise_var, np.zeros(taps),
                  noise_var / delta * np.eye(taps), inflation=1 / lam, form="sqrt")  # fmt: skip
    np.testing.assert_allclose(sqrt.run(d, H=u).means, res.means, rtol=0, atol=1e-10)
    for k in (taps, 500, n):
        np.testing.assert_allclose(ewls_weights(u[:k], d[:k], lam, delta), res.means[k - 1], rtol=0, atol=1e-10)
    # and back: the Kalman filter's state as an RLS continues identically (its delay line starts empty, so it
    # is fed the regressors that continue the original signal)
    back = kalman_to_rls(kf)
    assert back.lam == pytest.approx(lam, rel=1e-15)
    x2, d2 = rng.standard_normal(500), rng.standard_normal(500)
    u2 = tapped_delay_line(np.concatenate([x[-(taps - 1) :], x2]), taps)[taps - 1 :]
    _, e_ref = rls.run(x2, d=d2)
    _, e_back = back.run_regressors(u2, d=d2)
    np.testing.assert_allclose(e_back, e_ref, rtol=0, atol=1e-10)


def _check_weight_error(rls: RLS, x: np.ndarray, d: np.ndarray, h: np.ndarray, noise_var: float) -> None:
    """RLS's weights after ``(x, d)`` are the weighted least-squares solution, with the error that implies.

    Exactly ``w - h = P b`` with ``b = sum_j lam^(n-j) u_j v_j`` (the prior's share, lam^n delta, is e^-100
    here): given the inputs, ``|w - h|^2`` is a Gaussian quadratic form of mean ``tr C`` and variance
    ``2 tr C^2``, ``C = sigma_v^2 P S P`` with ``S = sum_j lam^(2(n-j)) u_j u_j^T``. Samples older than 1.2e4
    (weight below lam^2.4e4 = e^-24) are left out of S; older than 3e4 (lam^3e4 = e^-30) out of the LS solution.
    """
    lam, taps = rls.lam, h.size
    u = tapped_delay_line(x, taps)
    # numerical stability: after all these samples the recursion still equals the direct solution
    np.testing.assert_allclose(rls.weights, ewls_weights(u[-30_000:], d[-30_000:], lam, 1.0), rtol=0, atol=1e-10)
    recent = u[-12_000:]
    decay = lam ** (2.0 * np.arange(recent.shape[0] - 1, -1, -1))
    cov = noise_var * rls.P @ ((recent * decay[:, None]).T @ recent) @ rls.P
    # tr C ~ sigma_v^2 L (1 - lam)/(1 + lam) = 3.2e-4 and its s.d. sqrt(2 tr C^2) ~ 18% of it (one realisation;
    # the z-score was checked calibrated, mean 0.02 and s.d. 1.02, over 1500 seeds of a smaller filter)
    error = float(np.sum((rls.weights - h) ** 2))
    assert abs(error - np.trace(cov)) < 4 * math.sqrt(2 * np.sum(cov * cov))


def test_rls_is_stable_and_symmetric_over_long_runs():
    """64 taps, lam = 0.999, 1e5 samples: P exactly symmetric, weights equal to weighted least squares."""
    rng = np.random.default_rng(4)
    taps, n = 64, 100_000
    h = rng.standard_normal(taps) / 8
    x = rng.standard_normal(n)
    d = lfilter(h, 1.0, x) + 0.1 * rng.standard_normal(n)
    rls = RLS(taps, 0.999)
    rls.run(x, d=d)
    P = rls.P
    assert np.array_equal(P, P.T)
    assert np.linalg.eigvalsh(P).min() > 0
    _check_weight_error(rls, x, d, h, 0.01)


@pytest.mark.slow
def test_rls_stays_finite_over_a_million_samples():
    rng = np.random.default_rng(5)
    taps, n = 64, 1_000_000
    h = rng.standard_normal(taps) / 8
    rls = RLS(taps, 0.999)
    for _ in range(10):  # streamed in pieces of 1e5 samples
        x = rng.standard_normal(n // 10)
        d = lfilter(h, 1.0, x) + 0.1 * rng.standard_normal(x.size)
        rls.run(x, d=d)
        assert np.array_equal(rls.P, rls.P.T)
        assert np.isfinite(rls.P).all()
        _check_weight_error(rls, x, d, h, 0.01)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"F": np.eye(2)}, "F must have shape"),
        ({"H": np.ones((1, 2))}, "H must have shape"),
        ({"Q": -np.eye(3)}, "Q must be positive semi-definite"),
        ({"R": [[0.0]]}, "R must be positive definite"),
        ({"P0": [[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}, "P0 must be symmetric"),
        ({"x0": [0.0, np.nan, 0.0]}, "x0 has 1 non-finite"),
        ({"inflation": 0.5}, "inflation must lie in"),
    ],
)
def test_kalman_bad_input_names_the_argument(kwargs, match):
    args = {"F": np.eye(3), "H": np.ones((1, 3)), "Q": np.eye(3), "R": 1.0, "x0": np.zeros(3), "P0": np.eye(3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Kalman(args.pop("F"), args.pop("H"), args.pop("Q"), args.pop("R"), args.pop("x0"), args.pop("P0"), **args)


def test_kalman_run_and_mapping_checks():
    kf = Kalman(np.eye(2), np.ones((1, 2)), np.eye(2), 1.0, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"zs must have shape \(N, 1\) or \(N,\)"):
        kf.run(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"Hs must be one matrix of shape \(1, 2\) or 5 of them"):
        kf.run(np.ones(5), H=np.ones((4, 2)))
    with pytest.raises(ValueError, match="z has 1 infinite value"):
        kf.update([np.inf])
    with pytest.raises(ValueError, match="F = I, Q = 0"):
        kalman_to_rls(kf)
    rls = RLS(3, 0.9)
    rls.run(np.ones((2, 10)), d=np.ones((2, 10)))
    with pytest.raises(ValueError, match="single-channel"):
        rls_to_kalman(rls)
