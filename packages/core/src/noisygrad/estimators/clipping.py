"""Clipping: the guard against heavy-tailed gradient noise.

What heavy tails do (measured on ``f = x^2 / 2``, SGD at ``lr = 0.1``, noise of *equal variance*): the
mean-square noise ball is unchanged (the Lyapunov equation only sees second moments) while its far quantiles
grow (q99.99 of ``|x|`` 2.9x the Gaussian one for Student-t with 3 degrees of freedom); with infinite variance
(alpha-stable noise) there is no finite ball at all. Clipping the stochastic gradient (:class:`Clipped`)
restores a light-tailed ball, at the price of a bias whenever the noise is asymmetric.

Tail indices that tell how heavy a tail is are in :mod:`noisygrad.noise.tails`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from noisygrad.checks import check_finite, check_positive, check_torch_generator
from noisygrad.estimators.base import Estimate, Estimator

__all__ = ["Clipped"]


class Clipped:
    """Wrap an estimator and clip each gradient estimate to a maximum Euclidean norm.

    ``g <- g * min(1, max_norm / |g|)`` (what ``torch.nn.utils.clip_grad_norm_`` does). The estimate's stats
    gain ``"clipped"`` (1.0 when the norm was cut) and ``"raw_grad_norm"``. The wrapped estimator's state is
    passed through ``state_dict`` / ``load_state_dict``. A NaN or Inf in the wrapped estimate raises
    :class:`~noisygrad.NonFiniteGradientError` (scaling would turn Inf into NaN and hide where it came from); a
    finite gradient whose squares overflow is still clipped, its norm taken after scaling by its largest entry.
    """

    def __init__(self, estimator: Estimator, max_norm: float) -> None:
        if not isinstance(estimator, Estimator):
            raise TypeError(f"estimator must be a noisygrad Estimator, got {type(estimator).__name__}")
        self.estimator = estimator
        self.objective = estimator.objective
        self.max_norm = check_positive("max_norm", max_norm)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        check_torch_generator("generator", generator)  # refused here whatever the wrapped estimator checks
        est = self.estimator.estimate(params, generator)
        norm = float(est.grad.norm())
        if not math.isfinite(norm):
            check_finite("the wrapped estimator's gradient", est.grad, hint="clipping cannot repair NaN or Inf")
            largest = est.grad.abs().max()
            norm = float(largest) * float((est.grad / largest).norm())
        scale = min(1.0, self.max_norm / norm) if norm > 0 else 1.0
        stats = {**est.stats, "clipped": float(scale < 1.0), "raw_grad_norm": norm}
        return Estimate(est.grad * scale, est.value, est.cost, stats)

    def state_dict(self) -> dict[str, Any]:
        return self.estimator.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state)
