"""The ``minimize`` loop: estimate, step, record, call back, and checkpoint anywhere.

A run's whole state (parameters, optimizer state, estimator memory, the generator's state, the step and
the cost so far) is in :attr:`MinimizeResult.checkpoint`, a dict that ``torch.save`` stores and
``torch.load(..., weights_only=True)`` restores; ``minimize(..., resume=checkpoint)`` continues the run
bit-identically to one that was never interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from noisygrad.checks import as_parameter_vector, check_positive_int
from noisygrad.estimators.base import Cost, Estimate, Estimator
from noisygrad.objectives import Kind
from noisygrad.optim.base import Optimizer, State


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each step."""

    step: int
    x: torch.Tensor
    estimate: Estimate
    lr: float
    cost: Cost


Callback = Callable[[StepInfo], bool | None]


@dataclass
class MinimizeResult:
    """The outcome of :func:`minimize`.

    Attributes:
        x: the final parameters.
        fun: the objective at ``x``: exact for finite sums and energies (its cost is *not* in ``cost``,
            it is a report, not part of the run), ``None`` for black boxes (estimate it separately).
        nit: steps taken in total (across resumed runs).
        cost: what the run's gradient estimates spent.
        history: one dict per recorded step: ``step``, ``value`` (the estimate's), ``grad_norm``, ``lr``
            and the cumulative cost.
        stopped_by_callback: a callback returned ``True``.
        checkpoint: the state to pass as ``resume=`` to continue the run.
    """

    x: torch.Tensor
    fun: float | None
    nit: int
    cost: Cost
    history: list[dict[str, float]]
    stopped_by_callback: bool
    checkpoint: dict[str, Any] = field(repr=False)


def _final_value(estimator: Estimator, x: torch.Tensor) -> float | None:
    objective = estimator.objective
    if objective.kind is Kind.BLACK_BOX:
        return None
    return objective.value(x)  # type: ignore[union-attr]


def minimize(
    estimator: Estimator,
    optimizer: Optimizer,
    x0: Sequence[float] | torch.Tensor | None = None,
    *,
    steps: int,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    record_every: int = 1,
    resume: dict[str, Any] | None = None,
) -> MinimizeResult:
    """Run ``steps`` steps of ``optimizer`` on the estimates of ``estimator``, starting at ``x0``.

    Args:
        estimator: produces the gradient estimate at each step (it knows its objective).
        optimizer: the update rule.
        x0: the starting point, a 1-D array (copied, never modified). Omit it when resuming.
        steps: how many steps to take in this call (> 0).
        seed: seeds the run's ``torch.Generator``, the only randomness the estimator gets.
        callbacks: called with a :class:`StepInfo` after every step; one returning ``True`` stops the run.
        record_every: record every ``record_every``-th step in the history (> 0).
        resume: a ``checkpoint`` of an earlier result; continues that run (``x0`` and ``seed`` must then
            be left out / are ignored).
    """
    check_positive_int("steps", steps)
    check_positive_int("record_every", record_every)
    generator = torch.Generator()
    history: list[dict[str, float]] = []
    if resume is None:
        if x0 is None:
            raise ValueError("x0 is required unless resume= continues an earlier run")
        x = as_parameter_vector("x0", x0)
        opt_state: State = optimizer.init(x)
        generator.manual_seed(int(seed))
        start, total = 0, Cost()
    else:
        if x0 is not None:
            raise ValueError("pass either x0 (a new run) or resume= (continue a run), not both")
        x = resume["x"].clone()
        opt_state = resume["optimizer"]
        estimator.load_state_dict(resume["estimator"])
        generator.set_state(resume["generator"])
        start, total = int(resume["step"]), Cost(**resume["cost"])
    stopped = False
    for t in range(start, start + steps):
        est = estimator.estimate(x, generator)
        lr = optimizer.lr(int(opt_state["step"]))
        x, opt_state = optimizer.update(x, est.grad, opt_state)
        total = total + est.cost
        if (t + 1) % record_every == 0:
            history.append(
                {
                    "step": t + 1,
                    "value": float("nan") if est.value is None else est.value,
                    "grad_norm": float(est.grad.norm()),
                    "lr": lr,
                    "examples": total.examples,
                    "evaluations": total.evaluations,
                    "shots": total.shots,
                }
            )
        info = StepInfo(t + 1, x, est, lr, total)
        if any([cb(info) is True for cb in callbacks]):  # every callback sees every step
            stopped = True
            break
    nit = t + 1
    checkpoint = {
        "x": x.clone(),
        "optimizer": opt_state,
        "estimator": estimator.state_dict(),
        "generator": generator.get_state(),
        "step": nit,
        "cost": {"examples": total.examples, "evaluations": total.evaluations, "shots": total.shots},
    }
    return MinimizeResult(x, _final_value(estimator, x), nit, total, history, stopped, checkpoint)
