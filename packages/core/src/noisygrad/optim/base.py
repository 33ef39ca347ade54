"""Optimizers: update rules with explicit, serialisable state.

An optimizer is a pair ``init(params) -> state`` and ``update(params, grad, state) -> (params, state)``
in the style of optax, working on torch tensors. ``update`` is pure: it returns new tensors and never
changes the ``params``, ``grad`` or ``state`` it was given. A state is a plain ``dict`` of tensors and
numbers, so ``torch.save(state)`` / ``torch.load(..., weights_only=True)`` round-trips it exactly.

The arithmetic of :class:`SGD` and :class:`Adam` follows ``torch.optim``'s single-tensor kernels operation
by operation, so on the same gradients they give the same iterates bit for bit.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from noisygrad.checks import check_finite, check_in_range, check_positive, check_same_shape
from noisygrad.schedules import Constant, Schedule, as_schedule

State = dict[str, Any]


@runtime_checkable
class Optimizer(Protocol):
    """An update rule; ``lr`` is a schedule ``t -> float`` (a float becomes a constant schedule)."""

    lr: Schedule

    def init(self, params: torch.Tensor) -> State: ...

    def update(
        self, params: torch.Tensor, grad: torch.Tensor, state: State, *, lr: float | None = None
    ) -> tuple[torch.Tensor, State]: ...


class _Rule:
    """Shared checks and step counting; subclasses implement ``_init`` and ``_step``."""

    lr: Schedule

    def init(self, params: torch.Tensor) -> State:
        """The state before the first step."""
        return {"step": 0, **self._init(params.detach())}

    def update(
        self, params: torch.Tensor, grad: torch.Tensor, state: State, *, lr: float | None = None
    ) -> tuple[torch.Tensor, State]:
        """One step from ``params`` along ``grad``; ``lr`` overrides the schedule for this step."""
        check_same_shape("grad", grad, params, "params")
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


class SGD(_Rule):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    ``torch.optim.SGD``'s rule: ``b <- momentum b + (1 - dampening) g`` (``b = g`` on the first step),
    then ``x <- x - lr (g + momentum b)`` with Nesterov or ``x <- x - lr b`` without.

    Args:
        lr: learning rate, a float > 0 or a schedule (:mod:`noisygrad.schedules`).
        momentum: in [0, 1).
        dampening: in [0, 1); must be 0 with Nesterov.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 penalty coefficient, >= 0, added to the gradient.
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-2,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.lr = as_schedule("lr", lr)
        self.momentum = check_in_range("momentum", momentum, 0.0, 1.0)
        self.dampening = check_in_range("dampening", dampening, 0.0, 1.0)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    def _init(self, params: torch.Tensor) -> State:
        return {"momentum_buffer": None}

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        if self.weight_decay != 0.0:
            grad = grad.add(params, alpha=self.weight_decay)
        if self.momentum != 0.0:
            previous = state["momentum_buffer"]
            if previous is None:  # torch.optim.SGD starts the buffer at the first gradient
                buf = torch.clone(grad)
            else:
                buf = previous.mul(self.momentum).add(grad, alpha=1.0 - self.dampening)
            state["momentum_buffer"] = buf
            grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
        return params.add(grad, alpha=-lr), state


class Adam(_Rule):
    """Adam (Kingma and Ba 2015), or AdamW with ``decoupled_weight_decay=True``.

    ``torch.optim.Adam``'s arithmetic: ``m <- lerp(m, g, 1 - beta1)``, ``v <- beta2 v + (1 - beta2) g^2``,
    ``x <- x - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Args:
        lr: learning rate, a float > 0 or a schedule.
        betas: the two moment decay rates, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: >= 0; an L2 term added to the gradient, or with ``decoupled_weight_decay`` a
            shrinkage ``x <- x (1 - lr weight_decay)`` before the step (AdamW).
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        self.lr = as_schedule("lr", lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_in_range("betas[0]", betas[0], 0.0, 1.0), check_in_range("betas[1]", betas[1], 0.0, 1.0))
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)

    def _init(self, params: torch.Tensor) -> State:
        zeros = torch.zeros_like(params, memory_format=torch.preserve_format)
        return {"exp_avg": zeros, "exp_avg_sq": zeros.clone()}

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        beta1, beta2 = self.betas
        if self.weight_decay != 0.0:
            if self.decoupled_weight_decay:
                params = params.mul(1.0 - lr * self.weight_decay)
            else:
                grad = grad.add(params, alpha=self.weight_decay)
        exp_avg = state["exp_avg"].lerp(grad, 1.0 - beta1)
        exp_avg_sq = state["exp_avg_sq"].mul(beta2).addcmul(grad, grad, value=1.0 - beta2)
        step = float(state["step"] + 1)
        step_size = lr / (1.0 - beta1**step)
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(self.eps)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        return params.addcdiv(exp_avg, denom, value=-step_size), state


def is_constant_rate(optimizer: Optimizer) -> bool:
    """True when the optimizer's learning rate does not change with the step."""
    return isinstance(optimizer.lr, Constant)
