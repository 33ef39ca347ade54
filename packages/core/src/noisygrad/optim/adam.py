"""Adam, AdamW and AMSGrad, following ``torch.optim.Adam``'s single-tensor kernel operation by operation."""

from __future__ import annotations

import torch

from noisygrad.checks import check_in_range, check_positive
from noisygrad.optim.base import Rule, State
from noisygrad.schedules import Schedule, as_schedule


class Adam(Rule):
    """Adam (Kingma and Ba 2015), or AdamW with ``decoupled_weight_decay=True``.

    ``torch.optim.Adam``'s arithmetic: ``m <- lerp(m, g, 1 - beta1)``, ``v <- beta2 v + (1 - beta2) g^2``,
    ``x <- x - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Args:
        lr: learning rate, a float >= 0 or a schedule.
        betas: the two moment decay rates, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: >= 0; an L2 term added to the gradient, or with ``decoupled_weight_decay`` a
            shrinkage ``x <- x (1 - lr weight_decay)`` before the step (AdamW).
        amsgrad: divide by the running maximum of ``v`` (Reddi et al. 2018), kept as ``max_exp_avg_sq``.
    """

    hyperparameters = ("betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")
    torch_twin = "Adam"

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        amsgrad: bool = False,
    ) -> None:
        self.lr = as_schedule("lr", lr)
        if isinstance(betas, str | bytes) or not hasattr(betas, "__len__"):
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2), got {type(betas).__name__} {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_in_range("betas[0]", betas[0], 0.0, 1.0), check_in_range("betas[1]", betas[1], 0.0, 1.0))
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        self.amsgrad = bool(amsgrad)

    def _init(self, params: torch.Tensor) -> State:
        zeros = torch.zeros_like(params, memory_format=torch.preserve_format)
        state = {"exp_avg": zeros, "exp_avg_sq": zeros.clone()}
        if self.amsgrad:
            state["max_exp_avg_sq"] = zeros.clone()
        return state

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
        if self.amsgrad:
            # a state from a run without amsgrad (a parameter group switched on) starts its maximum at v
            previous_max = state.get("max_exp_avg_sq", exp_avg_sq)
            state["max_exp_avg_sq"] = torch.maximum(previous_max, exp_avg_sq)
            denom = (state["max_exp_avg_sq"].sqrt() / bias_correction2_sqrt).add(self.eps)
        else:
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(self.eps)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        return params.addcdiv(exp_avg, denom, value=-step_size), state
