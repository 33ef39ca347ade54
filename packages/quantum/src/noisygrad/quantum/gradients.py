"""Gradient estimators for the shot-noise energy: parameter shift, finite differences, SPSA.

All are :class:`noisygrad.Estimator` objects on an :class:`~noisygrad.quantum.EnergyObjective`, and each
puts every point of one estimate into ONE backend call (a ``(K, P)`` batch).

Per-component variance with ``S`` shots per group and single-shot variance ``sigma^2 = sum_g Var_g``:

* parameter shift (``+-pi/2``, ``2P`` evaluations, exact for rotations ``exp(-i theta G / 2)`` with
  ``G^2 = 1``): ``[sigma^2(theta + s e_i) + sigma^2(theta - s e_i)] / (4 S sin^2 s)``, i.e. ``sigma^2 / (2 S)``
  (Mitarai et al. 2018; Schuld et al. 2019; Mari et al. 2021 for the ``1 / sin^2 s`` factor);
* central differences, step ``h`` (``2P`` evaluations, bias ``O(h^2)``): ``sigma^2 / (2 h^2 S)``;
* SPSA (2 evaluations whatever ``P``; the core's :class:`noisygrad.SPSA`): ``sum_{j != i} g_j^2 +
  sigma^2 / (2 c^2 S)`` (Spall 1992).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from qiskit.circuit import Parameter

from noisygrad import CentralDifference, Cost, Estimate
from noisygrad.checks import check_finite, check_positive
from noisygrad.rng import numpy_from_torch

from .objective import EnergyObjective

# exp(-i theta G / 2) with G^2 = 1 (eigenvalues +-1/2 of G/2): the two-term shift rule is exact.
SHIFT_RULE_GATES = ("rx", "ry", "rz", "p", "rxx", "ryy", "rzz", "rzx")


def check_shift_rule(objective: EnergyObjective) -> None:
    """Raise unless every parameter enters the ansatz exactly once, as the angle of a rotation gate."""
    uses: dict[Parameter, list[str]] = {p: [] for p in objective.ansatz.parameters}
    for inst in objective.ansatz.data:
        for value in inst.operation.params:
            for p in getattr(value, "parameters", ()):
                exact = isinstance(value, Parameter) and inst.operation.name in SHIFT_RULE_GATES
                uses[p].append(inst.operation.name if exact else f"{inst.operation.name}({value})")
    for p, gates in uses.items():
        if len(gates) != 1 or gates[0] not in SHIFT_RULE_GATES:
            raise ValueError(
                f"parameter shift needs each parameter to be the plain angle of exactly one rotation gate "
                f"{SHIFT_RULE_GATES}; parameter {p.name} appears in {gates}. Use gradient='spsa' or "
                "'finite-difference', or decompose the ansatz"
            )


class ParameterShift:
    """The parameter-shift gradient ``g_i = [f(theta + s e_i) - f(theta - s e_i)] / (2 sin s)``.

    Exact (unbiased) for ansatzes whose parameters each drive one rotation gate (checked at construction).
    All ``2P`` shifted points are evaluated in one backend call. ``Estimate.stats["grad_variance"]`` is the
    estimated trace of the gradient's covariance, from the per-point standard errors of the samples.

    Args:
        objective: the shot-noise energy.
        shift: the shift ``s`` in (0, pi); ``pi/2`` (the default) minimises the variance.
    """

    def __init__(self, objective: EnergyObjective, *, shift: float = math.pi / 2) -> None:
        if not isinstance(objective, EnergyObjective):
            raise TypeError(f"objective must be an EnergyObjective, got {type(objective).__name__}")
        check_shift_rule(objective)
        self.objective = objective
        self.shift = check_positive("shift", shift)
        if not self.shift < math.pi:
            raise ValueError(f"shift must lie in (0, pi), got {shift}")

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        p = self.objective.num_parameters
        flat = params.detach().reshape(1, -1)
        eye = torch.eye(p, dtype=flat.dtype) * self.shift
        points = torch.cat([flat + eye, flat - eye])
        values = self.objective.sample(points, numpy_from_torch(generator))
        stds = self.objective.last_stds
        scale = 2.0 * math.sin(self.shift)
        grad = torch.as_tensor((values[:p] - values[p:]) / scale, dtype=flat.dtype).reshape(params.shape)
        variance = float(((stds[:p] ** 2 + stds[p:] ** 2) / scale**2).sum())
        cost = Cost(evaluations=2 * p, shots=2 * p * self.objective.shots_per_evaluation)
        return Estimate(check_finite("parameter-shift gradient", grad), None, cost, {"grad_variance": variance})

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"ParameterShift keeps no state, got keys {sorted(state)}")


def finite_difference(objective: EnergyObjective, *, step: float = 0.1) -> CentralDifference:
    """Central differences on the shot-noise energy (the core's :class:`noisygrad.CentralDifference`).

    Under shot noise a small step is ruinous (variance ``sigma^2 / (2 h^2 S)``): the default ``0.1`` is a
    compromise for ``S ~ 1000`` (Mari et al. 2021: the MSE-optimal step grows like ``S^(-1/6)``).
    """
    return CentralDifference(objective, step=step)
