"""``TorchOptimizer``: any noisygrad optimizer as a ``torch.optim.Optimizer``.

It reads ``p.grad`` as left by ``backward()``, applies the noisygrad rule to each parameter tensor with its
own state (exactly as ``torch.optim`` keeps per-parameter state), and writes the result back in place.
``param_groups[i]["lr"]`` is the rate used at each step, so ``torch.optim.lr_scheduler`` works unchanged;
if the noisygrad optimizer carries its own schedule instead, the adapter writes that schedule's value into
``group["lr"]`` after each step (use one of the two, not both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from noisygrad.checks import check_finite, check_positive
from noisygrad.optim.base import Optimizer, Rule, is_constant_rate


class TorchOptimizer(torch.optim.Optimizer):
    """Wrap a noisygrad :class:`~noisygrad.Optimizer` for code that expects ``torch.optim``.

    Args:
        params: an iterable of tensors or of parameter-group dicts, as for any ``torch.optim`` optimizer.
        optimizer: the noisygrad update rule (``noisygrad.Adam(lr=1e-3)``, ...).

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = TorchOptimizer(model.parameters(), Adam(lr=1e-3))
        >>> loss = model(torch.randn(8, 3)).pow(2).mean()
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params: Iterable[Any], optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a noisygrad optimizer (with init/update/lr), got {type(optimizer).__name__}"
            )
        self.rule = optimizer
        super().__init__(params, {"lr": optimizer.lr(0), "schedule_step": 0})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step on the current ``p.grad``; ``closure`` (re-)computes the loss and gradients first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        follow_schedule = not is_constant_rate(self.rule)
        # Every check comes before any update, so a refused step changes no parameter and no state (checking
        # each tensor just before its update would leave a half-applied step). noisygrad's own rules then skip
        # the per-call checks of ``update``: shapes match by construction.
        rates = [self._checked_rate_and_gradients(group) for group in self.param_groups]
        advance = self.rule._advance if isinstance(self.rule, Rule) else None
        for group, lr in zip(self.param_groups, rates, strict=True):
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self.rule.init(p))
                if advance is not None:
                    new_p, new_state = advance(p.detach(), p.grad, state, lr)
                else:
                    new_p, new_state = self.rule.update(p, p.grad, dict(state), lr=lr)
                p.copy_(new_p)
                state.update(new_state)
            if follow_schedule:
                group["schedule_step"] += 1
                group["lr"] = self.rule.lr(group["schedule_step"])
        return loss

    @staticmethod
    def _checked_rate_and_gradients(group: dict[str, Any]) -> float:
        """The group's rate, after checking it and every parameter and gradient of the group (NaN/Inf raise)."""
        lr = check_positive("lr", group["lr"])
        for index, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("TorchOptimizer does not support sparse gradients")
            check_finite(f"parameter {index} of its group", p, hint="the parameters were already NaN/Inf")
            check_finite(f"gradient of parameter {index} of its group", p.grad)
        return lr

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as ``torch.optim`` does, but keep non-float state (generator states, counters) exact.

        ``torch.optim.Optimizer.load_state_dict`` casts every tensor in the state to its parameter's
        dtype; that would corrupt a ``torch.Generator`` state (uint8) kept by a stochastic rule.
        """
        super().load_state_dict(state_dict)
        saved = state_dict["state"]
        params = [p for group in self.param_groups for p in group["params"]]
        for index, entries in saved.items():
            live = self.state[params[int(index)]]
            for key, value in entries.items():
                if isinstance(value, torch.Tensor) and not value.is_floating_point():
                    live[key] = value.clone()
