"""The parts :func:`~noisygrad.minimize` takes beside the estimator and the optimizer, one job each.

The loop is ``estimate -> update -> project -> accept or reject -> record``; each part fills one slot of it,
as a step-size controller or a ``SaveAt`` fills one slot of diffrax's solve:

* :class:`Projection` (``projection=``): clamps every iterate into a box, so ``bounds`` hold;
* :class:`Blocking` (``blocking=``): measures each candidate point and rejects a step whose value rose by more
  than an allowed increase (Spall 1998), so one bad gradient estimate cannot throw the run uphill;
* :class:`IterateAveraging` (``averaging=``): the returned point is the mean of the last accepted iterates
  (Polyak-Ruppert), which damps the noise ball a constant or slowly decaying gain leaves;
* :class:`FinalEstimate` (``final=``): re-estimates the value at the returned point, so a black box's run reports
  a value with its standard error.

A part is a frozen configuration; what changes during a run (blocking's reference value, the averaged
iterates) is a plain state that the loop keeps and writes into its checkpoint, the way an optimizer's state is
kept (``init`` / ``update``), so a resumed run stays bit-identical. Parts that measure values take a
:data:`Measure`, ``measure(points, generator) -> Measurement``; left out, they evaluate the estimator's own
objective (a :class:`~noisygrad.NoisyBlackBox` or an :class:`~noisygrad.Energy`) with
:func:`~noisygrad.estimators.base.evaluate_points`, which knows no standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from noisygrad.checks import check_positive, check_positive_int
from noisygrad.estimators.base import Cost, evaluate_points
from noisygrad.objectives import Kind, Objective, require_kind

__all__ = ["Blocking", "FinalEstimate", "IterateAveraging", "Measure", "Measurement", "Projection", "measure_of"]


class Measurement(NamedTuple):
    """Values measured at the rows of a ``(K, d)`` batch of points.

    Attributes:
        values: shape ``(K,)``.
        stderr: the standard error of each value, shape ``(K,)``; ``None`` when the measure cannot tell.
        cost: what the measurement spent (added to the run's cost).
    """

    values: torch.Tensor
    stderr: torch.Tensor | None = None
    cost: Cost = Cost()


#: ``measure(points, generator) -> Measurement``: values at the rows of ``points``, drawing any randomness
#: from ``generator`` (the run's, so that a seeded run is reproducible).
Measure = Callable[[torch.Tensor, torch.Generator], Measurement]


def measure_of(objective: Objective) -> Measure:
    """The default :data:`Measure` of a part: the objective's values by ``evaluate_points``, no standard errors."""
    require_kind("a loop part's default measure (pass measure= otherwise)", objective, (Kind.BLACK_BOX, Kind.ENERGY))

    def measure(points: torch.Tensor, generator: torch.Generator) -> Measurement:
        values, cost = evaluate_points(objective, points, generator)  # type: ignore[arg-type]  # kind checked
        return Measurement(values, None, cost)

    return measure


@dataclass(frozen=True, eq=False)
class Projection:
    """Keep every iterate in the box ``low <= x <= high`` by clamping each coordinate (Euclidean projection).

    Applied to ``x0`` at the start of a run and to every candidate point after the optimizer's update, before
    blocking judges it; the optimizer's own state is left alone (projected gradient descent).

    Args:
        low, high: bounds broadcast against the parameters (tensors or numbers; ``-inf`` / ``inf`` for none).
    """

    low: torch.Tensor | float
    high: torch.Tensor | float

    def __post_init__(self) -> None:
        bounds = []
        for name in ("low", "high"):
            value = getattr(self, name)
            try:
                bound = torch.as_tensor(value)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(
                    f"Projection's {name} must be a number or a tensor, got {type(value).__name__}"
                ) from exc
            if not (bound.is_floating_point() or bound.dtype in (torch.int32, torch.int64)):
                raise TypeError(f"Projection's {name} must hold real numbers, got dtype {bound.dtype}")
            bounds.append(bound)
        low, high = bounds
        if bool(torch.isnan(low).any() | torch.isnan(high).any()) or bool((low > high).any()):
            raise ValueError("Projection needs low <= high everywhere (no NaN)")

    def check(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the bound whose shape does not broadcast to the parameters' shape."""
        for name in ("low", "high"):
            shape = torch.as_tensor(getattr(self, name)).shape
            fits = len(shape) <= x.ndim and all(
                a in (1, b) for a, b in zip(reversed(shape), reversed(x.shape), strict=False)
            )
            if not fits:
                raise ValueError(
                    f"projection's {name} has shape {tuple(shape)}, which does not fit the parameters' shape "
                    f"{tuple(x.shape)}: pass a number or one bound per parameter"
                )

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The point of the box nearest to ``x``."""
        low, high = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in (self.low, self.high))
        return torch.clamp(x, low, high)


@dataclass(frozen=True)
class Blocking:
    """Reject a step whose measured value rose by more than an allowed increase (Spall 1998, "blocking").

    At the start it measures the value at ``x0``; after each update it measures the candidate point (one more
    measurement per step) and accepts it iff ``value <= reference + allowed``, where ``reference`` is the last
    accepted value. ``allowed`` is ``allowed_increase`` if given, else ``sigmas`` standard errors of the
    difference, ``sigmas * hypot(stderr, reference_stderr)``, from the measurements' own standard errors (no
    calibration evaluations). A rejected step keeps the point and the optimizer's state, except that its step
    count advances (the gain schedule goes on; a sampler that keeps its noise generator in that state, SGLD or
    BAOAB, draws the rejected step's noise again). Why: a noisy gradient estimate now and then points uphill by far
    more than the noise; blocking stops such a step at the price of one measurement per step.

    Args:
        measure: measures the candidate points (default: the estimator's objective, which gives no standard
            errors, so ``allowed_increase`` is then required).
        allowed_increase: a fixed allowed increase (qiskit's ``allowed_increase``), >= 0.
        sigmas: with ``allowed_increase=None``, how many standard errors of the difference are allowed.
    """

    measure: Measure | None = None
    allowed_increase: float | None = None
    sigmas: float = 2.0

    def __post_init__(self) -> None:
        if self.allowed_increase is not None:
            object.__setattr__(
                self, "allowed_increase", check_positive("allowed_increase", self.allowed_increase, allow_zero=True)
            )
        object.__setattr__(self, "sigmas", check_positive("sigmas", self.sigmas))

    def init(self, x: torch.Tensor, generator: torch.Generator, measure: Measure) -> tuple[dict[str, Any], Cost]:
        """The state at the start of a run: the value (and standard error) measured at ``x``."""
        value, stderr, cost = self._measure(x, generator, measure)
        return {"reference": value, "stderr": stderr, "rejected": 0}, cost

    def judge(
        self, candidate: torch.Tensor, state: dict[str, Any], generator: torch.Generator, measure: Measure
    ) -> tuple[bool, dict[str, Any], dict[str, float], Cost]:
        """``(accepted, new state, details, cost)``; ``details`` hold ``measured``, ``reference`` and ``allowed``."""
        value, stderr, cost = self._measure(candidate, generator, measure)
        if self.allowed_increase is None:
            allowed = self.sigmas * math.hypot(stderr, state["stderr"])
        else:
            allowed = self.allowed_increase
        accepted = value <= state["reference"] + allowed
        details = {"measured": value, "reference": state["reference"], "allowed": allowed}
        if accepted:
            state = {**state, "reference": value, "stderr": stderr}
        else:
            state = {**state, "rejected": state["rejected"] + 1}
        return accepted, state, details, cost

    def _measure(self, x: torch.Tensor, generator: torch.Generator, measure: Measure) -> tuple[float, float, Cost]:
        values, stderr, cost = measure(x.reshape(1, -1), generator)
        if stderr is None and self.allowed_increase is None:
            raise ValueError(
                "Blocking's measure gives no standard errors: pass allowed_increase=, or a measure that returns them"
            )
        return float(values[0]), 0.0 if stderr is None else float(stderr[0]), cost


@dataclass(frozen=True)
class IterateAveraging:
    """Return the mean of the last ``last`` accepted iterates instead of the last one (Polyak-Ruppert averaging).

    Why: with a constant or slowly decaying gain the iterates end in a noise ball around the minimum; their
    mean sits much closer to its centre. Averaging over a trajectory that still descends biases the mean
    towards where it came from, so ``last`` should cover the final stretch only. Without an accepted step the
    starting point is returned. The checkpoint holds the iterates, so a resumed run averages the same ones.

    Args:
        last: how many of the last accepted iterates are averaged, >= 1 (1: the last iterate).
    """

    last: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "last", check_positive_int("last", self.last))

    def init(self) -> dict[str, Any]:
        """The state at the start of a run: no iterate yet."""
        return {"tail": []}

    def observe(self, x: torch.Tensor, state: dict[str, Any]) -> dict[str, Any]:
        """The state after ``x`` was accepted."""
        return {"tail": [*state["tail"], x.clone()][-self.last :]}

    def point(self, x: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """The returned point: the mean of the kept iterates (``x`` when there are none)."""
        return torch.stack(state["tail"]).mean(0) if state["tail"] else x


@dataclass(frozen=True)
class FinalEstimate:
    """Re-estimate the value at the returned point: ``repeats`` fresh measurements in one call, averaged.

    Why: the values seen during a run are noisy, taken at other points, or biased by selection (blocking keeps
    the lucky ones); an honest report needs fresh measurements at the returned point. The result's
    ``fun_estimate`` is their mean and ``fun_stderr`` its standard error (with one repeat, the measure's own
    standard error, if it gives one); the cost goes into the result's ``cost`` (not into the checkpoint's, as a
    continued run makes its own final estimate).

    Args:
        measure: measures the returned point (default: the estimator's objective).
        repeats: fresh measurements averaged, >= 1.
    """

    measure: Measure | None = None
    repeats: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "repeats", check_positive_int("repeats", self.repeats))

    def estimate(
        self, x: torch.Tensor, generator: torch.Generator, measure: Measure
    ) -> tuple[float, float | None, Cost]:
        """``(value, standard error or None, cost)`` at ``x``."""
        points = x.reshape(1, -1).repeat(self.repeats, 1)
        values, stderr, cost = measure(points, generator)
        if self.repeats == 1:
            return float(values[0]), None if stderr is None else float(stderr[0]), cost
        return float(values.mean()), float(values.std() / math.sqrt(self.repeats)), cost
