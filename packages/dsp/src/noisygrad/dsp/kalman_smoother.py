"""The Rauch-Tung-Striebel (RTS) fixed-interval smoother for the output of :class:`noisygrad.dsp.Kalman`.

Backwards from the last step: ``G_k = P_k F_{k+1}^T (P_{k+1}^-)^-1``,
``x_k^s = x_k + G_k (x_{k+1}^s - x_{k+1}^-)``, ``P_k^s = P_k + G_k (P_{k+1}^s - P_{k+1}^-) G_k^T``, where
``x^-``, ``P^-`` are the filter's predictions (Rauch, Tung and Striebel, AIAA J. 3:1445, 1965). Given the
predictions the filter made (``prior_means``, ``prior_covariances``), control inputs, time-varying noise and a
fading memory are accounted for exactly; otherwise they are recomputed as ``F x`` and
``inflation F P F^T + Q`` (filterpy's ``rts_smoother``, which has no control input).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from noisygrad.checks import as_array, check_in_range


class SmootherResult(NamedTuple):
    """Smoothed means ``(N, *batch, n)``, covariances ``(N, *batch, n, n)``, smoother gains ``G_k`` (zero at
    the last step) and the predicted covariances used (``prior_covariances[k]`` predicts step ``k + 1``; the
    last is the filtered covariance, as filterpy returns it). Unpacks like filterpy's ``(x, P, K, Pp)``."""

    means: np.ndarray
    covariances: np.ndarray
    gains: np.ndarray
    prior_covariances: np.ndarray


def _per_step(name: str, value: Any, n_steps: int, n: int, dtype: Any) -> np.ndarray:
    arr = as_array(name, np.asarray(value), np.float64, ndim=(2, 3))
    if arr.shape[-2:] != (n, n) or (arr.ndim == 3 and arr.shape[0] != n_steps):
        raise ValueError(f"{name} must have shape ({n}, {n}) or ({n_steps}, {n}, {n}), got {arr.shape}")
    return np.broadcast_to(arr.astype(dtype), (n_steps, n, n))


def rts_smoother(
    means: Any,
    covariances: Any,
    F: Any,
    *,
    Q: Any = None,
    prior_means: Any = None,
    prior_covariances: Any = None,
    inflation: float = 1.0,
) -> SmootherResult:
    """Smooth filtered ``means`` ``(N, *batch, n)`` and ``covariances`` ``(N, *batch, n, n)``.

    Args:
        F: the transition ``(n, n)``, or one per step ``(N, n, n)`` (``F[k]`` moves step ``k - 1`` to ``k``, as in
            :meth:`Kalman.batch_filter`'s ``Fs``).
        Q: the process noise, as ``F``; needed unless the predictions are given.
        prior_means, prior_covariances: the filter's predictions (``KalmanResult.prior_means`` and
            ``.prior_covariances``); both or neither.
        inflation: the filter's fading memory, used when the predictions are recomputed.
    """
    xs = as_array("means", means, np.float64, ndim=(2, 3))
    dtype = np.asarray(means).dtype if np.asarray(means).dtype in (np.float32, np.float64) else np.float64
    n_steps, n = xs.shape[0], xs.shape[-1]
    ps = as_array("covariances", covariances, np.float64, ndim=(xs.ndim + 1,))
    if ps.shape != (*xs.shape, n):
        raise ValueError(f"covariances must have shape {(*xs.shape, n)} to match means {xs.shape}, got {ps.shape}")
    fs = _per_step("F", F, n_steps, n, np.float64)
    given = (prior_means is not None, prior_covariances is not None)
    if given[0] != given[1]:
        raise ValueError("give both prior_means and prior_covariances (from the same batch_filter), or neither")
    if given[0]:
        xp = as_array("prior_means", prior_means, np.float64, ndim=(xs.ndim,))
        pp = as_array("prior_covariances", prior_covariances, np.float64, ndim=(ps.ndim,))
        if xp.shape != xs.shape or pp.shape != ps.shape:
            raise ValueError(f"prior_means and prior_covariances must have shapes {xs.shape} and {ps.shape}")
    else:
        if Q is None:
            raise ValueError("Q is needed to recompute the predictions (or give prior_means and prior_covariances)")
        qs = _per_step("Q", Q, n_steps, n, np.float64)
        a2 = check_in_range("inflation", inflation, 1.0, np.inf, low_open=False, high_open=True)
        xp = np.empty_like(xs)
        pp = np.empty_like(ps)
        xp[0], pp[0] = xs[0], ps[0]  # unused: nothing is smoothed towards step 0
        for k in range(1, n_steps):
            xp[k] = xs[k - 1] @ fs[k].T
            pp[k] = a2 * (fs[k] @ ps[k - 1] @ fs[k].T) + qs[k]
    sx, sp = xs.copy(), ps.copy()
    gains = np.zeros_like(ps)
    used = ps.copy()
    for k in range(n_steps - 2, -1, -1):
        pred = 0.5 * (pp[k + 1] + np.swapaxes(pp[k + 1], -1, -2))
        cross = fs[k + 1] @ ps[k]  # F P_k, so G_k^T = (P_{k+1}^-)^-1 F P_k
        try:
            g = np.swapaxes(np.linalg.solve(pred, cross), -1, -2)
        except np.linalg.LinAlgError:
            raise ValueError(f"the predicted covariance of step {k + 1} is singular: the smoother gain needs it "
                             "invertible (Q > 0, or P > 0)") from None  # fmt: skip
        gains[k] = g
        used[k] = pred
        sx[k] = xs[k] + (g @ (sx[k + 1] - xp[k + 1])[..., None])[..., 0]
        upd = ps[k] + g @ (sp[k + 1] - pred) @ np.swapaxes(g, -1, -2)
        sp[k] = 0.5 * (upd + np.swapaxes(upd, -1, -2))
    return SmootherResult(sx.astype(dtype), sp.astype(dtype), gains.astype(dtype), used.astype(dtype))
