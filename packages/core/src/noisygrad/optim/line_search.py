"""Armijo backtracking on mini-batch losses: the stochastic line search of Vaswani et al. (2019).

Along the negative mini-batch gradient ``-g_B(x)`` the step ``eta`` is accepted when the *same* batch's loss
decreases enough (the Armijo, or sufficient-decrease, condition)::

    f_B(x - eta g_B) <= f_B(x) - c eta |g_B|^2,

and otherwise shrunk, ``eta <- beta eta``, and tried again. On an L-smooth batch loss every
``eta <= 2 (1 - c) / L`` passes (on a quadratic the condition is exactly ``eta <= 2 (1 - c) |g|^2 / g^T H g``),
so the accepted step is within a factor ``beta`` of that bound and no step size has to be tuned.

When it works, and when it does not. Vaswani, Mishkin, Laradji, Schmidt, Gidel and Lacoste-Julien, "Painless
stochastic gradient: interpolation, line-search, and convergence rates" (NeurIPS 2019) prove that with
*interpolation* (every example's loss is minimised at a common point, so every batch gradient vanishes at the
optimum) the stochastic Armijo step converges at the rates of deterministic gradient descent with a step of order
``1 / L_max``: linearly on strongly convex losses, with no step size to tune. Without interpolation the batch
gradients do not vanish at the optimum; the accepted step stays of order ``1 / L_B`` and the iterates hover in a
noise ball of that step's size, never reaching the optimum (a decreasing ``max_step`` schedule or averaging is then
needed). In evaluations the search is not free: each trial costs a batch loss. The experiment ``core.line-search``
measures all three: it beats the best fixed step when the examples are unequally smooth (it fits each batch's own
curvature), loses to it when they are alike, and stalls at its exact noise floor without interpolation.

The shape of the API. A line search needs the batch's loss at trial points, which
:func:`noisygrad.minimize`'s ``Optimizer.update(params, grad, state)`` never sees, so it is not a
:class:`~noisygrad.optim.base.Rule`. The pieces are:

* :func:`armijo_step` -- one backtracking search along ``-grad`` for any ``fn(points) -> values``; it searches
  many independent chains at once (``params`` of shape ``(R, d)``, one search per row, each row's evaluations
  counted on its own), so an experiment runs many replicates as the rows of one tensor.
* :class:`StochasticArmijo` -- the rule across steps: the trial step each iteration (``reset="max"``: always
  ``max_step``; ``reset="grow"``: Vaswani et al.'s heuristic, the last accepted step times
  ``growth ** (b / N)``, capped at ``max_step``), with a serialisable state (``torch.save`` round-trips it).
* :func:`minimize_armijo` -- the loop on a :class:`~noisygrad.FiniteSum` with a :class:`~noisygrad.MiniBatch`
  (or :class:`~noisygrad.FullBatch`) estimator: the estimator draws each step's batch (its
  ``sample_indices``, the same draw as its ``estimate``), and the line search re-evaluates that batch.

The cost model. A batch of ``b`` examples costs ``b`` example-gradients at ``x`` and ``b`` example-losses at
each trial point. :func:`minimize_armijo` counts both in ``Cost.examples`` (a loss counted as much as a
gradient: an upper bound, since a forward pass costs about a third of a forward and backward pass) and reports
the gradient and function evaluations apart, so another cost model can be applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from noisygrad.checks import (
    as_array,
    as_parameter_vector,
    check_finite,
    check_in_range,
    check_positive,
    check_positive_int,
    check_same_shape,
)
from noisygrad.estimators.base import Cost
from noisygrad.estimators.batch import FullBatch, MiniBatch
from noisygrad.objectives import FiniteSum, Kind, require_kind

__all__ = [
    "ArmijoResult",
    "ArmijoStep",
    "StochasticArmijo",
    "armijo_step",
    "least_squares_armijo_steps",
    "minimize_armijo",
]

Reset = Literal["max", "grow"]
_RESETS = ("max", "grow")


@dataclass(frozen=True)
class ArmijoStep:
    """The outcome of one :func:`armijo_step` (per row for ``R`` chains: every field has a leading ``R``).

    Attributes:
        params: the accepted point ``x - step * grad`` (``x`` itself where the search failed).
        value: ``fn`` at the accepted point (the starting ``value`` where the search failed).
        step: the accepted step (0 where the search failed).
        backtracks: how many times the step was shrunk (``max_backtracks`` where it failed).
        evaluations: how many times ``fn`` was evaluated for this row (``backtracks + 1``).
        satisfied: whether the Armijo condition held at the accepted step.
    """

    params: torch.Tensor
    value: torch.Tensor
    step: torch.Tensor
    backtracks: torch.Tensor
    evaluations: torch.Tensor
    satisfied: torch.Tensor


def _per_row(name: str, value: float | torch.Tensor, rows: int, dtype: torch.dtype, *, positive: bool) -> torch.Tensor:
    """``value`` (a number, or a tensor of shape ``()`` or ``(rows,)``) as a tensor of shape ``(rows,)``."""
    if isinstance(value, torch.Tensor):
        if value.shape not in ((), (rows,)):
            raise ValueError(f"{name} must be a number or have shape ({rows},) (one per row), got {tuple(value.shape)}")
        out = value.detach().to(dtype).expand(rows).clone()
    else:
        out = torch.full((rows,), check_positive(name, value) if positive else _real(name, value), dtype=dtype)
    check_finite(name, out, hint=f"pass finite numbers as {name}")
    if positive and not bool((out > 0).all()):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return out


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(value).__name__}")
    return float(value)


def armijo_step(
    fn: Callable[[torch.Tensor], torch.Tensor | float],
    params: torch.Tensor,
    grad: torch.Tensor,
    value: float | torch.Tensor,
    initial_step: float | torch.Tensor,
    *,
    c: float = 0.1,
    beta: float = 0.9,
    max_backtracks: int = 100,
) -> ArmijoStep:
    """Backtrack from ``initial_step`` along ``-grad`` until ``fn(x - eta grad) <= value - c eta |grad|^2``.

    Args:
        fn: the loss at trial points: ``fn(points)`` with ``points`` shaped like ``params`` returns one value
            per row (shape ``()`` for a 1-D ``params``, ``(R,)`` for ``(R, d)``). For a stochastic line search it
            is the *same* batch's loss that gave ``grad`` and ``value``. A NaN or Inf trial value (an overflow
            at a too-long step) fails the test, so the step is shrunk.
        params: the current point, shape ``(d,)``, or ``(R, d)`` for ``R`` independent searches.
        grad: the gradient of ``fn`` at ``params`` (same shape); the search direction is ``-grad``.
        value: ``fn(params)``, a number or one per row.
        initial_step: the first trial step (> 0), a number or one per row.
        c: the sufficient-decrease constant, in (0, 1) (Vaswani et al. use 0.1; their theory 1/2).
        beta: the shrink factor per backtrack, in (0, 1).
        max_backtracks: the most shrinks per search (>= 0). A row still failing after them does not move
            (``step = 0``, ``satisfied = False``): on a smooth ``fn`` that needs ``initial_step beta^k`` below
            ``2 (1 - c) / L`` for every ``k <= max_backtracks``, i.e. too few backtracks, or a loss at its rounding
            floor (near ``1e-30`` on a least-squares loss that reaches 0), where the decrease asked for is below the
            rounding error: a caller that runs that far should stop on a target first.

    Returns:
        An :class:`ArmijoStep`; its tensors have shape ``()`` for a 1-D ``params`` and ``(R,)`` otherwise.
        ``fn`` is called on all rows each round (rows already accepted keep their point); each row's
        ``evaluations`` counts only the rounds in which it was still searching, what a search of that row alone
        would spend.

    Raises:
        ValueError: on a bad ``c``, ``beta``, ``max_backtracks``, ``initial_step``, mismatched shapes, or an
            ``fn`` that does not return one value per row.
        NonFiniteGradientError: if ``params``, ``grad`` or ``value`` hold NaN or Inf.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(points) -> values, got {type(fn).__name__}")
    c = check_in_range("c", c, 0.0, 1.0, low_open=True)
    beta = check_in_range("beta", beta, 0.0, 1.0, low_open=True)
    max_backtracks = check_positive_int("max_backtracks", max_backtracks, allow_zero=True)
    if not isinstance(params, torch.Tensor) or params.ndim not in (1, 2) or params.numel() == 0:
        raise ValueError(
            f"params must be a non-empty tensor of shape (d,) or (R, d), got {getattr(params, 'shape', params)}"
        )
    if not isinstance(grad, torch.Tensor):
        raise TypeError(f"grad must be a tensor, got {type(grad).__name__}")
    check_same_shape("grad", grad, params, "params")
    single = params.ndim == 1
    x = params.detach().reshape(1, -1) if single else params.detach()
    g = grad.detach().reshape(1, -1) if single else grad.detach()
    check_finite("params", x, hint="the search starts from a non-finite point")
    check_finite("grad", g)
    rows, dtype = x.shape[0], x.dtype
    f0 = _per_row("value", value, rows, dtype, positive=False)
    step = _per_row("initial_step", initial_step, rows, dtype, positive=True)
    slope = c * (g * g).sum(dim=1)  # the decrease asked per unit step

    accepted_f, accepted_step = f0, torch.zeros(rows, dtype=dtype)
    accepted_round = torch.full((rows,), max_backtracks, dtype=torch.int64)
    searching = torch.ones(rows, dtype=torch.bool)
    for k in range(max_backtracks + 1):
        out = torch.as_tensor(fn((x - step[:, None] * g).reshape(params.shape)), dtype=dtype)
        if out.shape != (() if single else (rows,)):
            want = "()" if single else f"({rows},)"
            raise ValueError(f"fn must return one value per row, shape {want}; got {tuple(out.shape)}")
        f_trial = out.reshape(rows)
        ok = searching & (f_trial <= f0 - step * slope)  # NaN compares False: the step shrinks
        accepted_f = torch.where(ok, f_trial, accepted_f)
        accepted_step = torch.where(ok, step, accepted_step)
        accepted_round = torch.where(ok, k, accepted_round)
        searching = searching & ~ok
        if not bool(searching.any()):
            break
        step = torch.where(searching, step * beta, step)
    accepted_x = x - accepted_step[:, None] * g  # the accepted trial point, bit for bit (0 where none passed)
    evaluations = accepted_round + 1
    satisfied = ~searching
    backtracks = accepted_round

    def shaped(t: torch.Tensor) -> torch.Tensor:
        return t[0] if single else t

    return ArmijoStep(
        accepted_x.reshape(params.shape),
        shaped(accepted_f),
        shaped(accepted_step),
        shaped(backtracks),
        shaped(evaluations),
        shaped(satisfied),
    )


class StochasticArmijo:
    """The stochastic Armijo line search across steps (Vaswani et al. 2019, their SLS with Armijo's condition).

    Each step searches from a trial step set by ``reset`` and remembers the accepted one:

    * ``"max"`` -- always start from ``max_step`` (the textbook backtracking; costs ``log(max_step L) /
      log(1/beta)`` extra evaluations per step);
    * ``"grow"`` -- Vaswani et al.'s reset: the last accepted step times ``growth ** batch_fraction`` (``b / N``,
      so the step can grow by ``growth`` per epoch), capped at ``max_step``; the first step starts at
      ``max_step``. After a failed search the next starts from the last (smallest) step tried.

    Args:
        max_step: the largest trial step, > 0 (their ``eta_max``, 10 by default).
        c: the sufficient-decrease constant, in (0, 1) (theirs: 0.1).
        beta: the shrink factor, in (0, 1) (theirs: 0.9).
        reset: ``"max"`` or ``"grow"``.
        growth: the growth per epoch of the ``"grow"`` reset, >= 1 (theirs: 2).
        max_backtracks: the most shrinks per search, >= 0.

    The state is ``{"step": int, "step_size": tensor}``: the steps taken and the last accepted step (one per row
    for ``R`` chains), which ``torch.save`` / ``torch.load(weights_only=True)`` round-trip exactly. Its step is
    :meth:`search`, not an ``Optimizer``'s ``update``: it needs the batch's loss, which ``update`` is never given.
    """

    def __init__(
        self,
        max_step: float = 10.0,
        *,
        c: float = 0.1,
        beta: float = 0.9,
        reset: Reset = "grow",
        growth: float = 2.0,
        max_backtracks: int = 100,
    ) -> None:
        self.max_step = check_positive("max_step", max_step)
        self.c = check_in_range("c", c, 0.0, 1.0, low_open=True)
        self.beta = check_in_range("beta", beta, 0.0, 1.0, low_open=True)
        if reset not in _RESETS:
            raise ValueError(f"reset must be one of {', '.join(repr(r) for r in _RESETS)}; got {reset!r}")
        self.reset: Reset = reset
        self.growth = check_positive("growth", growth)
        if self.growth < 1.0:
            raise ValueError(f"growth must be >= 1, got {growth!r}")
        self.max_backtracks = check_positive_int("max_backtracks", max_backtracks, allow_zero=True)

    def init(self, params: torch.Tensor) -> dict[str, Any]:
        """The state before the first step: one remembered step per row of ``params`` (``(d,)`` or ``(R, d)``)."""
        if not isinstance(params, torch.Tensor) or params.ndim not in (1, 2):
            raise ValueError(f"params must be a tensor of shape (d,) or (R, d), got {getattr(params, 'shape', params)}")
        shape = () if params.ndim == 1 else (params.shape[0],)
        return {"step": 0, "step_size": torch.full(shape, self.max_step, dtype=params.dtype)}

    def initial_step(self, state: dict[str, Any], batch_fraction: float) -> torch.Tensor:
        """This step's first trial step: ``max_step``, or the ``"grow"`` reset of the remembered step."""
        fraction = check_in_range("batch_fraction", batch_fraction, 0.0, 1.0, low_open=True, high_open=False)
        last = state["step_size"]
        if self.reset == "max" or int(state["step"]) == 0:
            return torch.full_like(last, self.max_step)
        return torch.clamp(last * self.growth**fraction, max=self.max_step)

    def search(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor | float],
        params: torch.Tensor,
        grad: torch.Tensor,
        value: float | torch.Tensor,
        state: dict[str, Any],
        *,
        batch_fraction: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, Any], ArmijoStep]:
        """One step: search along ``-grad`` on ``fn`` (the batch's loss) from :meth:`initial_step`.

        Returns the new point, the new state (the given one is not changed) and the search's
        :class:`ArmijoStep`. ``batch_fraction`` is ``b / N``, used by the ``"grow"`` reset.
        """
        start = self.initial_step(state, batch_fraction)
        result = armijo_step(
            fn, params, grad, value, start, c=self.c, beta=self.beta, max_backtracks=self.max_backtracks
        )
        smallest = start * self.beta**self.max_backtracks
        remembered = torch.where(result.satisfied, result.step, smallest)
        return result.params, {"step": int(state["step"]) + 1, "step_size": remembered}, result

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


@dataclass
class ArmijoResult:
    """The outcome of :func:`minimize_armijo`.

    Attributes:
        x: the final point.
        fun: the exact objective at ``x`` (a report: not in ``cost``).
        nit: steps taken.
        cost: examples spent: ``b`` per gradient plus ``b`` per trial-point loss (see the module's cost model).
        gradient_evaluations: batch gradients computed (one per step).
        function_evaluations: batch losses computed at trial points (``nit + backtracks``).
        backtracks: the shrinks over the run.
        failures: steps whose search ran out of backtracks (the point did not move).
        step_sizes: the accepted step of every step.
        history: the exact objective every ``record_every`` steps (not in ``cost``).
        state: the line search's final state.
    """

    x: torch.Tensor
    fun: float
    nit: int
    cost: Cost
    gradient_evaluations: int
    function_evaluations: int
    backtracks: int
    failures: int
    step_sizes: list[float] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict, repr=False)


def minimize_armijo(
    estimator: MiniBatch | FullBatch,
    x0: Any,
    *,
    steps: int,
    line_search: StochasticArmijo | None = None,
    seed: int = 0,
    record_every: int = 0,
) -> ArmijoResult:
    """Stochastic gradient descent with the stochastic Armijo step on a :class:`~noisygrad.FiniteSum`.

    Each step the estimator draws a batch (``MiniBatch.sample_indices``, the draw its ``estimate`` makes; a
    ``FullBatch`` takes every example, which gives deterministic Armijo gradient descent), the batch's loss and
    gradient are taken at ``x``, and ``line_search`` searches along ``-g_B`` on that same batch's loss.

    Args:
        estimator: a :class:`~noisygrad.MiniBatch` or :class:`~noisygrad.FullBatch` over a ``FiniteSum``.
        x0: the starting point, a 1-D array (copied).
        steps: how many steps (> 0).
        line_search: the rule (default ``StochasticArmijo()``: Vaswani et al.'s constants and reset).
        seed: seeds the ``torch.Generator`` that draws the batches.
        record_every: record the exact objective every that many steps in ``history`` (0: never).
    """
    if not isinstance(estimator, (MiniBatch, FullBatch)):
        raise TypeError(f"estimator must be a MiniBatch or FullBatch, got {type(estimator).__name__}")
    objective = estimator.objective
    require_kind("minimize_armijo", objective, (Kind.FINITE_SUM,))
    assert isinstance(objective, FiniteSum)
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every, allow_zero=True)
    rule = StochasticArmijo() if line_search is None else line_search
    if not isinstance(rule, StochasticArmijo):
        raise TypeError(f"line_search must be a StochasticArmijo, got {type(rule).__name__}")
    n = objective.n_examples
    b = estimator.batch_size if isinstance(estimator, MiniBatch) else n
    generator = torch.Generator().manual_seed(check_positive_int("seed", seed, allow_zero=True))
    x = as_parameter_vector("x0", x0)
    state = rule.init(x)
    function_evals = backtracks = failures = 0
    step_sizes: list[float] = []
    history: list[float] = []
    for t in range(steps):
        idx = estimator.sample_indices(generator) if isinstance(estimator, MiniBatch) else None
        value, grad = objective.value_and_grad(x, idx)
        check_finite("gradient", grad)

        def batch_loss(points: torch.Tensor, idx: torch.Tensor | None = idx) -> float:
            return objective.value(points, idx)

        x, state, search = rule.search(batch_loss, x, grad, value, state, batch_fraction=min(b / n, 1.0))
        function_evals += int(search.evaluations)
        backtracks += int(search.backtracks)
        failures += int(not bool(search.satisfied))
        step_sizes.append(float(search.step))
        if record_every and (t + 1) % record_every == 0:
            history.append(objective.value(x))
    return ArmijoResult(
        x,
        objective.value(x),
        steps,
        Cost(examples=b * (steps + function_evals)),
        steps,
        function_evals,
        backtracks,
        failures,
        step_sizes,
        history,
        state,
    )


def least_squares_armijo_steps(
    features: Any, *, max_step: float = 10.0, c: float = 0.1, beta: float = 0.9, max_backtracks: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """The step the Armijo search accepts on each example of a least-squares loss, searching from ``max_step``.

    On one example, ``f_i(w) = (x_i^T w - y_i)^2 / 2``, the gradient is ``r x_i`` (``r`` the residual) and
    ``f_i(w - eta r x_i) = f_i(w) (1 - eta L_i)^2`` with ``L_i = |x_i|^2``, so the Armijo condition reads
    ``(1 - eta L_i)^2 <= 1 - 2 c eta L_i``, i.e. ``eta L_i <= 2 (1 - c)``: it does not depend on ``w`` (for
    ``r != 0``). With batches of one example and the ``"max"`` reset, :class:`StochasticArmijo` is therefore SGD
    with a fixed step per example, ``eta_i = max_step beta^k_i``, ``k_i`` the fewest shrinks that pass: a relaxed
    randomized Kaczmarz method (relaxation ``eta_i L_i`` in ``(2 (1 - c) beta, 2 (1 - c)]``; Strohmer and Vershynin
    2009; Needell, Srebro and Ward 2016), whose mean-square behaviour the least-squares closed forms give exactly.

    Args:
        features: ``X``, shape ``(N, d)``.
        max_step, c, beta, max_backtracks: the search's constants (see :func:`armijo_step`).

    Returns:
        ``(steps, backtracks)``, each of shape ``(N,)``: the accepted ``eta_i`` and the shrinks ``k_i`` (a search
        costs ``k_i + 1`` loss evaluations). An example with ``x_i = 0`` accepts ``max_step`` at once; one that
        still fails after ``max_backtracks`` gets step 0, as :func:`armijo_step` leaves it in place.
    """
    x = as_array("features", features, np.float64, ndim=(2,))
    max_step = check_positive("max_step", max_step)
    c = check_in_range("c", c, 0.0, 1.0, low_open=True)
    beta = check_in_range("beta", beta, 0.0, 1.0, low_open=True)
    max_backtracks = check_positive_int("max_backtracks", max_backtracks, allow_zero=True)
    smoothness = (x * x).sum(axis=1)
    steps = np.zeros(x.shape[0])
    backtracks = np.full(x.shape[0], max_backtracks, dtype=np.int64)
    searching = np.ones(x.shape[0], dtype=bool)
    step = max_step
    for k in range(max_backtracks + 1):  # the same products as armijo_step: max_step * beta * beta * ...
        ok = searching & (step * smoothness <= 2.0 * (1.0 - c))
        steps[ok], backtracks[ok] = step, k
        searching &= ~ok
        step *= beta
    return steps, backtracks
