"""A linear-Gaussian Kalman filter, and the exact map between RLS and a Kalman filter.

Model: ``x_t = F x_{t-1} + w_t``, ``w_t ~ N(0, Q)``; ``z_t = H_t x_t + v_t``, ``v_t ~ N(0, R)``.
Each step predicts (``P <- inflation F P F^T + Q``; ``inflation > 1`` is a fading memory, filterpy's
``alpha**2``) and then updates on ``z_t``, adding ``log N(z_t; H_t x_t^-, S_t)`` to the log-likelihood.

Exponentially weighted RLS with forgetting factor ``lam`` *is* such a filter: ``F = I``, ``Q = 0``,
``H_t = u_t^T`` (the regressor), ``R = sigma_v^2``, ``inflation = 1 / lam``; its weights are the filtered
means and ``sigma_v^2 P_RLS`` is the filtered covariance (Sayed and Kailath, IEEE SP Magazine 1994). The
forgetting factor is therefore a process-noise assumption proportional to the current covariance, not a
fixed random walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from noisygrad.checks import as_array, check_in_range, check_positive

from . import _kernels
from .filters import RLS


@dataclass(frozen=True)
class KalmanResult:
    """What :meth:`Kalman.run` returns.

    Attributes:
        means: filtered means ``E[x_t | z_1..z_t]``, ``(N, n)``.
        covariances: filtered covariances ``(N, n, n)`` when asked for, else ``None``.
        log_likelihoods: ``log p(z_t | z_1..z_{t-1})`` per step, ``(N,)``.
        log_likelihood: their sum, the log-likelihood of the run's measurements.
    """

    means: np.ndarray
    covariances: np.ndarray | None
    log_likelihoods: np.ndarray

    @property
    def log_likelihood(self) -> float:
        return float(self.log_likelihoods.sum())


class Kalman:
    """A Kalman filter for ``x_t = F x_{t-1} + w_t``, ``z_t = H x_t + v_t`` (float64).

    Args:
        F: transition matrix ``(n, n)``, or ``None`` for the identity (a random walk; faster).
        H: measurement matrix ``(m, n)``; :meth:`update` and :meth:`run` accept a per-step ``H`` too.
        Q: process-noise covariance ``(n, n)``, symmetric positive semi-definite.
        R: measurement-noise covariance ``(m, m)`` (a scalar when ``m = 1``), symmetric positive definite.
        x0: prior mean ``(n,)``.
        P0: prior covariance ``(n, n)``, symmetric positive semi-definite.
        inflation: fading memory ``>= 1``: the predicted covariance is ``inflation F P F^T + Q``.

    Example:
        >>> kf = Kalman(F=[[1, 1], [0, 1]], H=[[1, 0]], Q=1e-4 * np.eye(2), R=0.1, x0=[0, 0], P0=np.eye(2))
        >>> res = kf.run(z)                     # z: (N,) or (N, m)
        >>> res.means, res.log_likelihood
    """

    def __init__(
        self,
        F: Any,
        H: Any,
        Q: Any,
        R: Any,
        x0: Any,
        P0: Any,
        *,
        inflation: float = 1.0,
    ) -> None:
        self.x = as_array("x0", x0, np.float64, ndim=(1,), copy=True)
        n = self.x.shape[0]
        self.P = _covariance("P0", P0, n)
        self.identity = F is None
        self.F = np.eye(n) if F is None else _matrix("F", F, (n, n))
        self._ft = np.ascontiguousarray(self.F.T)
        self.H = _matrix("H", H, (None, n))
        m = self.H.shape[0]
        self.Q = _covariance("Q", Q, n)
        self.R = _covariance("R", R, m, definite=True)
        self.inflation = check_in_range("inflation", inflation, 1.0, np.inf, low_open=False, high_open=True)
        self.log_likelihood = 0.0
        """Sum of ``log p(z_t | z_1..z_{t-1})`` over every update so far."""

    @property
    def dim_x(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim_z(self) -> int:
        return int(self.H.shape[0])

    def predict(self) -> None:
        """``x <- F x``, ``P <- inflation F P F^T + Q``."""
        _kernels.kalman_predict(self.x, self.P, self.F, self._ft, self.Q, self.inflation, self.identity)

    def update(self, z: Any, H: Any = None, R: Any = None) -> float:
        """Condition on one measurement ``z`` (``(m,)``, or a scalar when ``m = 1``); returns its log-likelihood.

        ``H`` and ``R`` override the filter's for this step only.
        """
        h = self.H if H is None else _matrix("H", H, (None, self.dim_x))
        r = self.R if R is None else _covariance("R", R, h.shape[0], definite=True)
        z = as_array("z", np.atleast_1d(z), np.float64, ndim=(1,))
        if z.shape != (h.shape[0],):
            raise ValueError(f"z must have shape ({h.shape[0]},) to match H, got {z.shape}")
        if r.shape != (h.shape[0], h.shape[0]):
            raise ValueError(f"R must have shape ({h.shape[0]}, {h.shape[0]}) to match H, got {r.shape}")
        ll = float(_kernels.kalman_update(self.x, self.P, z, h, r))
        self.log_likelihood += ll
        return ll

    def run(self, z: Any, H: Any = None, *, covariances: bool = False) -> KalmanResult:
        """Predict then update for each row of ``z`` (``(N, m)``, or ``(N,)`` when ``m = 1``).

        Args:
            z: the measurements.
            H: a per-step measurement matrix ``(N, m, n)`` (e.g. the regressors of an adaptive filter,
                ``(N, n)`` when ``m = 1``); default: the filter's ``H`` at every step.
            covariances: also return every filtered covariance (``N n^2`` numbers).
        """
        zs = as_array("z", z, np.float64, ndim=(1, 2))
        if zs.ndim == 1:
            zs = zs[:, None]
        n_steps, m = zs.shape
        if n_steps == 0:
            raise ValueError("z must hold at least one measurement, got N = 0")
        if H is None:
            hs = self.H[None]
            if m != self.dim_z:
                raise ValueError(f"z must have {self.dim_z} column(s) to match H, got shape {zs.shape}")
        else:
            hs = as_array("H", H, np.float64, ndim=(2, 3))
            if hs.ndim == 2:
                hs = hs[:, None, :]
            if hs.shape != (n_steps, m, self.dim_x):
                raise ValueError(
                    f"a per-step H must have shape (N, m, n) = {(n_steps, m, self.dim_x)} "
                    f"(or (N, n) when m = 1), got {np.shape(H)}"
                )
        if self.R.shape != (m, m):
            raise ValueError(f"R has shape {self.R.shape} but the measurements have m = {m}")
        means = np.empty((n_steps, self.dim_x))
        covs = np.empty((n_steps if covariances else 0, self.dim_x, self.dim_x))
        lls = np.empty(n_steps)
        _kernels.kalman_run(
            self.x, self.P, self.F, self._ft, self.Q, self.inflation, self.identity, zs, hs, self.R, means, covs, lls
        )
        if not (np.isfinite(self.x).all() and np.isfinite(self.P).all()):
            raise FloatingPointError("Kalman state became NaN or Inf: check that Q, R and P0 are well scaled")
        self.log_likelihood += float(lls.sum())
        return KalmanResult(means, covs if covariances else None, lls)


def rls_to_kalman(rls: RLS, noise_var: float = 1.0) -> Kalman:
    """The Kalman filter that reproduces ``rls`` from its current state.

    ``F = I``, ``Q = 0``, ``R = noise_var``, ``inflation = 1 / lam``, ``x0 = w``, ``P0 = noise_var P``.
    Run it with the regressors as per-step ``H`` and ``d`` as measurements: ``kf.run(d, H=u).means`` equal
    the RLS weights after each sample. ``noise_var`` scales only the covariance (and the log-likelihood).
    """
    noise_var = check_positive("noise_var", noise_var)
    w, p = rls.weights, rls.P
    if w.ndim != 1:
        raise ValueError(f"rls must be a single-channel filter (weights of shape (taps,)), got weights {w.shape}")
    n = rls.taps
    return Kalman(
        None,
        np.zeros((1, n)),
        np.zeros((n, n)),
        noise_var,
        w.astype(np.float64),
        noise_var * p.astype(np.float64),
        inflation=1.0 / rls.lam,
    )


def kalman_to_rls(kf: Kalman) -> RLS:
    """The RLS filter equivalent to ``kf`` (``F = I``, ``Q = 0``, one scalar measurement per step).

    ``lam = 1 / inflation``, ``w0 = x``, ``P0 = P / R``.
    """
    if not np.array_equal(kf.F, np.eye(kf.dim_x)) or np.any(kf.Q != 0) or kf.dim_z != 1:
        raise ValueError("kf must have F = I, Q = 0 and scalar measurements (dim_z = 1) to be an RLS filter")
    p0 = kf.P / kf.R[0, 0]
    p0 = 0.5 * (p0 + p0.T)
    return RLS(kf.dim_x, 1.0 / kf.inflation, P0=p0, w0=kf.x.copy())


def _matrix(name: str, value: Any, shape: tuple[int | None, int]) -> np.ndarray:
    arr = as_array(name, value, np.float64, ndim=(2,), copy=True)
    rows, cols = shape
    if arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        want = f"({'m' if rows is None else rows}, {cols})"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


def _covariance(name: str, value: Any, n: int, *, definite: bool = False) -> np.ndarray:
    arr = as_array(name, np.atleast_2d(np.asarray(value)), np.float64, ndim=(2,))
    if arr.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {arr.shape}")
    scale = max(1.0, float(np.abs(arr).max()))
    if not np.allclose(arr, arr.T, rtol=0, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric")
    low = float(np.linalg.eigvalsh(arr).min()) if n else 0.0
    if (definite and low <= 0) or low < -1e-12 * scale:
        kind = "positive definite" if definite else "positive semi-definite"
        raise ValueError(f"{name} must be {kind}, its smallest eigenvalue is {low:.3g}")
    return 0.5 * (arr + arr.T)
