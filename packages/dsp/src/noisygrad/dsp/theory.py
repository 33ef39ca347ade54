"""Closed forms for the steady state of adaptive filters.

Convention: ``d_k = w_o^T u_k + v_k`` with ``v`` white of variance ``J_min = noise_var``, ``R = E[u u^T]``
with eigenvalues ``l_i``, LMS update ``w <- w + mu e u`` (Haykin's; Widrow writes ``2 mu``, which halves
every ``mu`` below). Misadjustment ``M = J_ex / J_min`` with ``J_ex = tr(R K)``, ``K = E[(w - w_o)(w - w_o)^T]``.

* LMS, small steps: ``M ~ mu tr(R) / 2`` (Widrow 1976; Haykin).
* LMS, independent real Gaussian regressors, exact: ``M = eta / (1 - eta)``, ``eta = sum mu l_i / (2 (1 - mu l_i))``
  (Horowitz and Senne 1981; Feuer and Weinstein, IEEE TASSP 33:222, 1985); mean-square stable iff ``eta < 1``.
* RLS tracking a random walk ``w_o(k+1) = w_o(k) + q_k``, ``Cov q = Q`` (Eleftheriou and Falconer 1986):
  ``EMSE(lam) = (1 - lam) L J_min / (1 + lam) + tr(R Q) / (1 - lam^2)``, minimised near
  ``1 - lam = sqrt(tr(R Q) / (L J_min))``.
* SGD noise ball: with gradient noise of covariance ``Sigma`` uncorrelated with the error, the stationary
  ``K`` solves the discrete Lyapunov equation ``K = (I - mu R) K (I - mu R) + mu^2 Sigma``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisygrad.checks import as_array, check_in_range, check_positive, check_positive_int

_FORMS = ("exact", "small-step", "separation")


def input_eigenvalues(R: Any) -> np.ndarray:
    """Eigenvalues of the input covariance: ``R`` given as a symmetric matrix, or as its eigenvalues (1-D)."""
    arr = as_array("R", np.atleast_1d(np.asarray(R)), np.float64, ndim=(1, 2))
    if arr.ndim == 2:
        if arr.shape[0] != arr.shape[1] or not np.allclose(arr, arr.T, rtol=1e-10, atol=0):
            raise ValueError(
                f"R must be a symmetric square matrix or a 1-D array of eigenvalues, got shape {arr.shape}"
            )
        arr = np.linalg.eigvalsh(arr)
    if arr.size == 0 or np.any(arr < 0) or not np.any(arr > 0):
        raise ValueError("R must be positive semi-definite and nonzero (eigenvalues >= 0, at least one > 0)")
    return arr


def _eta(mu: float, lam: np.ndarray) -> float:
    return float(np.sum(mu * lam / (2.0 * (1.0 - mu * lam))))


def lms_stability_bound(R: Any, *, kind: str = "mean-square") -> float:
    """The largest stable LMS step for input covariance ``R`` (matrix or eigenvalues).

    ``kind="mean"``: ``2 / l_max`` (the mean weights converge). ``kind="mean-square"``: the root of
    ``eta(mu) = 1`` (finite mean-square error, Gaussian regressors), ``2 / ((L + 2) s2)`` for white input.
    """
    lam = input_eigenvalues(R)
    lmax = float(lam.max())
    if kind == "mean":
        return 2.0 / lmax
    if kind != "mean-square":
        raise ValueError(f"kind must be 'mean' or 'mean-square', got {kind!r}")
    from scipy.optimize import brentq  # scipy.optimize costs ~1 s to import: only when asked

    return float(brentq(lambda mu: _eta(mu, lam) - 1.0, 0.0, (1.0 - 1e-15) / lmax, xtol=1e-16, rtol=1e-15))


def lms_misadjustment(mu: float, R: Any, *, form: str = "exact") -> float:
    """LMS misadjustment ``J_ex / J_min`` for step ``mu`` and input covariance ``R`` (matrix or eigenvalues).

    Args:
        form: ``"exact"`` (Feuer-Weinstein, Gaussian regressors): ``eta / (1 - eta)``;
            ``"small-step"``: ``mu tr(R) / 2``; ``"separation"``: ``mu tr(R) / (2 - mu tr(R))``.

    Raises:
        ValueError: ``mu`` at or past the stability bound of the chosen form (the message names the bound).
    """
    mu = check_positive("mu", mu)
    lam = input_eigenvalues(R)
    tr = float(lam.sum())
    if form == "small-step":
        return mu * tr / 2.0
    if form == "separation":
        if mu * tr >= 2.0:
            raise ValueError(f"mu must be < 2 / tr(R) = {2.0 / tr:.6g} for the separation form, got {mu!r}")
        return mu * tr / (2.0 - mu * tr)
    if form != "exact":
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    if mu * lam.max() >= 1.0 or _eta(mu, lam) >= 1.0:
        bound = lms_stability_bound(lam)
        raise ValueError(f"mu must be below the mean-square stability bound {bound:.6g} (eta(mu) < 1), got {mu!r}")
    eta = _eta(mu, lam)
    return eta / (1.0 - eta)


def lms_time_constants(mu: float, R: Any, *, mse: bool = False) -> np.ndarray:
    """Convergence time constants (samples) of the LMS modes, one per eigenvalue of ``R``, ascending.

    The mean weight error of mode ``i`` decays as ``(1 - mu l_i)^k``, so ``tau_i = -1 / ln|1 - mu l_i|``
    (``~ 1 / (mu l_i)`` for small steps); the learning curve (MSE) decays twice as fast (``mse=True``).
    Modes with ``l_i = 0`` never converge (``inf``).
    """
    mu = check_positive("mu", mu)
    lam = np.sort(input_eigenvalues(R))
    bound = 2.0 / float(lam.max())
    if mu >= bound:
        raise ValueError(f"mu must be below the mean-convergence bound 2 / l_max = {bound:.6g}, got {mu!r}")
    with np.errstate(divide="ignore"):
        tau = -1.0 / np.log(np.abs(1.0 - mu * lam))
    tau[lam == 0] = np.inf
    return tau / 2.0 if mse else tau


def lms_tracking_emse(mu: float, noise_var: float, trace_r: float, trace_q: float) -> float:
    """Small-step LMS excess MSE tracking a random walk: ``mu J_min tr(R) / 2 + tr(Q) / (2 mu)``."""
    mu = check_positive("mu", mu)
    noise_var = check_positive("noise_var", noise_var)
    trace_r = check_positive("trace_r", trace_r)
    trace_q = check_positive("trace_q", trace_q)
    return mu * noise_var * trace_r / 2.0 + trace_q / (2.0 * mu)


def lms_optimal_step(noise_var: float, trace_r: float, trace_q: float) -> float:
    """The step minimising :func:`lms_tracking_emse`: ``sqrt(tr(Q) / (J_min tr(R)))``."""
    noise_var = check_positive("noise_var", noise_var)
    return float(np.sqrt(check_positive("trace_q", trace_q) / (noise_var * check_positive("trace_r", trace_r))))


def rls_tracking_emse(lam: float, taps: int, noise_var: float, trace_rq: float) -> float:
    """RLS excess MSE at forgetting factor ``lam`` tracking a random walk with ``tr(R Q) = trace_rq``.

    ``(1 - lam) L J_min / (1 + lam) + tr(R Q) / (1 - lam^2)``: the first term is the estimation noise of a
    memory of ``~ 1 / (1 - lam)`` samples, the second the lag behind the moving target. ``trace_rq = 0`` gives
    the stationary excess MSE.
    """
    lam = check_in_range("lam", lam, 0.0, 1.0, low_open=True, high_open=True)
    taps = check_positive_int("taps", taps)
    noise_var = check_positive("noise_var", noise_var)
    trace_rq = check_in_range("trace_rq", trace_rq, 0.0, np.inf, low_open=False, high_open=True)
    return (1.0 - lam) * taps * noise_var / (1.0 + lam) + trace_rq / (1.0 - lam**2)


def rls_optimal_forgetting(taps: int, noise_var: float, trace_rq: float) -> float:
    """The forgetting factor balancing estimation noise and lag: ``1 - sqrt(tr(R Q) / (L J_min))``.

    For white input of power ``s2`` and ``Q = s_q^2 I`` this is ``1 - s s_q / s_v``, the ``lam`` at which the
    covariance inflation of RLS equals the true process noise.
    """
    taps = check_positive_int("taps", taps)
    noise_var = check_positive("noise_var", noise_var)
    trace_rq = check_positive("trace_rq", trace_rq)
    one_minus = float(np.sqrt(trace_rq / (taps * noise_var)))
    if one_minus >= 1.0:
        raise ValueError(
            f"tr(R Q) = {trace_rq:g} is too large for RLS to track: it needs tr(R Q) < taps * noise_var "
            f"= {taps * noise_var:g}"
        )
    return 1.0 - one_minus


def noise_ball_covariance(mu: float, hessian: Any, noise_cov: Any) -> np.ndarray:
    """Stationary weight-error covariance of constant-step SGD on a quadratic with gradient noise.

    Solves ``K = (I - mu H) K (I - mu H) + mu^2 Sigma`` (exact for noise uncorrelated with the error) with the
    core's :func:`noisygrad.noise.theory.sgd_stationary_covariance`. For LMS, ``H = R`` and ``Sigma`` is the
    covariance of ``-e_k u_k - R (w_k - w_o)``.
    """
    from noisygrad.noise.theory import sgd_stationary_covariance  # on first use: the core's theory loads torch

    mu = check_positive("mu", mu)
    h = as_array("hessian", hessian, np.float64, ndim=(2,))
    sigma = as_array("noise_cov", noise_cov, np.float64, ndim=(2,))
    if h.shape != sigma.shape or h.shape[0] != h.shape[1]:
        raise ValueError(f"hessian and noise_cov must be square of the same shape, got {h.shape} and {sigma.shape}")
    return sgd_stationary_covariance(h, sigma, mu)


def noise_ball_misadjustment(mu: float, R: Any, noise_cov: Any, noise_var: float) -> float:
    """``tr(R K) / J_min`` with ``K`` from :func:`noise_ball_covariance`: LMS misadjustment from gradient noise."""
    r = as_array("R", R, np.float64, ndim=(2,))
    k = noise_ball_covariance(mu, r, noise_cov)
    return float(np.trace(r @ k)) / check_positive("noise_var", noise_var)


def ewls_weights(u: Any, d: Any, lam: float, delta: float) -> np.ndarray:
    """The exponentially weighted least-squares solution after the last sample (the reference for RLS).

    ``argmin_w lam^N delta |w|^2 + sum_j lam^(N-j) (d_j - u_j^T w)^2`` over ``u``: ``(N, L)``, ``d``: ``(N,)``.
    """
    u = as_array("u", u, np.float64, ndim=(2,))
    d = as_array("d", d, np.float64, ndim=(1,))
    if u.shape[0] != d.shape[0]:
        raise ValueError(f"u and d must have the same number of samples, got {u.shape[0]} and {d.shape[0]}")
    lam = check_in_range("lam", lam, 0.0, 1.0, low_open=True, high_open=False)
    delta = check_positive("delta", delta)
    n = d.shape[0]
    weights = lam ** np.arange(n - 1, -1, -1.0)
    gram = (u * weights[:, None]).T @ u + lam**n * delta * np.eye(u.shape[1])
    return np.linalg.solve(gram, (u * weights[:, None]).T @ d)
