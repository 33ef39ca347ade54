"""Variance-reduced gradient estimators for finite sums: SVRG, SAGA and STORM.

Each is an :class:`~noisygrad.Estimator` with memory (a snapshot, a gradient table, the previous direction),
exposed through ``state_dict`` / ``load_state_dict`` so that :func:`~noisygrad.minimize` checkpoints and
resumes it exactly; each composes with any optimizer (``SGD``, ``Adam``, the Langevin samplers, ...).

The control variate of each needs the *same* mini-batch evaluated at two parameter points, which a
:class:`~noisygrad.FiniteSum` provides (``value_and_grad(params, indices)``). On a strongly convex finite sum
SVRG and SAGA converge *linearly at a constant step* (their variance vanishes at the optimum), where constant-step
SGD stalls in its noise ball. STORM's variance is damped by its momentum ``a`` but does not vanish: at a fixed
``a`` and step it keeps a floor, lower than SGD's.

Every ``estimate(params, generator)`` needs a ``torch.Generator``: ``None`` is refused (``TypeError``) before
anything is drawn or remembered, instead of falling back to torch's global generator, which other code advances
too (:func:`noisygrad.checks.check_torch_generator`).

Costs are counted in ``examples`` (per-example gradient evaluations): a snapshot costs ``N``, an SVRG or STORM
step ``2 b`` (``b`` for SVRG on a GLM, below), a SAGA step ``b``.

A generalised linear model (:class:`~noisygrad.GLM`, ``l(x_i . w, y_i) + (l2/2)|w|^2``) has per-example gradients
``l'(x_i . w, y_i) x_i + l2 w``: one number per example times its features. SVRG and SAGA detect it and remember
those numbers instead of gradients, and step without autograd: ``O(b d)`` work in about ten array operations, on
numpy views of the data when the data are on the CPU (:class:`~noisygrad.glm.GLMKernels`). SVRG's snapshot keeps
its ``N`` derivatives, so an inner step evaluates ``b`` examples instead of ``2 b``; its iterates are the generic
path's to rounding. SAGA's table holds ``N`` numbers instead of ``N x d``: the data term's derivatives, while the
penalty's gradient ``l2 w`` is added exactly (as scikit-learn's SAGA does), so the penalty adds no variance of its
own; the iterates are those of the generic SAGA on the unpenalised loss under ``SGD(lr, weight_decay=l2)`` (of the
generic SAGA on the same objective when ``l2 = 0``).

Under plain ``SGD`` (no momentum), with numba installed, a run of SVRG or SAGA on a GLM with its data on the CPU
can take whole stretches of steps in one compiled pass (:func:`noisygrad.loop_fused.minimize_fused`, the kernels
in :mod:`noisygrad.estimators.glm_epochs`): the same batches from the same generator, the same memory, costs and
checkpoints, iterates equal to rounding, at a few microseconds a step instead of 150-200. Each estimator runs its
own kernel on its own memory (``_compiled_steps``); everything else (STORM, other objectives, other optimizers,
data on a GPU) stays on the paths above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from noisygrad.checks import check_finite, check_in_range, check_positive_int, check_torch_generator
from noisygrad.estimators.base import Cost, Estimate
from noisygrad.glm import GLM, GLMKernels
from noisygrad.objectives import BatchingNotAllowedError, FiniteSum, Kind, require_kind

if TYPE_CHECKING:
    from noisygrad.estimators.glm_epochs import Stretch

__all__ = ["SAGA", "STORM", "SVRG"]

#: What a NaN/Inf in the parameters means: the run broke before this estimate (nothing is remembered of it).
_PARAMS_HINT = "the parameters were already NaN/Inf; the estimator's memory is left as it was"


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


def _glm_kernels(objective: FiniteSum) -> GLMKernels | None:
    """The closed-form kernels of a :class:`~noisygrad.GLM`, else ``None`` (the generic autograd path)."""
    return objective.kernels if isinstance(objective, GLM) else None


def _owned(name: str, value: object, shape: tuple[int, ...], glm: GLMKernels) -> torch.Tensor:
    """A copy of the state entry ``value`` on the data's device, after checking its shape and dtype."""
    if not isinstance(value, torch.Tensor) or value.shape != shape or value.dtype != glm.dtype:
        got = (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"state[{name!r}] must be a tensor of shape {shape} and dtype {glm.dtype}, got {got}")
    return value.detach().to(glm.device, copy=True)


class SVRG:
    """Stochastic variance-reduced gradient (Johnson and Zhang 2013).

    Every ``refresh`` calls it takes a snapshot ``x~`` with the full gradient ``mu = grad f(x~)``; in between it
    returns ``grad f_B(x) - grad f_B(x~) + mu`` on a fresh batch ``B`` (unbiased, with a variance that vanishes
    as ``x`` and ``x~`` approach the optimum).

    Args:
        objective: a :class:`~noisygrad.FiniteSum`.
        batch_size: ``b``, examples per inner step.
        refresh: calls between snapshots: ``"epoch"`` (the default, ``N // b``: about one pass of inner steps per
            snapshot), an integer > 0, or ``None`` for a *fixed* anchor taken at the first call or given as
            ``anchor`` -- the control variate of SGLD-CV (Baker et al. 2019), best with the anchor at the mode.
        anchor: an optional fixed anchor point (needs ``refresh=None``).

    With a :class:`~noisygrad.GLM` the snapshot also keeps each example's loss derivative (``N`` numbers,
    state key ``anchor_derivatives``), so an inner step evaluates ``b`` examples, not ``2 b``; the iterates are
    the generic path's to rounding.
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
        if isinstance(refresh, str):
            if refresh != "epoch":
                raise ValueError(
                    f"refresh must be 'epoch' (N // batch_size calls), an integer > 0 or None (a fixed anchor); "
                    f"got the unknown name {refresh!r}"
                )
            self.refresh: int | None = max(1, objective.n_examples // self.batch_size)
        elif refresh is None:
            self.refresh = None
        else:
            self.refresh = check_positive_int("refresh", refresh)
        if anchor is not None and self.refresh is not None:
            raise ValueError("anchor= fixes the snapshot: pass refresh=None with it")
        self._glm = _glm_kernels(objective)
        self._anchor: torch.Tensor | None = None
        self._anchor_grad: torch.Tensor | None = None
        self._anchor_derivatives: torch.Tensor | None = None  # GLM path: l'(x_i . anchor, y_i), shape (N,)
        self.calls = 0
        self._pending_cost = 0
        if anchor is not None:
            point = torch.as_tensor(anchor).detach().clone()
            check_finite("anchor", point)
            self._snapshot(point)
            self._pending_cost = objective.n_examples

    def _snapshot(self, point: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Anchor at ``point`` (owned): the full value and gradient there, and for a GLM each example's derivative."""
        if self._glm is None:
            value, grad = self.objective.value_and_grad(point)
            check_finite("gradient", grad)  # before the anchor changes: a refused call leaves the state as it was
        else:
            w = self._glm.params(point)
            value, derivatives, data_grad = self._glm.full(w)
            grad = check_finite("gradient", self._glm.tensor(data_grad + self._glm.l2 * w))
            self._anchor_derivatives = self._glm.tensor(derivatives)
        self._anchor, self._anchor_grad = point, grad
        return value, grad

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        check_torch_generator("generator", generator)  # refused on a snapshot call too (no draw there)
        check_finite("params", params, hint=_PARAMS_HINT)
        snapshot_due = self._anchor is None or (self.refresh is not None and self.calls % self.refresh == 0)
        if snapshot_due:
            value, grad = self._snapshot(params.detach().clone())
            estimate = Estimate(grad, value, Cost(examples=self._pending_cost + self.objective.n_examples))
        else:
            estimate = self._corrected(params, generator)
        # a refused call (NaN/Inf raised above) leaves the call count, the pending cost and the anchor as they were
        self._pending_cost = 0
        self.calls += 1
        return estimate

    def _corrected(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        """``grad f_B(x) - grad f_B(anchor) + grad f(anchor)`` on a fresh batch (the anchor is not changed)."""
        examples = self._pending_cost
        assert self._anchor is not None
        assert self._anchor_grad is not None
        idx = _batch(self.objective, self.batch_size, generator)
        if self._glm is not None:
            assert self._anchor_derivatives is not None
            glm, b = self._glm, self.batch_size
            w, rows = glm.params(params), glm.view(idx)
            value, Xb, derivatives = glm.batch(w, rows)
            # grad f_B(w) - grad f_B(anchor) + grad f(anchor); the penalty's part is l2 (w - anchor)
            correction = (derivatives - glm.view(self._anchor_derivatives)[rows]) @ Xb
            grad_glm = correction / b + glm.view(self._anchor_grad) + glm.l2 * (w - glm.view(self._anchor))
            return Estimate(glm.gradient(grad_glm), value, Cost(examples=examples + b))
        value, grad_here = self.objective.value_and_grad(params, idx)
        _, grad_anchor = self.objective.value_and_grad(self._anchor, idx)
        grad = grad_here - grad_anchor + self._anchor_grad
        return Estimate(check_finite("gradient", grad), value, Cost(examples=examples + 2 * self.batch_size))

    def _memory_empty(self) -> bool:
        """The next call takes the first snapshot or pays a pending one: it stays in the step-by-step path."""
        return self._anchor is None or self._pending_cost != 0

    def _compiled_steps(self, stretch: Stretch) -> tuple[int, npt.NDArray[np.int64], int]:
        """Steps on a GLM in one compiled pass (:mod:`noisygrad.loop_fused`), on this estimator's memory.

        Returns the steps committed, the examples each one evaluated, and how many of them drew a batch.
        """
        from noisygrad.estimators.glm_epochs import svrg_steps

        glm = self._glm
        assert glm is not None
        assert self._anchor is not None
        assert self._anchor_grad is not None
        assert self._anchor_derivatives is not None
        X, y = glm.contiguous()
        memory = (glm.view(self._anchor), glm.view(self._anchor_grad), glm.view(self._anchor_derivatives))
        snapshots = np.zeros(len(stretch.rates), dtype=np.bool_)
        done = svrg_steps(
            X, y, glm.loss == "logistic", glm.l2, self.batch_size, stretch.w, *memory, self.calls, self.refresh or 0,
            stretch.rates, stretch.weight_decay, stretch.words, stretch.counters, stretch.scratch, stretch.record,
            stretch.values, stretch.grad_norms, snapshots,
        )  # fmt: skip
        self.calls += done
        taken = snapshots[:done]
        return done, np.where(taken, glm.n_examples, self.batch_size).astype(np.int64), done - int(taken.sum())

    def _keys(self) -> set[str]:
        return {"anchor", "anchor_grad", "calls"} | ({"anchor_derivatives"} if self._glm is not None else set())

    def state_dict(self) -> dict[str, Any]:
        state = {"anchor": _optional(self._anchor), "anchor_grad": _optional(self._anchor_grad), "calls": self.calls}
        if self._glm is not None:
            state["anchor_derivatives"] = _optional(self._anchor_derivatives)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != self._keys():
            raise ValueError(f"SVRG state must have keys {', '.join(sorted(self._keys()))}; got {sorted(state)}")
        calls = check_positive_int("state['calls']", state["calls"], allow_zero=True)
        if self._glm is None:
            self._anchor, self._anchor_grad = _optional(state["anchor"]), _optional(state["anchor_grad"])
        elif state["anchor"] is None:
            self._anchor = self._anchor_grad = self._anchor_derivatives = None
        else:
            glm = self._glm
            d, n = glm.n_features, glm.n_examples
            self._anchor = _owned("anchor", state["anchor"], (d,), glm)
            self._anchor_grad = _owned("anchor_grad", state["anchor_grad"], (d,), glm)
            self._anchor_derivatives = _owned("anchor_derivatives", state["anchor_derivatives"], (n,), glm)
        self.calls = calls
        self._pending_cost = 0


class SAGA:
    """SAGA (Defazio, Bach and Lacoste-Julien 2014): a table of the last gradient seen for each example.

    ``g = mean_{i in B} (grad f_i(x) - phi_i) + mean_j phi_j``, then ``phi_i <- grad f_i(x)`` for ``i in B``.
    The table is filled with the per-example gradients at the first call (cost ``N``); it holds ``N x d``
    numbers (per-example gradients from ``torch.func.vmap``). Unbiased; the variance vanishes at the optimum.

    With a :class:`~noisygrad.GLM` the table holds one number per example, the loss derivative
    ``l'(x_i . phi_i, y_i)`` (state ``table`` of shape ``(N,)``, ``table_mean`` the data term's mean gradient
    ``X^T table / N``), and the penalty's gradient ``l2 x`` is added exactly instead of through the table: as
    scikit-learn's SAGA; the same iterates as the generic path on the unpenalised loss under
    ``SGD(lr, weight_decay=l2)``, and the generic path's own iterates when ``l2 = 0``.

    Args:
        objective: a :class:`~noisygrad.FiniteSum` whose loss works under ``torch.func.vmap``.
        batch_size: ``b``, distinct examples per step.
    """

    def __init__(self, objective: FiniteSum, batch_size: int) -> None:
        self.batch_size = _check_finite_sum("SAGA", objective, batch_size)
        self.objective = objective
        self._glm = _glm_kernels(objective)
        self._table: torch.Tensor | None = None
        self._table_mean: torch.Tensor | None = None

    def _estimate_glm(self, glm: GLMKernels, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        w, n, b = glm.params(params), glm.n_examples, self.batch_size
        examples = 0
        if self._table is None:
            _, derivatives, data_grad = glm.full(w)
            self._table, self._table_mean = glm.tensor(derivatives), glm.tensor(data_grad)
            examples += n
        assert self._table_mean is not None
        table, table_mean = glm.view(self._table), glm.view(self._table_mean)  # owned buffers, updated in place
        idx = glm.view(_batch(self.objective, b, generator))
        value, Xb, derivatives = glm.batch(w, idx)
        change = (derivatives - table[idx]) @ Xb
        grad = glm.gradient(change / b + table_mean + glm.l2 * w)  # checked before the table changes
        table[idx] = derivatives
        table_mean += change / n
        return Estimate(grad, value, Cost(examples=examples + b))

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        check_torch_generator("generator", generator)  # None is refused, not torch's global one
        check_finite("params", params, hint=_PARAMS_HINT)
        if self._glm is not None:
            return self._estimate_glm(self._glm, params, generator)
        n, flat = self.objective.n_examples, params.numel()
        examples = 0
        table, table_mean = self._table, self._table_mean
        if table is None:
            table = self.objective.per_example_grads(params, torch.arange(n)).reshape(n, flat).clone()
            table_mean = check_finite("gradient", table.mean(0))
            examples += n
        assert table_mean is not None
        idx = _batch(self.objective, self.batch_size, generator)
        values, fresh = self.objective.per_example_values_and_grads(params, idx)
        fresh = fresh.reshape(len(idx), flat)
        old = table[idx]
        grad = check_finite("gradient", ((fresh - old).mean(0) + table_mean).reshape(params.shape))
        # only now, with every new number finite, does the memory change
        table.index_copy_(0, idx, fresh)  # O(b d): the table is owned (cloned on creation and on load)
        self._table, self._table_mean = table, table_mean + (fresh - old).sum(0) / n
        value = float(values.mean())
        return Estimate(grad, value, Cost(examples=examples + len(idx)))

    def _memory_empty(self) -> bool:
        """The next call fills the table: it stays in the step-by-step path."""
        return self._table is None

    def _compiled_steps(self, stretch: Stretch) -> tuple[int, npt.NDArray[np.int64], int]:
        """Steps on a GLM in one compiled pass (:mod:`noisygrad.loop_fused`), on this estimator's table.

        Returns the steps committed, the examples each one evaluated, and how many of them drew a batch.
        """
        from noisygrad.estimators.glm_epochs import saga_steps

        glm = self._glm
        assert glm is not None
        assert self._table is not None
        assert self._table_mean is not None
        X, y = glm.contiguous()
        done = saga_steps(
            X, y, glm.loss == "logistic", glm.l2, self.batch_size, stretch.w, glm.view(self._table),
            glm.view(self._table_mean), stretch.rates, stretch.weight_decay, stretch.words, stretch.counters,
            stretch.scratch, stretch.record, stretch.values, stretch.grad_norms,
        )  # fmt: skip
        return done, np.full(done, self.batch_size, dtype=np.int64), done

    def state_dict(self) -> dict[str, Any]:
        return {"table": _optional(self._table), "table_mean": _optional(self._table_mean)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the table; refused (nothing changed) if it holds NaN/Inf or its mean is not ``table_mean``.

        Why the consistency check: SAGA's step uses ``table_mean`` as the mean of the table it keeps updating, so a
        ``table_mean`` that is not that mean (an edited or mixed-up state) biases every later step without a sign.
        It costs one pass over the table (``O(N d)``, a snapshot's price); the tolerance, ``100 sqrt(eps)`` of the
        dtype relative to the size of the terms summed, is far above the rounding that the running update of the
        mean accumulates over a long run.
        """
        if set(state) != {"table", "table_mean"}:
            raise ValueError(f"SAGA state must have keys table, table_mean; got {sorted(state)}")
        if (state["table"] is None) != (state["table_mean"] is None):
            raise ValueError("SAGA state must have both table and table_mean, or neither (an empty memory)")
        if state["table"] is None:
            self._table = self._table_mean = None
            return
        if self._glm is None:
            table, table_mean = _optional(state["table"]), _optional(state["table_mean"])
            assert table is not None
            assert table_mean is not None
            if table.ndim != 2 or table_mean.shape != table.shape[1:] or table.shape[0] != self.objective.n_examples:
                raise ValueError(
                    f"state['table'] must have shape (N={self.objective.n_examples}, d) and state['table_mean'] "
                    f"shape (d,); got {tuple(table.shape)} and {tuple(table_mean.shape)}"
                )
            expected, scale = table.mean(0), table.abs().mean(0)
        else:
            glm = self._glm
            table = _owned("table", state["table"], (glm.n_examples,), glm)
            table_mean = _owned("table_mean", state["table_mean"], (glm.n_features,), glm)
            X = self.objective.data[0]
            expected, scale = X.T @ table / glm.n_examples, X.abs().T @ table.abs() / glm.n_examples
        check_finite("state['table']", table, hint="the state comes from a run that had diverged")
        check_finite("state['table_mean']", table_mean, hint="the state comes from a run that had diverged")
        tolerance = 100.0 * float(torch.finfo(table.dtype).eps) ** 0.5 * (scale + float(scale.max()) * 1e-6 + 1e-300)
        gap = (table_mean - expected).abs()
        if bool((gap > tolerance).any()):
            raise ValueError(
                f"state['table_mean'] is not the mean of state['table'] (off by up to {float(gap.max()):.3g}): an "
                "inconsistent or edited SAGA state, which would bias every later step; resume from an intact one"
            )
        self._table, self._table_mean = table, table_mean


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
        check_torch_generator("generator", generator)  # None is refused, not torch's global one
        check_finite("params", params, hint=_PARAMS_HINT)
        idx = _batch(self.objective, self.batch_size, generator)
        value, grad = self.objective.value_and_grad(params, idx)
        examples = self.batch_size
        if self._direction is not None and self._previous is not None:
            _, grad_previous = self.objective.value_and_grad(self._previous, idx)
            grad = grad + (1.0 - self.momentum) * (self._direction - grad_previous)
            examples += self.batch_size
        check_finite("gradient", grad)  # before the memory changes
        self._previous, self._direction = params.detach().clone(), grad
        return Estimate(grad, value, Cost(examples=examples))

    def state_dict(self) -> dict[str, Any]:
        return {"previous": _optional(self._previous), "direction": _optional(self._direction)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"previous", "direction"}:
            raise ValueError(f"STORM state must have keys direction, previous; got {sorted(state)}")
        self._previous, self._direction = _optional(state["previous"]), _optional(state["direction"])
