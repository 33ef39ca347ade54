"""Central finite differences: ``2 d`` evaluations per gradient, a truncation bias of order ``h^2``."""

from __future__ import annotations

import torch

from noisygrad.checks import check_finite, check_positive, check_torch_generator
from noisygrad.estimators.base import Estimate, Stateless, evaluate_points
from noisygrad.objectives import (
    Energy,
    Kind,
    NoisyBlackBox,
    require_kind,
)


class CentralDifference(Stateless):
    """Central finite differences ``(f(x + h e_i) - f(x - h e_i)) / 2h``: ``2d`` evaluations per estimate.

    Works on a :class:`NoisyBlackBox` (all ``2d`` points go in one call) and on an :class:`Energy`.
    Under evaluation noise of variance ``sigma^2`` each component has variance ``sigma^2 / (2 h^2)``, so
    ``step`` trades truncation bias (``O(h^2)``) against noise; it is a poor choice for shot-noise objectives.
    """

    def __init__(self, objective: NoisyBlackBox | Energy, *, step: float = 1e-6) -> None:
        require_kind("CentralDifference", objective, (Kind.BLACK_BOX, Kind.ENERGY))
        self.objective = objective
        self.step = check_positive("step", step)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        check_torch_generator("generator", generator)  # a noisy black box draws its noise from it
        d = params.numel()
        eye = torch.eye(d, dtype=params.dtype, device=params.device) * self.step
        flat = params.detach().reshape(1, d)
        points = torch.cat([flat + eye, flat - eye])
        values, spent = evaluate_points(self.objective, points, generator, params.shape)
        grad = ((values[:d] - values[d:]) / (2 * self.step)).reshape(params.shape)
        return Estimate(check_finite("gradient", grad), None, spent)
