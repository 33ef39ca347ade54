"""SGD with momentum, Nesterov and weight decay, following ``torch.optim.SGD``'s single-tensor kernel
operation by operation."""

from __future__ import annotations

import torch

from noisygrad.checks import check_in_range, check_positive
from noisygrad.optim.base import Rule, State
from noisygrad.schedules import Schedule, as_schedule


class SGD(Rule):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    ``torch.optim.SGD``'s rule: ``b <- momentum b + (1 - dampening) g`` (``b = g`` on the first step),
    then ``x <- x - lr (g + momentum b)`` with Nesterov or ``x <- x - lr b`` without.

    Args:
        lr: learning rate, a float >= 0 (0 leaves the parameters as they are, as in torch) or a schedule
            (:mod:`noisygrad.schedules`).
        momentum: in [0, 1).
        dampening: in [0, 1); must be 0 with Nesterov.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 penalty coefficient, >= 0, added to the gradient.
    """

    hyperparameters = ("momentum", "dampening", "weight_decay", "nesterov")
    torch_twin = "SGD"
    complex_as_real = False  # linear in the gradient: torch.optim.SGD steps complex tensors as they are

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
            previous = state.get("momentum_buffer")  # torch.optim.SGD keeps none without momentum
            if previous is None:  # torch.optim.SGD starts the buffer at the first gradient
                buf = torch.clone(grad)
            else:
                buf = previous.mul(self.momentum).add(grad, alpha=1.0 - self.dampening)
            state["momentum_buffer"] = buf
            grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
        return params.add(grad, alpha=-lr), state
