"""Optimizers: update rules with explicit, serialisable state.

An optimizer is a pair ``init(params) -> state`` and ``update(params, grad, state) -> (params, state)``
in the style of optax, working on torch tensors. ``update`` is pure: it returns new tensors and never
changes the ``params``, ``grad`` or ``state`` it was given. A state is a plain ``dict`` of tensors and
numbers, so ``torch.save(state)`` / ``torch.load(..., weights_only=True)`` round-trips it exactly.

:class:`Rule` is the base that :mod:`noisygrad.optim.sgd`, :mod:`noisygrad.optim.adam` and the Langevin
samplers build on. The arithmetic of SGD and Adam follows ``torch.optim``'s single-tensor kernels operation
by operation, so on the same gradients they give the same iterates bit for bit.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from noisygrad.checks import check_finite, check_positive, check_same_shape
from noisygrad.schedules import Constant, Schedule

State = dict[str, Any]


@runtime_checkable
class Optimizer(Protocol):
    """An update rule; ``lr`` is a schedule ``t -> float`` (a float becomes a constant schedule)."""

    lr: Schedule

    def init(self, params: torch.Tensor) -> State: ...

    def update(
        self, params: torch.Tensor, grad: torch.Tensor, state: State, *, lr: float | None = None
    ) -> tuple[torch.Tensor, State]: ...


class Rule:
    """The base of an update rule: ``init``/``update`` with the shared checks and step counting.

    A new optimizer subclasses it and implements ``_init(params) -> state`` (the state beyond the step count)
    and ``_step(params, grad, state, lr) -> (params, state)`` (pure: new tensors, the given ones untouched);
    :mod:`noisygrad.optim.sgd` is the smallest example. ``noisygrad.testing.check_optimizer`` checks the result.
    """

    lr: Schedule

    def init(self, params: torch.Tensor) -> State:
        """The state before the first step."""
        return {"step": 0, **self._init(params.detach())}

    def update(
        self, params: torch.Tensor, grad: torch.Tensor, state: State, *, lr: float | None = None
    ) -> tuple[torch.Tensor, State]:
        """One step from ``params`` along ``grad``; ``lr`` overrides the schedule for this step."""
        check_same_shape("grad", grad, params, "params")
        check_finite("params", params, hint="the parameters were already NaN/Inf before this step")
        check_finite("grad", grad)
        step_lr = self.lr(int(state["step"])) if lr is None else check_positive("lr", lr)
        return self._advance(params.detach(), grad.detach(), state, step_lr)

    def _advance(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        """``update`` without its checks, for callers that have validated (the torch adapter's hot path)."""
        new_params, new_state = self._step(params, grad, dict(state), lr)
        new_state["step"] = int(state["step"]) + 1
        return new_params, new_state

    def _init(self, params: torch.Tensor) -> State:
        raise NotImplementedError

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def is_constant_rate(optimizer: Optimizer) -> bool:
    """True when the optimizer's learning rate does not change with the step."""
    return isinstance(optimizer.lr, Constant)
