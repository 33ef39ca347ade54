"""The iteration shared by :func:`~noisygrad.quantum.vqe` and the :class:`~noisygrad.quantum.SPSA` minimizer.

It is the core's estimate-then-update step plus what a noisy black box needs and the core loop does not
do: optional *blocking* (Spall 1998: reject a step whose measured value rose by more than an allowed
increase) and the averaging of the last iterates. Every evaluation goes through the caller's objective,
so the cost is counted where it is spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from noisygrad import Estimator, Optimizer

# Values with their standard errors at the rows of points (one batched call).
ValueFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LoopResult:
    x: torch.Tensor
    iterations: int
    rejected: int
    history: list[dict[str, Any]] = field(default_factory=list)


def run(
    estimator: Estimator,
    optimizer: Optimizer,
    x0: torch.Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    value_fn: ValueFn | None = None,
    blocking: bool = False,
    average_last: int = 1,
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    initial_value: tuple[float, float] | None = None,
    on_step: Callable[[int, torch.Tensor, dict[str, Any]], None] | None = None,
) -> LoopResult:
    """``steps`` iterations of ``x <- update(x, estimate(x))``; returns the (averaged) final point.

    With ``blocking``, ``value_fn`` evaluates each candidate point (one more evaluation per step) and a
    candidate is rejected when its value exceeds the last accepted one by more than twice the standard
    error of their difference (from the samples' own standard errors: no extra calibration evaluations).
    ``initial_value`` (value, standard error) at ``x0``, if already measured, saves blocking's first evaluation.
    ``average_last`` averages the last accepted iterates (Polyak-Ruppert), which damps the final noise ball.
    With blocking, each step's record holds the candidate's value (``estimate``), the last accepted value
    (``reference``) and the ``allowed`` increase, so the decision can be checked afterwards.
    """
    if blocking and value_fn is None:
        raise ValueError("blocking needs value_fn to evaluate candidate points")
    x = x0.clone()
    state = optimizer.init(x)
    last_value = initial_value
    if blocking and last_value is None:
        v, s = value_fn(x.reshape(1, -1))  # type: ignore[misc]
        last_value = (float(v[0]), float(s[0]))
    tail: list[torch.Tensor] = []
    rejected = 0
    history: list[dict[str, Any]] = []
    for t in range(steps):
        est = estimator.estimate(x, generator)
        candidate, new_state = optimizer.update(x, est.grad, state)
        if bounds is not None:
            candidate = torch.clamp(candidate, *bounds)
        accepted = True
        record: dict[str, Any] = {"step": t + 1, "estimate": est.value, "grad_norm": float(est.grad.norm())}
        if blocking:
            v, s = value_fn(candidate.reshape(1, -1))  # type: ignore[misc]
            value, std = float(v[0]), float(s[0])
            allowed = 2.0 * math.hypot(std, last_value[1])  # type: ignore[index]
            accepted = value <= last_value[0] + allowed  # type: ignore[index]
            record.update(estimate=value, reference=last_value[0], allowed=allowed)  # type: ignore[index]
            if accepted:
                last_value = (value, std)
        if accepted:
            x, state = candidate, new_state
            tail = ([*tail, x.clone()])[-average_last:]
        else:
            rejected += 1
            state = {**state, "step": new_state["step"]}  # the gain schedule still advances
        record["accepted"] = accepted
        if on_step is not None:
            on_step(t + 1, x, record)
        history.append(record)
    final = torch.stack(tail).mean(0) if tail else x
    return LoopResult(final, steps, rejected, history)
