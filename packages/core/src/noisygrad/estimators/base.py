"""Gradient estimators: given parameters and a random generator, an :class:`Estimate` of the gradient.

An estimate carries the gradient, the objective value where it is known, what it cost (examples,
evaluations, shots) and, where cheap, statistics of its own noise. Estimators are bound to an objective at
construction and check that the objective's kind allows them (see :mod:`noisygrad.objectives`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from noisygrad.checks import check_finite
from noisygrad.objectives import (
    Energy,
    Kind,
    NoisyBlackBox,
    Objective,
    require_kind,
)


@dataclass(frozen=True)
class Cost:
    """What an estimate (or a whole run) spent."""

    examples: int = 0
    evaluations: int = 0
    shots: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.examples + other.examples,
            self.evaluations + other.evaluations,
            self.shots + other.shots,
        )


@dataclass(frozen=True)
class Estimate:
    """One gradient estimate.

    Attributes:
        grad: the gradient estimate, shaped like the parameters.
        value: the objective value at the parameters, estimated from the same data (``None`` if unknown).
        cost: what producing the estimate spent.
        stats: cheap noise statistics, e.g. ``"grad_variance"``: an unbiased estimate of
            ``E|grad - true_grad|^2`` (the trace of the estimate's covariance).
    """

    grad: torch.Tensor
    value: float | None
    cost: Cost
    stats: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Estimator(Protocol):
    """Anything that turns parameters and a generator into an :class:`Estimate`.

    Estimators with memory (control variates, calibration) expose it through ``state_dict`` and
    ``load_state_dict`` so that a run can be checkpointed and continued bit-identically. An estimator that draws
    random numbers draws them from ``generator`` only, and refuses ``None``
    (:func:`noisygrad.checks.check_torch_generator`): torch's global generator would make a run depend on
    whatever else advanced it.
    """

    @property
    def objective(self) -> Objective: ...

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stateless:
    """The base of estimators that remember nothing between calls (an empty ``state_dict``)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")


def evaluate_points(
    objective: NoisyBlackBox | Energy,
    points: torch.Tensor,
    generator: torch.Generator,
    shape: torch.Size | tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, Cost]:
    """Values of ``objective`` at the rows of ``points`` (shape ``(K, d)``) and what they cost.

    A :class:`NoisyBlackBox` gets all ``K`` points in one ``evaluate`` call; its cost counts ``K``
    evaluations and, when ``cost_unit == "shots"``, ``K * cost_per_evaluation`` shots. An :class:`Energy`
    is evaluated point by point without autograd (``K`` evaluations, no shots), each row reshaped to
    ``shape`` (the parameters' shape) when given.
    """
    require_kind("evaluate_points", objective, (Kind.BLACK_BOX, Kind.ENERGY))
    if not isinstance(points, torch.Tensor) or points.ndim != 2:
        raise ValueError(f"points must be a tensor of shape (K, d), got {getattr(points, 'shape', type(points))}")
    k = points.shape[0]
    if isinstance(objective, NoisyBlackBox):
        values = objective.evaluate(points, generator)
        shots = round(objective.cost_per_evaluation * k) if objective.cost_unit == "shots" else 0
        return values, Cost(evaluations=k, shots=shots)
    rows = points if shape is None else points.reshape(k, *shape)
    with torch.no_grad():
        values = torch.stack([torch.as_tensor(objective.fn(p), dtype=points.dtype).reshape(()) for p in rows])
    return check_finite("energy values", values), Cost(evaluations=k)
