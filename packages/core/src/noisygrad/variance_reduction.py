"""Variance-reduced gradient estimators for finite sums: SVRG, SAGA and STORM.

Each is an :class:`~noisygrad.Estimator` with memory (a snapshot, a gradient table, the previous direction),
exposed through ``state_dict`` / ``load_state_dict`` so that :func:`~noisygrad.minimize` checkpoints and
resumes it exactly; each composes with any optimizer (``SGD``, ``Adam``, the Langevin samplers, ...).

The control variate of each needs the *same* mini-batch evaluated at two parameter points, which a
:class:`~noisygrad.FiniteSum` provides (``value_and_grad(params, indices)``). On a strongly convex finite sum
SVRG and SAGA converge *linearly at a constant step* (their variance vanishes at the optimum), where constant-step
SGD stalls in its noise ball. STORM's variance is damped by its momentum ``a`` but does not vanish: at a fixed
``a`` and step it keeps a floor, lower than SGD's.

Costs are counted in ``examples`` (per-example gradient evaluations): a snapshot costs ``N``, an SVRG or STORM
step ``2 b``, a SAGA step ``b``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._validation import check_finite, check_in_range, check_positive_int
from .estimators import Cost, Estimate
from .objectives import BatchingNotAllowedError, FiniteSum, Kind, require_kind

__all__ = ["SAGA", "STORM", "SVRG"]


def _check_finite_sum(name: str, objective: object, batch_size: int) -> int:
    if getattr(objective, "kind", None) is Kind.ENERGY:
        raise BatchingNotAllowedError(
            f"{name} needs a FiniteSum: an Energy is holistic, so its mini-batch gradients would be biased"
        )
    require_kind(name, objective, (Kind.FINITE_SUM,))
    assert isinstance(objective, FiniteSum)
    b = check_positive_int("batch_size", batch_size)
    if b > objective.n_examples:
        raise ValueError(f"batch_size must be <= the number of examples ({objective.n_examples}), got {batch_size}")
    return b


def _batch(objective: FiniteSum, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` distinct examples, uniformly (a uniform subset: an unbiased mean gradient)."""
    return torch.randperm(objective.n_examples, generator=generator)[:batch_size]


def _optional(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value.clone()


class SVRG:
    """Stochastic variance-reduced gradient (Johnson and Zhang 2013).

    Every ``refresh`` calls it takes a snapshot ``x~`` with the full gradient ``mu = grad f(x~)``; in between it
    returns ``grad f_B(x) - grad f_B(x~) + mu`` on a fresh batch ``B`` (unbiased, with a variance that vanishes
    as ``x`` and ``x~`` approach the optimum).

    Args:
        objective: a :class:`~noisygrad.FiniteSum`.
        batch_size: ``b``, examples per inner step.
        refresh: calls between snapshots (default ``N // b``: about one pass of inner steps per snapshot), or
            ``None`` for a *fixed* anchor taken at the first call or given as ``anchor`` -- the control variate
            of SGLD-CV (Baker et al. 2019), best with the anchor at the mode.
        anchor: an optional fixed anchor point (needs ``refresh=None``).
    """

    def __init__(
        self,
        objective: FiniteSum,
        batch_size: int,
        *,
        refresh: int | str | None = "epoch",
        anchor: torch.Tensor | None = None,
    ) -> None:
        self.batch_size = _check_finite_sum("SVRG", objective, batch_size)
        self.objective = objective
        if refresh == "epoch":
            self.refresh: int | None = max(1, objective.n_examples // self.batch_size)
        elif refresh is None:
            self.refresh = None
        else:
            self.refresh = check_positive_int("refresh", refresh)
        if anchor is not None and self.refresh is not None:
            raise ValueError("anchor= fixes the snapshot: pass refresh=None with it")
        self._anchor: torch.Tensor | None = None
        self._anchor_grad: torch.Tensor | None = None
        self.calls = 0
        if anchor is not None:
            point = torch.as_tensor(anchor).detach().clone()
            check_finite("anchor", point)
            self._anchor = point
            self._anchor_grad = objective.value_and_grad(point)[1]
            self._pending_cost = objective.n_examples
        else:
            self._pending_cost = 0

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        examples = self._pending_cost
        self._pending_cost = 0
        snapshot_due = self._anchor is None or (self.refresh is not None and self.calls % self.refresh == 0)
        self.calls += 1
        if snapshot_due:
            value, grad = self.objective.value_and_grad(params)
            self._anchor, self._anchor_grad = params.detach().clone(), grad
            return Estimate(check_finite("gradient", grad), value, Cost(examples=examples + self.objective.n_examples))
        assert self._anchor is not None
        assert self._anchor_grad is not None
        idx = _batch(self.objective, self.batch_size, generator)
        value, grad_here = self.objective.value_and_grad(params, idx)
        _, grad_anchor = self.objective.value_and_grad(self._anchor, idx)
        grad = grad_here - grad_anchor + self._anchor_grad
        return Estimate(check_finite("gradient", grad), value, Cost(examples=examples + 2 * self.batch_size))

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": _optional(self._anchor), "anchor_grad": _optional(self._anchor_grad), "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"anchor", "anchor_grad", "calls"}:
            raise ValueError(f"SVRG state must have keys anchor, anchor_grad, calls; got {sorted(state)}")
        self._anchor, self._anchor_grad = _optional(state["anchor"]), _optional(state["anchor_grad"])
        self.calls = check_positive_int("state['calls']", state["calls"], allow_zero=True)
        self._pending_cost = 0


class SAGA:
    """SAGA (Defazio, Bach and Lacoste-Julien 2014): a table of the last gradient seen for each example.

    ``g = mean_{i in B} (grad f_i(x) - phi_i) + mean_j phi_j``, then ``phi_i <- grad f_i(x)`` for ``i in B``.
    The table is filled with the per-example gradients at the first call (cost ``N``); it holds ``N x d``
    numbers (per-example gradients from ``torch.func.vmap``). Unbiased; the variance vanishes at the optimum.

    Args:
        objective: a :class:`~noisygrad.FiniteSum` whose loss works under ``torch.func.vmap``.
        batch_size: ``b``, distinct examples per step.
    """

    def __init__(self, objective: FiniteSum, batch_size: int) -> None:
        self.batch_size = _check_finite_sum("SAGA", objective, batch_size)
        self.objective = objective
        self._table: torch.Tensor | None = None
        self._table_mean: torch.Tensor | None = None

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        n, flat = self.objective.n_examples, params.numel()
        examples = 0
        if self._table is None:
            self._table = self.objective.per_example_grads(params, torch.arange(n)).reshape(n, flat).clone()
            self._table_mean = self._table.mean(0)
            examples += n
        assert self._table_mean is not None
        idx = _batch(self.objective, self.batch_size, generator)
        values, fresh = self.objective.per_example_values_and_grads(params, idx)
        fresh = fresh.reshape(len(idx), flat)
        old = self._table[idx]
        grad = (fresh - old).mean(0) + self._table_mean
        self._table.index_copy_(0, idx, fresh)  # O(b d): the table is owned (cloned on creation and on load)
        self._table_mean = self._table_mean + (fresh - old).sum(0) / n
        value = float(values.mean())
        return Estimate(check_finite("gradient", grad.reshape(params.shape)), value, Cost(examples=examples + len(idx)))

    def state_dict(self) -> dict[str, Any]:
        return {"table": _optional(self._table), "table_mean": _optional(self._table_mean)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"table", "table_mean"}:
            raise ValueError(f"SAGA state must have keys table, table_mean; got {sorted(state)}")
        self._table, self._table_mean = _optional(state["table"]), _optional(state["table_mean"])


class STORM:
    """STORM (Cutkosky and Orabona 2019): a recursive momentum estimate with a same-batch correction.

    ``d_t = grad f_B(x_t) + (1 - a)(d_{t-1} - grad f_B(x_{t-1}))`` with one fresh batch ``B`` evaluated at both
    the current and the previous point (``d_0 = grad f_B(x_0)``). No snapshots and no table. ``a = 1`` is
    plain mini-batch SGD's estimate; smaller ``a`` averages the noise over about ``1/a`` steps while the
    correction term cancels the drift of the past gradients. Biased (conditionally on the past), with a variance
    that shrinks with ``a``; the paper's adaptive ``a_t`` and step are not reproduced here.

    Args:
        objective: a :class:`~noisygrad.FiniteSum`.
        batch_size: ``b``, examples per step.
        momentum: ``a`` in (0, 1].
    """

    def __init__(self, objective: FiniteSum, batch_size: int, *, momentum: float = 0.1) -> None:
        self.batch_size = _check_finite_sum("STORM", objective, batch_size)
        self.objective = objective
        self.momentum = check_in_range("momentum", momentum, 0.0, 1.0, low_open=True, high_open=False)
        self._previous: torch.Tensor | None = None
        self._direction: torch.Tensor | None = None

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        idx = _batch(self.objective, self.batch_size, generator)
        value, grad = self.objective.value_and_grad(params, idx)
        examples = self.batch_size
        if self._direction is not None and self._previous is not None:
            _, grad_previous = self.objective.value_and_grad(self._previous, idx)
            grad = grad + (1.0 - self.momentum) * (self._direction - grad_previous)
            examples += self.batch_size
        self._previous, self._direction = params.detach().clone(), grad
        return Estimate(check_finite("gradient", grad), value, Cost(examples=examples))

    def state_dict(self) -> dict[str, Any]:
        return {"previous": _optional(self._previous), "direction": _optional(self._direction)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"previous", "direction"}:
            raise ValueError(f"STORM state must have keys direction, previous; got {sorted(state)}")
        self._previous, self._direction = _optional(state["previous"]), _optional(state["direction"])
