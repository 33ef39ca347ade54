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

import copy
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from noisygrad.checks import check_finite, check_positive, check_same_shape
from noisygrad.schedules import Constant, Schedule, check_rate

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

    Class attributes a rule sets for :class:`~noisygrad.TorchOptimizer`:

    * ``hyperparameters``: the constructor's settings (besides ``lr``) that a ``torch.optim`` parameter group
      may set per group, with the same names as the rule's attributes;
    * ``torch_twin``: the name of the ``torch.optim`` optimizer with the same arithmetic, whose parameter-group
      keys and state format the adapter then shares (so state dicts load from one into the other);
    * ``complex_as_real``: step a complex parameter as its real view (``torch.view_as_real``), as ``torch.optim``
      does for rules that are not linear in the gradient (Adam's ``g * g``); ``False`` steps the complex tensor
      itself (a linear rule such as SGD, which ``torch.optim.SGD`` steps that way).
    """

    lr: Schedule
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    torch_twin: ClassVar[str | None] = None
    complex_as_real: ClassVar[bool] = True

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
        if params.is_complex() or grad.is_complex():
            raise TypeError(
                f"update takes real tensors, got params of dtype {params.dtype} and grad of dtype {grad.dtype}; "
                "step complex parameters through TorchOptimizer, which updates their real and imaginary parts as "
                "torch.optim does"
            )
        if lr is not None:
            step_lr = check_positive("lr", lr, allow_zero=True)
        elif isinstance(self.lr, Constant):
            step_lr = self.lr.value  # checked when the rule was built
        else:
            step_lr = check_rate(self.lr, int(state["step"]))  # a schedule may turn NaN or negative at any step
        return self._advance(params.detach(), grad.detach(), state, step_lr)

    def replace(self, **settings: Any) -> Rule:
        """A copy of this rule with some of its ``hyperparameters`` changed (checked as the constructor checks them).

        The copy shares the learning-rate schedule and anything else that is not a hyperparameter (a sampler's
        seed); :class:`~noisygrad.TorchOptimizer` uses it for parameter groups with their own settings.
        """
        unknown = sorted(set(settings) - set(self.hyperparameters))
        if unknown:
            raise TypeError(
                f"{unknown[0]!r} is not a setting of {type(self).__name__} "
                f"(its settings: lr{''.join(', ' + name for name in self.hyperparameters)})"
            )
        current = {name: getattr(self, name) for name in self.hyperparameters}
        checked = type(self)(lr=self.lr, **{**current, **settings})  # type: ignore[call-arg]
        fresh = copy.copy(self)
        for name in self.hyperparameters:
            setattr(fresh, name, getattr(checked, name))
        return fresh

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
