"""LMS as the core's SGD: a streaming least-squares objective and the gradient noise that sets its noise ball.

:class:`StreamingLeastSquares` is a :class:`noisygrad.Estimator` whose estimate at step ``k`` is the gradient
of the ``k``-th sample's loss ``(d_k - u_k^T w)^2 / 2``, that is ``-e_k u_k``. ``noisygrad.minimize`` with
``noisygrad.SGD(mu)`` on it performs ``w <- w + mu e_k u_k``: the LMS recursion, step for step
(:func:`sgd_lms`). The gradient noise ``-e_k u_k - R (w_k - w_o)`` has a covariance that, through the SGD
noise-ball (Lyapunov) equation, predicts the misadjustment (:func:`gradient_noise_covariance`).

This module imports torch (through the core); the filters do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import noisygrad as ng
from noisygrad.checks import as_array, check_finite, check_positive


def _least_squares_loss(w: torch.Tensor, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((u @ w - d) ** 2).mean()


class StreamingLeastSquares:
    """The per-sample least-squares gradient, visited in stream order (one sample per estimate).

    The objective is the :class:`noisygrad.FiniteSum` ``mean_k (d_k - u_k^T w)^2 / 2``; unlike a
    :class:`noisygrad.MiniBatch`, examples are not drawn at random but taken in time order, as an adaptive
    filter sees them. The estimate's ``stats["error"]`` is the a-priori error ``e_k``.

    Args:
        u: regressors ``(N, L)`` (e.g. :func:`noisygrad.dsp.tapped_delay_line`).
        d: desired samples ``(N,)``.
    """

    def __init__(self, u: Any, d: Any) -> None:
        u_arr = as_array("u", u, np.float64, ndim=(2,), copy=True)
        d_arr = as_array("d", d, np.float64, ndim=(1,), copy=True)
        if u_arr.shape[0] != d_arr.shape[0]:
            raise ValueError(f"u and d must have the same number of samples, got {u_arr.shape[0]} and {d_arr.shape[0]}")
        self.objective = ng.FiniteSum(_least_squares_loss, (torch.from_numpy(u_arr), torch.from_numpy(d_arr)))
        self.position = 0

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> ng.Estimate:
        """The gradient of sample ``position``'s loss at ``params``; advances the stream by one sample."""
        if self.position >= self.objective.n_examples:
            raise IndexError(f"the stream is exhausted after {self.objective.n_examples} samples")
        check_finite("params", params, hint="the parameters were already NaN/Inf; the stream did not advance")
        idx = torch.tensor([self.position])
        value, grad = self.objective.value_and_grad(params, idx)
        check_finite("gradient", grad)  # before the stream advances: a refused call leaves the position as it was
        self.position += 1
        error = float(self.objective.data[1][idx] - self.objective.data[0][idx] @ params)
        return ng.Estimate(grad, value, ng.Cost(examples=1), {"error": error})

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


def sgd_lms(u: Any, d: Any, mu: float, w0: Any = None) -> np.ndarray:
    """LMS weights after every sample of ``(u, d)``, computed by ``noisygrad.minimize`` with ``noisygrad.SGD(mu)``.

    Returns the final weights ``(L,)``; equal (to rounding) to ``LMS(L, mu).run_regressors(u, d=d)``'s.
    """
    mu = check_positive("mu", mu)
    estimator = StreamingLeastSquares(u, d)
    n, taps = estimator.objective.data[0].shape
    x0 = np.zeros(taps) if w0 is None else as_array("w0", w0, np.float64, ndim=(1,))
    result = ng.minimize(estimator, ng.SGD(mu), torch.from_numpy(x0), steps=n, record_every=n)
    return result.x.numpy()


def gradient_noise_covariance(u: Any, e: Any, weights: Any, w_opt: Any, R: Any) -> np.ndarray:
    """Covariance of the LMS gradient noise ``xi_k = -e_k u_k - R (w_k - w_o)`` over the given samples.

    Args:
        u: regressors ``(N, L)``; e: a-priori errors ``(N,)``; weights: a-priori weights ``(N, L)`` (an
            LMS's ``history``); w_opt: the optimum ``w_o``; R: the input covariance ``(L, L)``.
    """
    u = as_array("u", u, np.float64, ndim=(2,))
    e = as_array("e", e, np.float64, ndim=(1,))
    weights = as_array("weights", weights, np.float64, ndim=(2,))
    w_opt = as_array("w_opt", w_opt, np.float64, ndim=(1,))
    r = as_array("R", R, np.float64, ndim=(2,))
    if weights.shape != u.shape or e.shape != u.shape[:1] or w_opt.shape != u.shape[1:]:
        raise ValueError(
            f"u (N, L), e (N,), weights (N, L) and w_opt (L,) must agree, got {u.shape}, {e.shape}, "
            f"{weights.shape}, {w_opt.shape}"
        )
    xi = -e[:, None] * u - (weights - w_opt) @ r.T
    return xi.T @ xi / xi.shape[0]
