"""L-BFGS for mini-batch gradients: curvature pairs from the same batch, a scale-aware skip test, a report.

Why plain L-BFGS fails on fresh batches: with independent batches, ``y = g_{B'}(x') - g_B(x) = A s + (xi' - xi)``
and the noise difference does not shrink with ``|s|``: a few to a third of the pairs have ``s^T y <= 0``
(measured), and the accepted ones estimate a curvature of about ``1 / lr``, noise rather than the Hessian.
``torch.optim.LBFGS`` with a closure that draws a new batch per call does exactly that (it only skips pairs with
``s^T y <= 1e-10``, an absolute threshold).

The remedy here (Schraudolph, Yu and Guenter 2007, oLBFGS; Berahas, Nocedal and Takac 2016, multi-batch):
each step evaluates the *same* batch at ``x`` and at ``x + s``, so ``y = g_B(x + s) - g_B(x)`` sees only the
batch's curvature (``s^T y >= 0`` on convex losses). Pairs with ``s^T y <= eps |s| |y|`` (a cosine test,
invariant to the scale of the loss and the parameters) are skipped and counted. The step is a fixed ``lr``
times the quasi-Newton direction (no line search: a line search on one noisy batch chases its noise);
preconditioning raises the noise floor in flat directions (by up to ``lambda_max(A^-1) / lambda_max`` versus
SGD), so pair it with growing batches or a decreasing ``lr``.

Usage with ``torch`` (and the PINN plugin): :class:`LBFGS` is a ``torch.optim.Optimizer``. Draw the batch
*before* ``step``; the closure must evaluate the same batch every time it is called within that step (it is
called twice: at ``x`` and at ``x + s``)::

    opt = noisygrad.LBFGS(model.parameters(), lr=0.5, history_size=10)
    for batch in loader:
        def closure():
            opt.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            return loss
        opt.step(closure)
    opt.report()  # {"pairs_accepted": ..., "pairs_skipped": ..., "resets": ...}

(``noisygrad.TorchOptimizer`` wraps the single-gradient rules; L-BFGS needs two gradients per step, so it is its
own ``torch.optim.Optimizer``.) For a :class:`~noisygrad.FiniteSum`, :func:`minimize_lbfgs` does the above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from noisygrad.checks import as_parameter_vector, check_finite, check_in_range, check_positive, check_positive_int
from noisygrad.estimators.base import Cost
from noisygrad.objectives import FiniteSum, Kind, require_kind

__all__ = ["LBFGS", "LBFGSResult", "minimize_lbfgs"]


def _two_loop(grad: torch.Tensor, s_list: list[torch.Tensor], y_list: list[torch.Tensor]) -> torch.Tensor:
    """``-H g`` by the L-BFGS two-loop recursion with ``H0 = (s^T y / y^T y) I`` from the newest pair."""
    q = grad.clone()
    alphas = []
    rhos = [1.0 / float(y @ s) for s, y in zip(s_list, y_list, strict=True)]
    for s, y, rho in zip(reversed(s_list), reversed(y_list), reversed(rhos), strict=True):
        alpha = rho * float(s @ q)
        q.add_(y, alpha=-alpha)
        alphas.append(alpha)
    gamma = float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
    r = q.mul(gamma)
    for s, y, rho, alpha in zip(s_list, y_list, rhos, reversed(alphas), strict=True):
        beta = rho * float(y @ r)
        r.add_(s, alpha=alpha - beta)
    return r.neg()


class LBFGS(torch.optim.Optimizer):
    """Noise-robust L-BFGS as a ``torch.optim.Optimizer`` (same-batch curvature pairs; see the module docs).

    Args:
        params: the parameters (one group).
        lr: the fixed step along the quasi-Newton direction, > 0. The first step (no curvature yet) is
            ``lr * min(1, 1 / |g|_1)`` along ``-g``, as in ``torch.optim.LBFGS``.
        history_size: the number of curvature pairs kept, >= 1.
        curvature_eps: a pair is kept only if ``s^T y > curvature_eps |s| |y|`` (in [0, 1)).
        damping: ``lambda >= 0`` added as ``y + lambda s`` (oLBFGS's regulariser; keeps ``H`` bounded).

    Each ``step(closure)`` calls the closure twice (two gradient evaluations on the caller's batch) and
    returns the loss at the starting point. :meth:`report` gives the accepted and skipped pair counts and the
    number of memory resets (a direction that was not a descent direction for the batch).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        *,
        history_size: int = 10,
        curvature_eps: float = 1e-8,
        damping: float = 0.0,
    ) -> None:
        defaults = {
            "lr": check_positive("lr", lr),
            "history_size": check_positive_int("history_size", history_size),
            "curvature_eps": check_in_range("curvature_eps", curvature_eps, 0.0, 1.0),
            "damping": check_positive("damping", damping, allow_zero=True),
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS supports a single parameter group (as torch.optim.LBFGS does)")
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]
        # like torch.optim.LBFGS, the whole memory lives in the state of the first parameter (state_dict works)
        self.state[self._params[0]].update({"s": [], "y": [], "accepted": 0, "skipped": 0, "resets": 0, "steps": 0})

    def _flat_grad(self) -> torch.Tensor:
        parts = [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype) for p in self._params
        ]
        return check_finite("gradient", torch.cat(parts))

    @torch.no_grad()
    def _add(self, step: torch.Tensor) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(step[offset : offset + n].view_as(p))
            offset += n

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step; ``closure`` re-evaluates the loss and gradients on this step's batch (required)."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that evaluates the loss and gradients on the current batch")
        group = self.param_groups[0]
        memory = self.state[self._params[0]]
        with torch.enable_grad():
            loss = closure()
        check_finite("loss", torch.as_tensor(loss).detach())
        grad = self._flat_grad()
        if memory["s"]:
            direction = _two_loop(grad, memory["s"], memory["y"])
            if not float(direction @ grad) < 0:  # not a descent direction for this batch: forget the curvature
                memory["s"], memory["y"] = [], []
                memory["resets"] += 1
        if not memory["s"]:
            direction = -grad * min(1.0, 1.0 / max(float(grad.abs().sum()), 1e-300))
        s = direction * group["lr"]
        check_finite("step", s)
        self._add(s)
        with torch.enable_grad():
            loss_new = closure()
        check_finite("loss", torch.as_tensor(loss_new).detach())
        y = self._flat_grad() - grad + group["damping"] * s
        if float(s @ y) > group["curvature_eps"] * float(s.norm() * y.norm()):
            memory["s"].append(s)
            memory["y"].append(y)
            if len(memory["s"]) > group["history_size"]:
                memory["s"].pop(0)
                memory["y"].pop(0)
            memory["accepted"] += 1
        else:
            memory["skipped"] += 1
        memory["steps"] += 1
        return loss

    def report(self) -> dict[str, int]:
        """Accepted and skipped curvature pairs, memory resets and steps so far."""
        memory = self.state[self._params[0]]
        return {k: int(memory[k]) for k in ("accepted", "skipped", "resets", "steps")}


@dataclass
class LBFGSResult:
    """The outcome of :func:`minimize_lbfgs`: final point, exact objective, cost and the pair report."""

    x: torch.Tensor
    fun: float
    nit: int
    cost: Cost
    pairs_accepted: int
    pairs_skipped: int
    resets: int
    history: list[float] = field(default_factory=list)

    @property
    def skipped_fraction(self) -> float:
        total = self.pairs_accepted + self.pairs_skipped
        return self.pairs_skipped / total if total else 0.0


def minimize_lbfgs(
    objective: FiniteSum,
    x0: Any,
    *,
    batch_size: int,
    steps: int,
    lr: float = 1.0,
    history_size: int = 10,
    curvature_eps: float = 1e-8,
    damping: float = 0.0,
    seed: int = 0,
    record_every: int = 0,
) -> LBFGSResult:
    """Noise-robust L-BFGS on a :class:`~noisygrad.FiniteSum` with a fresh uniform batch per step.

    Each step costs ``2 * batch_size`` examples (the batch at ``x`` and at ``x + s``). ``record_every > 0``
    records the exact objective every that many steps in ``history`` (not counted in the cost).
    """
    require_kind("minimize_lbfgs", objective, (Kind.FINITE_SUM,))
    b = check_positive_int("batch_size", batch_size)
    if b > objective.n_examples:
        raise ValueError(f"batch_size must be <= the number of examples ({objective.n_examples}), got {batch_size}")
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every, allow_zero=True)
    x = as_parameter_vector("x0", x0).requires_grad_(True)
    opt = LBFGS([x], lr, history_size=history_size, curvature_eps=curvature_eps, damping=damping)
    generator = torch.Generator().manual_seed(check_positive_int("seed", seed, allow_zero=True))
    history = []
    for t in range(steps):
        idx = torch.randperm(objective.n_examples, generator=generator)[:b]
        batch = objective.batch(idx)

        def closure(batch: tuple[torch.Tensor, ...] = batch) -> torch.Tensor:
            loss = objective.loss(x, *batch)
            (x.grad,) = torch.autograd.grad(loss, x)
            return loss

        opt.step(closure)
        if record_every and (t + 1) % record_every == 0:
            history.append(objective.value(x.detach()))
    report = opt.report()
    final = x.detach().clone()
    return LBFGSResult(
        final,
        objective.value(final),
        steps,
        Cost(examples=2 * b * steps),
        report["accepted"],
        report["skipped"],
        report["resets"],
        history,
    )
