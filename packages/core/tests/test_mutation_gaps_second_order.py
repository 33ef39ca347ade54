"""Exact tests that close the mutation-testing gaps of ``optim/line_search.py``, ``optim/quasi_newton.py`` and
``optim/natural_gradient.py`` (issue 18).

Every check here is exact or to rounding (float64): the Armijo test at its boundary (a trial value equal to the
bound is accepted), the documented defaults, the ``"grow"`` reset and the whole ``minimize_armijo`` loop against a
plain re-implementation drawing the same batches; the inverse-Hessian updates against the textbook product form
``(I - rho s y^T) H (I - rho y s^T) + rho s s^T`` and the scalings written out from the paper's equations; the
first BFGS iterations against a dense reference driving torch's own strong-Wolfe search; the damped Gauss-Newton
step and Nielsen's damping rule step by step (and the loss ``step`` returns, in the parameters' dtype: it was
torch's default float32 before). Comparisons with a reference computed along another rounding path (a dense ``H``,
the product form, ``torch.linalg.solve``) use relative tolerances of 1e-8 to 1e-13, rounding allowances only; the
rest is exact. No statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import noisygrad as ng
from noisygrad.checks import NonFiniteGradientError
from noisygrad.optim.line_search import (
    ArmijoResult,
    StochasticArmijo,
    armijo_step,
    least_squares_armijo_steps,
    minimize_armijo,
)

F64 = torch.float64

# ------------------------------------------------------------------------------------------------ line_search

A2 = torch.diag(torch.tensor([1.0, 10.0], dtype=F64))


def _quad(x: torch.Tensor) -> torch.Tensor:
    """``x^T A x / 2`` per row (or of one point), ``A = diag(1, 10)``."""
    return 0.5 * ((x @ A2) * x).sum(dim=-1)


def test_a_trial_value_equal_to_the_armijo_bound_is_accepted() -> None:
    # f0 = 1, g = (1,), c = 0.5, step 1: the bound is f0 - c * step * |g|^2 = 0.5 exactly; fn returns 0.5
    x0 = torch.tensor([2.0], dtype=F64)
    result = armijo_step(lambda p: torch.tensor(0.5, dtype=F64), x0, torch.tensor([1.0], dtype=F64), 1.0, 1.0, c=0.5)
    assert (int(result.backtracks), int(result.evaluations), float(result.step)) == (0, 1, 1.0)
    assert bool(result.satisfied)
    assert float(result.value) == 0.5
    assert result.params.tolist() == [1.0]
    # a value just above the bound is refused at step 1 and accepted at 0.9 (0.5 + 1e-9 <= 1 - 0.45)
    above = armijo_step(
        lambda p: torch.tensor(0.5 + 1e-9, dtype=F64), x0, torch.tensor([1.0], dtype=F64), 1.0, 1.0, c=0.5
    )
    assert (int(above.backtracks), float(above.step)) == (1, 0.9)
    # losses may be negative (and zero): -3 <= -1 - 0.1 * 1 * 1 is accepted at once
    below = armijo_step(lambda p: torch.tensor(-3.0, dtype=F64), x0, torch.tensor([1.0], dtype=F64), -1.0, 1.0)
    assert (int(below.backtracks), float(below.value)) == (0, -3.0)
    zero = armijo_step(lambda p: torch.tensor(-0.5, dtype=F64), x0, torch.tensor([1.0], dtype=F64), 0, 1.0)
    assert (int(zero.backtracks), float(zero.value)) == (0, -0.5)


def test_fn_may_return_a_python_float_and_the_outcome_is_frozen() -> None:
    # fn returns a float (documented): taken in the parameters' dtype, so 0.1 stays the float64 0.1
    x0 = torch.tensor([2.0], dtype=F64)
    result = armijo_step(lambda p: 0.1, x0, torch.tensor([1.0], dtype=F64), 1.0, 1.0)
    assert result.value.dtype == F64
    assert float(result.value) == 0.1
    assert (int(result.backtracks), float(result.step)) == (0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.step = torch.tensor(2.0)  # type: ignore[misc]


def test_armijo_step_defaults_are_c_0_1_beta_0_9_and_100_backtracks() -> None:
    # from (1, 1) on diag(1, 10): accepted iff eta <= 1.8 * 101 / 1001 = 0.18162; from 1 with beta = 0.9 the first
    # step below it is 0.9^17 = 0.16677 (0.9^16 = 0.18530 is above): 17 shrinks. c = 1.1 or beta = 1.9 are refused.
    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    g = A2 @ x0
    result = armijo_step(_quad, x0, g, float(_quad(x0)), 1.0)
    assert int(result.backtracks) == 17
    expected = 1.0
    for _ in range(17):
        expected *= 0.9
    assert float(result.step) == expected
    # with c = 0.1 the bound is 0.1816 > 0.9^17; with c = 0.5 it is 0.1009, so c matters: 0.9^22 = 0.0985
    assert int(armijo_step(_quad, x0, g, float(_quad(x0)), 1.0, c=0.5).backtracks) == 22
    # the default max_backtracks: a loss that never decreases costs 101 evaluations, 100 shrinks, then step 0
    never = armijo_step(lambda p: torch.tensor(math.inf, dtype=F64), x0, g, 5.5, 1.0)
    assert (int(never.backtracks), int(never.evaluations), float(never.step)) == (100, 101, 0.0)
    assert not bool(never.satisfied)


def test_armijo_step_keeps_float64_values_and_shapes() -> None:
    # a failed search returns the given value itself, in the parameters' dtype (0.1 is not a float32 number)
    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    out = armijo_step(lambda p: torch.tensor(math.nan, dtype=F64), x0, A2 @ x0, 0.1, 1.0, max_backtracks=0)
    assert out.value.dtype == F64
    assert float(out.value) == 0.1
    assert out.step.dtype == F64
    assert out.step.shape == ()
    assert out.backtracks.dtype == torch.int64
    assert int(out.backtracks) == 0
    assert out.satisfied.dtype == torch.bool
    assert out.satisfied.shape == ()
    assert (int(out.evaluations), float(out.step)) == (1, 0.0)
    assert torch.equal(out.params, x0)
    # rows: value and initial_step given as tensors of shape () and (R,), ints and floats as numbers
    x = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=F64)
    g = x @ A2
    a = armijo_step(_quad, x, g, _quad(x), torch.tensor(1.0, dtype=F64), beta=0.5)
    b = armijo_step(_quad, x, g, _quad(x), 1, beta=0.5)
    c = armijo_step(_quad, x, g, _quad(x), torch.tensor([1.0, 1.0]), beta=0.5)  # float32 steps, cast to float64
    for r in (a, b, c):
        assert r.step.tolist() == [0.125, 1.0]
        assert r.step.dtype == F64
    one = torch.tensor(1.0, dtype=F64)
    same = armijo_step(lambda p: torch.full((2,), math.inf, dtype=F64), x, g, torch.tensor(5.5, dtype=F64), one)
    assert same.value.tolist() == [5.5, 5.5]  # a value of shape () is every row's
    assert armijo_step(_quad, x, g, 5, 1.0).value.dtype == F64  # an int value is a number too
    # the caller's tensors are not changed
    steps = torch.tensor([1.0, 1.0], dtype=F64)
    values = _quad(x).clone()
    armijo_step(_quad, x, g, values, steps, beta=0.5)
    assert steps.tolist() == [1.0, 1.0]
    assert torch.equal(values, _quad(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"value": True}, TypeError, "value"),
        ({"value": "1.0"}, TypeError, "value"),
        ({"value": torch.tensor([1.0, 2.0, 3.0])}, ValueError, "value"),
        ({"value": torch.tensor([1.0, math.inf], dtype=F64)}, NonFiniteGradientError, "value"),
        ({"initial_step": torch.tensor([1.0, 0.0], dtype=F64)}, ValueError, "initial_step"),
        ({"initial_step": torch.tensor(-2.0, dtype=F64)}, ValueError, "initial_step"),
        ({"initial_step": True}, TypeError, "initial_step"),
        ({"params": torch.zeros(0, dtype=F64), "grad": torch.zeros(0, dtype=F64)}, ValueError, "params"),
        ({"params": torch.zeros(2, 0, dtype=F64), "grad": torch.zeros(2, 0, dtype=F64)}, ValueError, "params"),
        ({"params": [1.0, 1.0]}, ValueError, "params"),
        ({"params": torch.tensor(1.0, dtype=F64)}, ValueError, "params"),
        ({"grad": [1.0, 10.0]}, TypeError, "grad"),
        ({"params": torch.tensor([[math.inf, 1.0], [0.5, 0.5]], dtype=F64)}, NonFiniteGradientError, "params"),
        ({"fn": lambda x: torch.zeros(1)}, ValueError, "fn"),
    ],
)
def test_armijo_step_refuses_more_bad_arguments(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    x0 = torch.tensor([[1.0, 1.0], [0.5, 0.5]], dtype=F64)
    args: dict[str, Any] = {"fn": _quad, "params": x0, "grad": x0 @ A2, "value": _quad(x0), "initial_step": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=rf"(?<![A-Za-z_]){name}\b"):  # the argument's own name, not a longer word
        armijo_step(**args)


def test_armijo_step_ranges_are_open_at_both_ends() -> None:
    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    g = A2 @ x0
    for kwargs in ({"c": 1e-12}, {"c": 1 - 1e-12}, {"beta": 1e-12}, {"beta": 1 - 1e-12}, {"max_backtracks": 0}):
        armijo_step(_quad, x0, g, 5.5, 0.01, **kwargs)  # accepted
    assert int(armijo_step(_quad, x0, g, 5.5, 1.0, max_backtracks=0).evaluations) == 1


def test_a_one_element_batch_of_rows_keeps_its_row_dimension() -> None:
    x = torch.tensor([[1.0, 1.0]], dtype=F64)
    out = armijo_step(_quad, x, x @ A2, _quad(x), 1.0, beta=0.5)
    assert out.params.shape == (1, 2)
    assert out.step.shape == (1,)
    assert out.step.tolist() == [0.125]
    assert out.backtracks.tolist() == [3]
    assert out.evaluations.tolist() == [4]
    assert out.satisfied.tolist() == [True]


def test_stochastic_armijo_defaults_and_repr() -> None:
    rule = StochasticArmijo()
    assert (rule.max_step, rule.c, rule.beta, rule.reset, rule.growth, rule.max_backtracks) == (
        10.0,
        0.1,
        0.9,
        "grow",
        2.0,
        100,
    )
    assert repr(rule) == (
        "StochasticArmijo(max_step=10.0, c=0.1, beta=0.9, reset='grow', growth=2.0, max_backtracks=100)"
    )
    # the edges that are allowed: growth exactly 1, no backtracks, c and beta near 0 and 1, reset "max"
    edge = StochasticArmijo(0.5, c=1e-9, beta=1 - 1e-9, reset="max", growth=1.0, max_backtracks=0)
    assert (edge.growth, edge.max_backtracks, edge.reset) == (1.0, 0, "max")
    StochasticArmijo(c=1 - 1e-9, beta=1e-9)
    for kwargs in ({"c": 0.0}, {"c": 1.0}, {"beta": 0.0}, {"beta": 1.0}, {"growth": 1 - 1e-9}, {"max_step": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            StochasticArmijo(**kwargs)  # type: ignore[arg-type]


def test_init_and_initial_step() -> None:
    rule = StochasticArmijo(3.0, growth=4.0)
    single = rule.init(torch.zeros(5, dtype=F64))
    assert single["step"] == 0
    assert single["step_size"].shape == ()
    assert single["step_size"].dtype == F64
    assert float(single["step_size"]) == 3.0
    rows = rule.init(torch.zeros(4, 2, dtype=torch.float32))
    assert rows["step_size"].dtype == torch.float32
    assert rows["step_size"].tolist() == [3.0] * 4
    for bad in (torch.zeros(2, 2, 2), [0.0, 1.0], torch.tensor(1.0)):
        with pytest.raises(ValueError, match="params"):
            rule.init(bad)  # type: ignore[arg-type]
    # the grow reset with a whole batch (fraction 1 is allowed): the step times growth, capped at max_step
    state = {"step": 1, "step_size": torch.tensor([0.5, 1.0], dtype=F64)}
    assert rule.initial_step(state, 1.0).tolist() == [2.0, 3.0]
    assert rule.initial_step(state, 0.5).tolist() == [1.0, 2.0]  # 4 ** 0.5 = 2
    assert rule.initial_step({"step": 0, "step_size": state["step_size"]}, 0.5).tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="batch_fraction"):
        rule.initial_step(state, 1.0 + 1e-9)


def test_search_remembers_the_smallest_trial_after_a_failure_and_counts_steps() -> None:
    rule = StochasticArmijo(8.0, beta=0.5, max_backtracks=2)
    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    state = {"step": 7, "step_size": torch.tensor(8.0, dtype=F64)}
    before = {"step": 7, "step_size": state["step_size"].clone()}
    # from 8 * 2^(1/2) capped at 8: 8, 4, 2 all fail on diag(1, 10) (bound 0.18), so the point stays and the next
    # search starts from 2, the smallest trial
    x, new, found = rule.search(_quad, x0, A2 @ x0, float(_quad(x0)), state, batch_fraction=0.5)
    assert not bool(found.satisfied)
    assert torch.equal(x, x0)
    assert new["step"] == 8
    assert float(new["step_size"]) == 2.0
    assert state["step"] == before["step"]
    assert torch.equal(state["step_size"], before["step_size"])
    # an accepted step is remembered; the default batch_fraction is 1 (a growth of 2 per step)
    ok = StochasticArmijo(1.0, beta=0.5)
    x, new, found = ok.search(_quad, x0, A2 @ x0, float(_quad(x0)), {"step": 3, "step_size": torch.tensor(0.125)})
    assert float(found.step) == 0.125
    assert float(new["step_size"]) == 0.125
    assert int(found.backtracks) == 1
    torch.testing.assert_close(x, x0 - 0.125 * (A2 @ x0), rtol=0, atol=0)


def _least_squares(n: int = 20, d: int = 3, seed: int = 4) -> ng.FiniteSum:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=F64) * torch.linspace(0.3, 3.0, n, dtype=F64)[:, None]
    y = torch.randn(n, generator=gen, dtype=F64)
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))


def _armijo_reference(
    objective: ng.FiniteSum,
    b: int | None,
    x0: torch.Tensor,
    steps: int,
    seed: int,
    *,
    max_step: float,
    c: float,
    beta: float,
    growth: float,
    max_backtracks: int,
    record_every: int,
) -> dict[str, Any]:
    """minimize_armijo's loop written out: the batches drawn as ``MiniBatch.sample_indices`` does, ``armijo_step``
    from the ``"grow"`` reset, a failed search remembered as its smallest trial."""
    n = objective.n_examples
    fraction = 1.0 if b is None else b / n
    gen = torch.Generator().manual_seed(seed)
    x, last = x0.clone(), None
    out: dict[str, Any] = {"evals": 0, "backtracks": 0, "failures": 0, "steps": [], "history": []}
    for t in range(steps):
        idx = None if b is None else torch.randperm(n, generator=gen)[:b]
        value, grad = objective.value_and_grad(x, idx)
        start = (
            torch.tensor(max_step, dtype=F64) if last is None else torch.clamp(last * growth**fraction, max=max_step)
        )
        res = armijo_step(
            lambda p, idx=idx: objective.value(p, idx), x, grad, value, start, c=c, beta=beta,
            max_backtracks=max_backtracks,
        )  # fmt: skip
        x = res.params
        last = res.step if bool(res.satisfied) else start * beta**max_backtracks
        out["evals"] += int(res.evaluations)
        out["backtracks"] += int(res.backtracks)
        out["failures"] += int(not bool(res.satisfied))
        out["steps"].append(float(res.step))
        if record_every and (t + 1) % record_every == 0:
            out["history"].append(objective.value(x))
    out["x"], out["last"] = x, last
    return out


@pytest.mark.parametrize("max_backtracks", [100, 3])
def test_minimize_armijo_is_its_loop_written_out(max_backtracks: int) -> None:
    objective = _least_squares()
    x0 = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    x0_copy = x0.clone()
    rule = StochasticArmijo(30.0, c=0.3, beta=0.7, growth=3.0, max_backtracks=max_backtracks)
    result = minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=12, line_search=rule, seed=5, record_every=5)
    ref = _armijo_reference(
        objective, 4, x0, 12, 5, max_step=30.0, c=0.3, beta=0.7, growth=3.0, max_backtracks=max_backtracks,
        record_every=5,
    )  # fmt: skip
    assert torch.equal(result.x, ref["x"])
    assert torch.equal(x0, x0_copy)  # the caller's start is not changed
    assert result.step_sizes == ref["steps"]
    assert result.history == ref["history"]
    assert len(result.history) == 2
    assert (result.function_evaluations, result.backtracks, result.failures) == (
        ref["evals"],
        ref["backtracks"],
        ref["failures"],
    )
    assert result.backtracks > 0  # the searches shrink, so the reset's fraction 4 / 20 matters
    if max_backtracks == 3:
        assert result.failures > 0
    assert (result.nit, result.gradient_evaluations) == (12, 12)
    assert result.cost.examples == 4 * (12 + ref["evals"])
    assert result.fun == objective.value(ref["x"])
    assert result.state["step"] == 12
    assert torch.equal(result.state["step_size"], ref["last"])


def test_minimize_armijo_defaults_seed_and_full_batch() -> None:
    objective = _least_squares()
    x0 = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    default = minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=6)
    ref = _armijo_reference(
        objective, 4, x0, 6, 0, max_step=10.0, c=0.1, beta=0.9, growth=2.0, max_backtracks=100, record_every=0
    )
    assert torch.equal(default.x, ref["x"])
    assert default.history == []
    assert torch.equal(minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=6, seed=0).x, default.x)
    other = minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=6, seed=1)
    assert not torch.equal(other.x, default.x)
    full = minimize_armijo(ng.FullBatch(objective), x0, steps=5, record_every=1)
    ref = _armijo_reference(
        objective, None, x0, 5, 0, max_step=10.0, c=0.1, beta=0.9, growth=2.0, max_backtracks=100, record_every=1
    )
    assert torch.equal(full.x, ref["x"])
    assert full.history == ref["history"]
    assert len(full.history) == 5
    assert full.cost.examples == 20 * (5 + ref["evals"])
    # a MiniBatch larger than the data set (with replacement) still resets with fraction 1
    big = minimize_armijo(ng.MiniBatch(objective, 40, replace=True), x0, steps=3)
    assert big.cost.examples == 40 * (3 + big.function_evaluations)


def test_minimize_armijo_refuses_more_bad_arguments() -> None:
    objective = _least_squares()
    x0 = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="record_every"):
        minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=1, record_every=-1)
    with pytest.raises(ValueError, match="seed"):
        minimize_armijo(ng.MiniBatch(objective, 4), x0, steps=1, seed=-1)
    energy = ng.Energy(lambda x: (x**2).sum())
    with pytest.raises((TypeError, ValueError)):
        minimize_armijo(ng.FullBatch(energy), x0, steps=1)  # type: ignore[arg-type]


def test_armijo_result_defaults() -> None:
    result = ArmijoResult(torch.zeros(1), 0.0, 0, ng.estimators.base.Cost(examples=0), 0, 0, 0, 0)
    assert (result.step_sizes, result.history, result.state) == ([], [], {})
    assert "state=" not in repr(result)
    assert "history=" in repr(result)


def test_least_squares_steps_defaults_and_edges() -> None:
    # |x_i|^2 = 0, 1, 4, 0.5: accepted iff eta L_i <= 1.8; from 10 with beta = 0.9
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    steps, backtracks = least_squares_armijo_steps(X)
    expected_steps, expected_k = [], []
    for L in (0.0, 1.0, 4.0, 0.5):
        step, k = 10.0, 0
        while step * L > 1.8:
            step *= 0.9
            k += 1
        expected_steps.append(step)
        expected_k.append(k)
    assert steps.tolist() == expected_steps
    assert backtracks.tolist() == expected_k
    assert backtracks.dtype == np.int64
    assert steps.dtype == np.float64
    # the boundary eta L = 2 (1 - c) is accepted: c = 0.5, max_step 1, L = 1
    s, k = least_squares_armijo_steps(np.array([[1.0]]), max_step=1.0, c=0.5)
    assert (s.tolist(), k.tolist()) == ([1.0], [0])
    # out of backtracks: step 0, max_backtracks shrinks
    s, k = least_squares_armijo_steps(np.array([[10.0], [0.1]]), max_step=10.0, beta=0.5, max_backtracks=2)
    assert (s.tolist(), k.tolist()) == ([0.0, 10.0], [2, 0])
    s, k = least_squares_armijo_steps(np.array([[10.0]]), max_step=10.0, beta=0.5, max_backtracks=0)
    assert (s.tolist(), k.tolist()) == ([0.0], [0])
    # the default 100 backtracks: |x|^2 = 1e4 fails even at 10 * 0.9^100 = 2.7e-4 (2.7 > 1.8), so step 0 after 100
    s, k = least_squares_armijo_steps(np.array([[100.0]]))
    assert (s.tolist(), k.tolist()) == ([0.0], [100])
    # |x|^2 = 1 from 10 halving: 10, 5, 2.5 all fail (> 1.8); the next, 1.25, would pass but is one shrink too many
    s, k = least_squares_armijo_steps(np.array([[1.0]]), max_step=10.0, beta=0.5, max_backtracks=2)
    assert (s.tolist(), k.tolist()) == ([0.0], [2])
    for kwargs in ({"max_step": 0.0}, {"c": 1.0}, {"beta": 0.0}, {"beta": 1.0}, {"beta": 1.5}, {"max_backtracks": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            least_squares_armijo_steps(X, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- natural_gradient

from noisygrad.optim.natural_gradient import EnergyNaturalGradient, gauss_newton_direction  # noqa: E402
from noisygrad.optim.quasi_newton import PrecisionWarning  # noqa: E402


def _rosen_res(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def _wide_res(x: torch.Tensor) -> torch.Tensor:
    """Three residuals of four parameters (the solve on the residual side)."""
    return torch.stack([x[0] * x[1] - 1.0, x[2] ** 2 + x[3] - 2.0, torch.sin(x[0]) + x[3]])


def _lm_reference(
    res: Any,
    x0: torch.Tensor,
    calls: int,
    *,
    max_iter: int = 1,
    damping: float = 1e-3,
    min_damping: float = 1e-15,
    tolerance_grad: float = 0.0,
    tolerance_change: float = 1e-15,
) -> list[dict[str, Any]]:
    """Nielsen's Levenberg-Marquardt rule (Madsen, Nielsen and Tingleff 2004, Alg. 3.16) as the module documents
    it, with the Jacobian from ``torch.autograd.functional.jacobian``, the step from ``torch.linalg.solve`` and the
    predicted decrease as ``|r|^2 - |r + J d|^2``: the state after each ``step`` call."""
    x, mu, nu = x0.clone(), None, 2.0
    c = {"n_iter": 0, "func_evals": 0, "jacobians": 0, "rejected": 0, "stalls": 0}
    out = []
    for _ in range(calls):
        r, J = res(x), torch.autograd.functional.jacobian(res, x)
        c["func_evals"] += 1
        c["jacobians"] += 1
        g = J.T @ r
        if 2.0 * float(g.abs().max()) > tolerance_grad:
            scale = float((J**2).sum(dim=0).max())
            mu = damping * scale if mu is None else mu
            loss = float(r @ r)
            n = 0
            while n < max_iter:
                n += 1
                c["n_iter"] += 1
                m = max(mu, min_damping * scale)
                d = -torch.linalg.solve(J.T @ J + m * torch.eye(x.numel(), dtype=F64), g)
                r_new = res(x + d)
                c["func_evals"] += 1
                loss_new = float(r_new @ r_new) if bool(torch.isfinite(r_new).all()) else math.inf
                predicted = float(r @ r) - float((r + J @ d) @ (r + J @ d))
                q = (loss - loss_new) / predicted if predicted > 0 else -1.0
                if q > 0:
                    mu, nu = m * max(1.0 / 3.0, 1.0 - (2.0 * q - 1.0) ** 3), 2.0
                    small = float(d.abs().max()) <= tolerance_change * (float(x.abs().max()) + tolerance_change)
                    x = x + d
                    if n == max_iter or small:
                        c["stalls"] += int(small)
                        break
                    r, J = res(x), torch.autograd.functional.jacobian(res, x)
                    c["func_evals"] += 1
                    c["jacobians"] += 1
                    loss, g, scale = float(r @ r), J.T @ r, float((J**2).sum(dim=0).max())
                    if 2.0 * float(g.abs().max()) <= tolerance_grad:
                        break
                else:
                    mu, nu = m * nu, 2.0 * nu
                    c["rejected"] += 1
                    if mu > 1e30 * max(scale, 1e-300):
                        c["stalls"] += 1
                        break
        out.append({"x": x.clone(), "mu": mu, **c})
    return out


def _check_against_reference(opt: EnergyNaturalGradient, x: torch.Tensor, res: Any, ref: list[dict[str, Any]]) -> None:
    for want in ref:
        r0 = res(x.detach())
        loss0 = opt.step(lambda: res(x))
        assert float(loss0) == float(r0 @ r0)  # the loss |r|^2 at the starting point
        torch.testing.assert_close(x.detach(), want["x"], rtol=1e-9, atol=1e-12)
        report = opt.report()
        assert {k: report[k] for k in ("n_iter", "func_evals", "jacobians", "rejected", "stalls")} == {
            k: want[k] for k in ("n_iter", "func_evals", "jacobians", "rejected", "stalls")
        }
        assert report["damping"] == pytest.approx(want["mu"], rel=1e-8)


@pytest.mark.parametrize(("max_iter", "min_damping"), [(1, 1e-15), (4, 1e-15), (4, 0.02)])
def test_energy_natural_gradient_is_nielsens_levenberg_marquardt(max_iter: int, min_damping: float) -> None:
    # Rosenbrock's residuals from (-1.2, 1, -1.2, 1): rejected steps, the cubic and the 1/3 branches of the damping,
    # and (min_damping 0.02) the floor min_damping * scale, with the scale of the Jacobian at each new point
    start = torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=F64)
    ref = _lm_reference(_rosen_res, start, 8, max_iter=max_iter, damping=0.5, min_damping=min_damping)
    assert ref[-1]["rejected"] > 0
    x = start.clone().requires_grad_(True)
    opt = EnergyNaturalGradient([x], max_iter=max_iter, damping=0.5, min_damping=min_damping)
    _check_against_reference(opt, x, _rosen_res, ref)


def test_energy_natural_gradient_restarts_the_damping_growth_after_an_accepted_step() -> None:
    # the default damping 1e-3 from the same start: three rejections, each after an accepted step, so the growth
    # factor nu must restart at 2 on acceptance (a run that kept the grown nu leaves the reference from step 1)
    start = torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=F64)
    ref = _lm_reference(_rosen_res, start, 8, max_iter=4)
    assert ref[-1]["rejected"] == 3
    x = start.clone().requires_grad_(True)
    _check_against_reference(EnergyNaturalGradient([x], max_iter=4), x, _rosen_res, ref)


def test_energy_natural_gradient_wide_problem_and_defaults() -> None:
    start = torch.tensor([0.3, -0.5, 1.5, 0.2], dtype=F64)
    ref = _lm_reference(_wide_res, start, 6, max_iter=2)
    x = start.clone().requires_grad_(True)
    _check_against_reference(EnergyNaturalGradient([x], max_iter=2), x, _wide_res, ref)
    opt = EnergyNaturalGradient([torch.zeros(2, dtype=F64, requires_grad=True)])
    assert {k: opt.defaults[k] for k in opt.defaults if k not in ("foreach", "differentiable", "fused")} == {
        "max_iter": 1,
        "damping": 1e-3,
        "min_damping": 1e-15,
        "tolerance_grad": 0.0,
        "tolerance_change": 1e-15,
        "jacobian_chunk": 256,
    }
    report = opt.report()
    assert math.isnan(report.pop("damping"))
    assert report == {"n_iter": 0, "func_evals": 0, "jacobians": 0, "rejected": 0, "stalls": 0}


def test_energy_natural_gradient_gradient_tolerance_is_on_the_gradient_of_the_loss() -> None:
    # r = x - (1, 3) at 0: J = I, the gradient of |r|^2 is 2 r = (-2, -6): tolerance 6 stops before any iteration
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x], tolerance_grad=6.0)
    target = torch.tensor([1.0, 3.0], dtype=F64)
    assert float(opt.step(lambda: x - target)) == 10.0
    assert x.detach().tolist() == [0.0, 0.0]
    assert opt.report()["n_iter"] == 0
    assert opt.report()["func_evals"] == 1
    assert opt.report()["jacobians"] == 1
    start = torch.tensor([0.5, -2.0, 0.7], dtype=F64)
    for tol in (6.0 - 1e-9, 0.05):
        ref = _lm_reference(
            lambda z: torch.cat([z[:2] - target, z[2:] ** 2]), start, 3, max_iter=30, tolerance_grad=tol
        )
        y = start.clone().requires_grad_(True)
        opt = EnergyNaturalGradient([y], max_iter=30, tolerance_grad=tol)
        _check_against_reference(opt, y, lambda z: torch.cat([z[:2] - target, z[2:] ** 2]), ref)
        assert opt.report()["n_iter"] < 90


def test_energy_natural_gradient_stops_after_a_step_on_the_gradient_of_the_loss() -> None:
    # r = x - (1, 3) from 0: after the first accepted step, g1 = max |J^T r| there and the gradient of |r|^2 is
    # 2 J^T r, so a tolerance of 2.4 g1 stops after that one iteration and one of 1.6 g1 goes on
    target = torch.tensor([1.0, 3.0], dtype=F64)
    one = torch.zeros(2, dtype=F64, requires_grad=True)
    EnergyNaturalGradient([one], max_iter=1).step(lambda: one - target)
    g1 = float((one.detach() - target).abs().max())  # J = I
    for factor, iterations in ((2.4, 1), (1.6, 2)):
        x = torch.zeros(2, dtype=F64, requires_grad=True)
        opt = EnergyNaturalGradient([x], max_iter=2, tolerance_grad=factor * g1)
        opt.step(lambda: x - target)  # noqa: B023 - called here, before x is rebound
        assert opt.report()["n_iter"] == iterations


def test_a_small_step_stops_at_its_exact_bound() -> None:
    # r = x + 7 from x = 1, damping 3 (scale 1): d = -(1 + 3)^-1 * 8 = -2, and |d| = 2 = tol * (|x| + tol) with tol = 1:
    # a small step (the bound is inclusive): one iteration, counted as a stall; the loss falls 64 -> 36, predicted
    # d (mu d - g) = -2 (-6 - 8) = 28, so q = 1 and mu becomes 3 * 1/3
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x], max_iter=3, damping=3.0, tolerance_change=1.0)
    loss = opt.step(lambda: x + 7.0)
    assert loss.dtype == F64
    assert float(loss) == 64.0
    assert x.detach().tolist() == [-1.0]
    report = opt.report()
    assert (report["n_iter"], report["stalls"], report["func_evals"], report["jacobians"]) == (1, 1, 2, 1)
    assert report["damping"] == 3.0 * (1.0 / 3.0)
    # tolerance 0.99: 2 > 0.99 * 1.99, not small; the next iterations run from the new point
    y = torch.tensor([1.0], dtype=F64, requires_grad=True)
    other = EnergyNaturalGradient([y], max_iter=3, damping=3.0, tolerance_change=0.99)
    other.step(lambda: y + 7.0)
    assert other.report()["n_iter"] == 3
    assert float(y.detach()) < -1.0


def test_the_loss_is_returned_in_the_parameters_dtype() -> None:
    # a defect fixed: step returned torch.tensor(loss0), torch's default float32, rounding a float64 loss
    x = torch.tensor([0.1, 0.2], dtype=F64, requires_grad=True)
    loss = EnergyNaturalGradient([x]).step(lambda: x * 1.0)
    assert loss.dtype == F64
    assert float(loss) == 0.1 * 0.1 + 0.2 * 0.2
    early = EnergyNaturalGradient([x], tolerance_grad=10.0).step(lambda: x * 1.0)  # the early return too
    assert early.dtype == F64
    assert float(early) == float(x.detach() @ x.detach())


def test_a_gram_matrix_that_cannot_be_factored_raises_the_damping() -> None:
    # J = [[2, 2], [0, 0]] (square, rank 1): with mu = 4e-300 the Gram matrix 4 [[1, 1], [1, 1]] + mu I rounds to a
    # singular one, so Cholesky fails and mu doubles, quadruples, ... (rejected) until it factors; then steps are taken
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x], max_iter=100, damping=1e-300, min_damping=0.0)
    opt.step(lambda: torch.stack([2.0 * x.sum() - 1.0, 0.0 * x.sum()]))
    report = opt.report()
    mu, nu, rejected = 4e-300, 2.0, 0
    gram = torch.full((2, 2), 4.0, dtype=F64)
    while int(torch.linalg.cholesky_ex(gram + mu * torch.eye(2, dtype=F64)).info) != 0:
        mu, nu, rejected = mu * nu, 2.0 * nu, rejected + 1
    assert 30 < rejected == report["rejected"]
    assert report["n_iter"] > rejected
    torch.testing.assert_close(x.detach().sum(), torch.tensor(0.5, dtype=F64), rtol=0, atol=1e-12)
    # undamped and rank 1 with exact Cholesky pivots (4 - 2 * 2 = 0): None on both sides
    square = torch.tensor([[2.0, 2.0], [0.0, 0.0]], dtype=F64)
    assert gauss_newton_direction(square, torch.ones(2, dtype=F64), 0.0) is None
    wide = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=F64)
    assert gauss_newton_direction(wide, torch.ones(2, dtype=F64), 0.0) is None
    tall = torch.tensor([[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64)
    assert gauss_newton_direction(tall, torch.ones(3, dtype=F64), 0.0) is None
    assert gauss_newton_direction(wide, torch.ones(2, dtype=F64), 1.0) is not None


def test_rejected_steps_stall_at_the_damping_ceiling() -> None:
    # every trial is NaN: mu grows by 2, 4, 8, ... until it exceeds 1e30 times the scale (here 1e-4 < 1, so the
    # floor 1e-300 of the scale does not apply); the count of rejections is exact
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    start = x.detach().clone()
    opt = EnergyNaturalGradient([x], max_iter=1000)

    def res() -> torch.Tensor:
        r = 0.01 * x
        return r if bool((x.detach() == start).all()) else r * math.nan

    opt.step(res)
    mu, nu, rejected = 1e-3 * 1e-4, 2.0, 0
    while True:
        mu, nu, rejected = mu * nu, 2.0 * nu, rejected + 1
        if mu > 1e30 * 1e-4:
            break
    report = opt.report()
    assert (report["rejected"], report["stalls"], report["n_iter"]) == (rejected, 1, rejected)
    assert x.detach().tolist() == [1.0]
    assert report["damping"] == mu


def test_the_damping_ceiling_is_exclusive() -> None:
    # r = x (scale 1), every trial NaN, damping 1e30 / 64: mu = 1e30 / 64 * 2 * 4 * 8 = 1e30 exactly after three
    # rejections, which is not above the ceiling 1e30 * scale; the fourth (1.6e31) stalls
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x], max_iter=10, damping=1e30 / 64)

    def res() -> torch.Tensor:
        return x * 1.0 if float(x.detach()) == 1.0 else x * math.nan

    opt.step(res)
    report = opt.report()
    assert (report["rejected"], report["stalls"], report["damping"]) == (4, 1, 1e30 * 16)


def test_a_step_that_does_not_lower_the_loss_is_rejected() -> None:
    # a subclass with a residual that does not change: q = 0 exactly, so the step is rejected and the point restored
    class Flat(EnergyNaturalGradient):
        def residuals(self, closure: Any) -> torch.Tensor:
            return torch.tensor([1.0, 2.0], dtype=F64)

        def residuals_and_jacobian(self, closure: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tensor([1.0, 2.0], dtype=F64), torch.eye(2, dtype=F64)

    x = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = Flat([x], max_iter=2, damping=1.0)
    assert float(opt.step(lambda: x)) == 5.0
    assert x.detach().tolist() == [0.0, 0.0]
    report = opt.report()
    assert (report["rejected"], report["n_iter"], report["func_evals"]) == (2, 2, 3)
    assert report["damping"] == 1.0 * 2.0 * 4.0  # mu = 1, then times nu = 2, then times 4

    class Wrong(Flat):
        def residuals_and_jacobian(self, closure: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tensor([1.0, 2.0], dtype=F64), torch.eye(3, dtype=F64)

    with pytest.raises(ValueError, match="Jacobian has shape"):
        Wrong([x]).step(lambda: x)


def test_a_predicted_decrease_that_underflows_rejects_the_step() -> None:
    # r = x at 1e-170: the loss and the predicted decrease underflow to 0, which is no decrease (no division by 0)
    x = torch.tensor([1e-170], dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x], max_iter=1)
    assert float(opt.step(lambda: x * 1.0)) == 0.0
    assert x.detach().tolist() == [1e-170]
    assert opt.report()["rejected"] == 1


def test_the_default_jacobian_chunks_and_unused_parameters() -> None:
    # chunks of 2 over 5 residuals (the last chunk shorter); an unused parameter gets zero columns
    x = torch.tensor([0.3, -0.7, 1.1], dtype=F64, requires_grad=True)
    unused = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    opt = EnergyNaturalGradient([x, unused], jacobian_chunk=2)

    def res() -> torch.Tensor:
        return torch.stack([x[0] * x[1], torch.sin(x[2]), x.sum(), x[0] ** 2, x[2] * x[1]])

    r, jac = opt.residuals_and_jacobian(res)
    assert jac.shape == (5, 7)
    expected = torch.autograd.functional.jacobian(
        lambda z: torch.stack([z[0] * z[1], torch.sin(z[2]), z.sum(), z[0] ** 2, z[2] * z[1]]), x.detach()
    )
    torch.testing.assert_close(jac[:, :3], expected, rtol=0, atol=1e-15)
    assert torch.equal(jac[:, 3:], torch.zeros(5, 4, dtype=F64))
    assert not r.requires_grad
    assert torch.equal(r, res().detach())
    assert not opt.residuals(res).requires_grad
    # a 2-D residual is flattened
    r2, jac2 = opt.residuals_and_jacobian(lambda: res()[:4].reshape(2, 2))
    assert r2.shape == (4,)
    assert torch.equal(jac2, jac[:4])
    with pytest.raises(ValueError, match="do not depend"):
        opt.residuals_and_jacobian(lambda: torch.ones(3, dtype=F64))
    with pytest.raises(TypeError, match="real"):
        opt.residuals(lambda: torch.ones(3, dtype=torch.complex128))


def test_several_parameter_tensors_step_as_one_vector() -> None:
    # a (2,) and a (1, 1) tensor take the same steps, bit for bit, as one (3,) tensor holding both
    a = torch.tensor([-1.2, 1.0], dtype=F64, requires_grad=True)
    b = torch.tensor([[-1.2]], dtype=F64, requires_grad=True)
    split = EnergyNaturalGradient([a, b], max_iter=3)
    whole = torch.tensor([-1.2, 1.0, -1.2], dtype=F64, requires_grad=True)
    one = EnergyNaturalGradient([whole], max_iter=3)
    for _ in range(3):
        split.step(lambda: _rosen_res(torch.cat([a, b.reshape(-1)])))
        one.step(lambda: _rosen_res(whole))
    assert torch.equal(torch.cat([a.detach(), b.detach().reshape(-1)]), whole.detach())
    assert not torch.equal(whole.detach(), torch.tensor([-1.2, 1.0, -1.2], dtype=F64))


def test_energy_natural_gradient_settings_and_precision() -> None:
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    EnergyNaturalGradient([x], min_damping=0.0, tolerance_grad=0.0, tolerance_change=0.0)  # zero is allowed
    for kwargs in (
        {"max_iter": 0},
        {"min_damping": -1.0},
        {"tolerance_grad": -1.0},
        {"tolerance_change": -1.0},
        {"jacobian_chunk": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            EnergyNaturalGradient([x], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="single parameter group"):
        EnergyNaturalGradient([{"params": [x]}, {"params": [torch.zeros(1, dtype=F64, requires_grad=True)]}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EnergyNaturalGradient([x])
        assert caught == []
        EnergyNaturalGradient([torch.zeros(2, dtype=torch.float32, requires_grad=True)])
    assert len(caught) == 1
    assert issubclass(caught[0].category, PrecisionWarning)
    assert "Gram matrix" in str(caught[0].message)
    with pytest.raises(NonFiniteGradientError, match="params"):
        EnergyNaturalGradient([torch.tensor([math.nan], dtype=F64, requires_grad=True)]).step(lambda: x)


# ----------------------------------------------------------------------------------------------- quasi_newton

from torch.optim.lbfgs import _strong_wolfe  # noqa: E402

from noisygrad.optim import quasi_newton as qn  # noqa: E402
from noisygrad.optim.quasi_newton import BFGS, SSBFGS, SSBroyden, inverse_hessian_update, symmetrize_  # noqa: E402


def _scalings(H: torch.Tensor, s: torch.Tensor, y: torch.Tensor, g: torch.Tensor, t: float, rule: str, first: bool):
    """``(tau, phi)`` written out from the module's equations (Urbán et al. 2024, eqs. 13-23; Nocedal-Wright 6.20)."""
    sy = float(s @ y)
    h = float(y @ H @ y) / sy
    b = -t * float(s @ g) / sy
    if rule == "bfgs":
        return (float(y @ y) / sy if first else 1.0), 1.0
    if rule == "ssbfgs":
        return (float(y @ y) / sy if first else min(1.0, 1.0 / b)), 1.0
    a = b * h - 1.0
    theta = 0.0
    if a > 1e-12:
        rho_minus = min(1.0, h * (1.0 - math.sqrt(a / (1.0 + a))))
        theta = min(max((1.0 - b) / b, (rho_minus - 1.0) / a), 1.0 / rho_minus)
    sigma = 1.0 + theta * a
    if first:
        tau = h / sigma
    else:
        n = s.numel()
        sigma_n = abs(sigma) ** (1.0 / (1.0 - n)) if n > 1 else 1.0
        rho_k = min(1.0, 1.0 / b)
        tau = min(rho_k * sigma_n, sigma) if theta <= 0 else rho_k * min(sigma_n, 1.0 / theta)
    return tau, (1.0 - theta) / sigma


def _updated(H: torch.Tensor, s: torch.Tensor, y: torch.Tensor, tau: float, phi: float) -> torch.Tensor:
    """The scaled Broyden-family inverse update in its product form plus ``phi``'s rank-one term:
    ``(I - rho s y^T) (H / tau) (I - rho y s^T) + rho s s^T + (phi - 1) (y^T H y / tau) v v^T``."""
    n = s.numel()
    rho = 1.0 / float(s @ y)
    eye = torch.eye(n, dtype=F64)
    hy = H @ y
    yhy = float(y @ hy)
    v = rho * s - hy / yhy
    left = eye - rho * torch.outer(s, y)
    return left @ (H / tau) @ left.T + rho * torch.outer(s, s) + (phi - 1.0) * yhy / tau * torch.outer(v, v)


def _update_case(n: int, seed: int, k: float, first: bool, t: float = 0.7):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=F64)
    H = torch.eye(n, dtype=F64) if first else m @ m.T / n + 0.5 * torch.eye(n, dtype=F64)
    H = (H + H.T) * 0.5
    g = torch.randn(n, generator=gen, dtype=F64)
    s = -t * (H @ g)
    b = torch.randn(n, n, generator=gen, dtype=F64)
    y = k * (b @ b.T / n + 0.2 * torch.eye(n, dtype=F64)) @ s
    return H, s, y, g, t


@pytest.mark.parametrize("rule", ["bfgs", "ssbfgs", "ssbroyden"])
@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize(
    ("n", "seed", "k"),
    [
        (5, 0, 0.05), (5, 1, 20.0), (3, 2, 1.0), (7, 3, 0.3), (1, 4, 2.0), (4, 19, 0.02), (2, 5, 0.5), (2, 6, 5.0),
        (1, 7, 0.3),  # n = 1 with b = 5.8 > 1: SSBroyden's tau = min(1/b, 1) with no sigma^(1/(1-n)) factor
    ],
)  # fmt: skip
def test_inverse_hessian_update_is_the_scaled_broyden_update(
    rule: str, first: bool, n: int, seed: int, k: float
) -> None:
    # k scales y: b = s^T B s / s^T y above and below 1, so SSBroyden's theta is clipped from both sides and
    # SSBFGS's tau = min(1, 1 / b) takes both values; n = 1 has a = 0 (s and H y parallel); n = 2 is the smallest
    # n with SSBroyden's sigma^(1 / (1 - n)) factor
    H, s, y, g, t = _update_case(n, seed, k, first)
    tau, phi = _scalings(H, s, y, g, t, rule, first)
    out = H.clone()
    result = inverse_hessian_update(out, s, y, g, t, rule, first)
    assert result is not None
    assert result[0] == pytest.approx(tau, rel=1e-13)
    scale = float(out.abs().max())
    torch.testing.assert_close(out, _updated(H, s, y, tau, phi), rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(out @ y, s, rtol=1e-10, atol=1e-12 * float(s.abs().max()))
    assert result[2].dtype == F64
    # the product H y may be given (hy) instead of computed: the same update, bit for bit
    again = H.clone()
    inverse_hessian_update(again, s, y, g, t, rule, first, hy=H @ y)
    assert torch.equal(again, out)


def test_the_ssbroyden_branches_are_all_reached() -> None:
    # the non-first cases above reach a = 0 (n = 1), and a in (1e-12, 1) with b above 1 (theta < 0) and below 1
    # (theta > 0, clipped at theta_plus)
    seen = set()
    for n, seed, k in [(5, 0, 0.05), (5, 1, 20.0), (3, 2, 1.0), (7, 3, 0.3), (1, 4, 2.0)]:
        H, s, y, g, t = _update_case(n, seed, k, False)
        sy = float(s @ y)
        b = -t * float(s @ g) / sy
        a = b * (float(y @ H @ y) / sy) - 1.0
        seen.add(("a=0" if a <= 1e-12 else "a<1" if a < 1 else "a>=1", "b>1" if b > 1 else "b<=1"))
    assert seen == {("a<1", "b>1"), ("a<1", "b<=1"), ("a=0", "b<=1")}


@pytest.mark.parametrize("rule", ["BFGS", "sr1", ""])
def test_inverse_hessian_update_refuses_an_unknown_rule_with_h_untouched(rule: str) -> None:
    H = torch.eye(2, dtype=torch.float64)
    s, y, g = (torch.tensor(v, dtype=torch.float64) for v in ([1.0, 0.0], [2.0, 0.5], [-1.0, 0.0]))
    with pytest.raises(ValueError, match="rule must be one of 'bfgs', 'ssbfgs', 'ssbroyden'"):
        inverse_hessian_update(H, s, y, g, 1.0, rule, False)
    assert torch.equal(H, torch.eye(2, dtype=torch.float64))


def test_inverse_hessian_update_refuses_bad_scalings_with_h_untouched() -> None:
    H, s, y, g, t = _update_case(4, 5, 1.0, False)
    # y^T H y <= 0 (H negative definite): None
    neg = -H
    assert inverse_hessian_update(neg, s, y, g, t, "bfgs", False) is None
    assert torch.equal(neg, -H)
    # y^T H y = 0 exactly: H = diag(1, 0), y = (0, 1), s = (0, 1)
    flat = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    e2 = torch.tensor([0.0, 1.0], dtype=F64)
    assert inverse_hessian_update(flat.clone(), e2, e2, -e2, 1.0, "bfgs", False) is None
    # SSBFGS with b < 0 (a step along an ascent direction): tau = 1 / b < 0
    out = H.clone()
    assert inverse_hessian_update(out, s, y, -g, t, "ssbfgs", False) is None
    assert torch.equal(out, H)
    # tau = 0 (b infinite) and tau infinite (y^T y overflows) are refused too
    assert inverse_hessian_update(H.clone(), s, y, g, math.inf, "ssbfgs", False) is None
    big = y * 1e200
    assert inverse_hessian_update(torch.eye(4, dtype=F64), s, big, g, t, "bfgs", True) is None


def test_symmetrize_is_exact_for_any_block() -> None:
    gen = torch.Generator().manual_seed(6)
    for n, block in ((5, 2), (7, 3), (6, 6), (300, 128)):
        m = torch.randn(n, n, generator=gen, dtype=F64)
        h = m.clone()
        assert symmetrize_(h, block) is h if block != 128 else symmetrize_(h) is h
        assert torch.equal(h, (m + m.T) * 0.5)


def test_loss_transforms_closed_form() -> None:
    g = torch.tensor([1.0, -2.0], dtype=F64)
    assert qn._transform(4.0, g, None) == (4.0, g)
    value, grad = qn._transform(4.0, g, "sqrt")
    assert value == 2.0
    assert torch.equal(grad, g / 4.0)
    value, grad = qn._transform(4.0, g, "log")
    assert value == math.log(4.0)
    assert torch.equal(grad, g / 4.0)
    assert qn._transform(0.0, g, "sqrt")[0] == 0.0
    assert torch.equal(qn._transform(0.0, g, "sqrt")[1], torch.zeros(2, dtype=F64))
    value, grad = qn._transform(0.0, g, "log")
    assert value == -math.inf
    assert torch.equal(grad, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="loss >= 0"):
        qn._transform(-1e-300, g, "sqrt")


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """A smooth convex quartic in four variables (its BFGS path is well conditioned, so rounding stays small)."""
    a = torch.tensor(
        [[3.0, 1.0, 0.0, 0.5], [1.0, 2.0, 0.3, 0.0], [0.0, 0.3, 1.5, 0.2], [0.5, 0.0, 0.2, 1.0]], dtype=F64
    )
    b = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    return 0.5 * x @ a @ x - b @ x + 0.1 * (x**4).sum()


def _value_grad(fn: Any, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    z = x.detach().clone().requires_grad_(True)
    value = fn(z)
    (grad,) = torch.autograd.grad(value, z)
    return float(value.detach()), grad


def _bfgs_reference(
    fn: Any,
    x0: torch.Tensor,
    rule: str,
    calls: int,
    *,
    lr: float = 1.0,
    max_iter: int = 1,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-12,
    tolerance_change: float = 0.0,
    c1: float = 1e-4,
    c2: float = 0.9,
    line_search_evals: int = 25,
    curvature_eps: float = 1e-12,
    transform: str | None = None,
) -> list[dict[str, Any]]:
    """The optimizer's documented loop with a dense H, torch's strong-Wolfe search called directly and the update
    in product form: the point and the counters after each ``step`` call."""

    def tr(value: float, grad: torch.Tensor) -> tuple[float, torch.Tensor]:
        if transform == "sqrt":
            return math.sqrt(value), grad / (2.0 * math.sqrt(value))
        if transform == "log":
            return math.log(value), grad / value
        return value, grad

    x, H, updates = x0.clone(), None, 0
    c = {"n_iter": 0, "func_evals": 0, "updates": 0, "skipped": 0, "resets": 0, "wolfe_failures": 0, "stalls": 0}
    out = []
    for _ in range(calls):
        raw, raw_grad = _value_grad(fn, x)
        c["func_evals"] += 1
        evals = 1
        if float(raw_grad.abs().max()) > tolerance_grad:
            f, g = tr(raw, raw_grad)
            H = torch.eye(x.numel(), dtype=F64) if H is None else H
            n = 0
            while n < max_iter:
                n += 1
                c["n_iter"] += 1
                d = -(H @ g)
                gtd = float(g @ d)
                identity = updates == 0
                t0 = lr * min(1.0, 1.0 / float(g.abs().sum())) if identity else lr
                budget = line_search_evals if max_eval is None else min(line_search_evals, max(max_eval - evals, 1))
                used = [0]
                raws: dict[float, tuple[float, torch.Tensor]] = {}

                def obj(
                    _x: Any, t: Any, direction: torch.Tensor, x=x, used=used, raws=raws
                ) -> tuple[float, torch.Tensor]:
                    used[0] += 1
                    value, grad = _value_grad(fn, torch.add(x, direction, alpha=float(t)))
                    raws[float(t)] = (value, grad)
                    return tr(value, grad)

                f_new, g_new, t, _ = _strong_wolfe(
                    obj, x, t0, d, f, g, torch.tensor(gtd, dtype=F64), c1, c2, tolerance_change=1e-14, max_ls=budget
                )
                t = float(t)
                evals += used[0]
                c["func_evals"] += used[0]
                if not (t > 0 and float(f_new) < f):
                    if not identity:
                        H, updates = torch.eye(x.numel(), dtype=F64), 0
                        c["resets"] += 1
                        continue
                    c["stalls"] += 1
                    break
                f_new = float(f_new)
                if not (f_new <= f + c1 * t * gtd and abs(float(g_new @ d)) <= -c2 * gtd):
                    c["wolfe_failures"] += 1
                s, y = d * t, g_new - g
                x = torch.add(x, d, alpha=t)
                if float(s @ y) > curvature_eps * float(s.norm() * y.norm()):
                    tau, phi = _scalings(H, s, y, g, t, rule, identity)
                    H = _updated(H, s, y, tau, phi)
                    updates += 1
                    c["updates"] += 1
                else:
                    c["skipped"] += 1
                change = abs(f_new - f)
                f, g = f_new, g_new
                if float(raws[t][1].abs().max()) <= tolerance_grad:
                    break
                if change < tolerance_change or float(s.abs().max()) <= tolerance_change:
                    break
                if max_eval is not None and evals >= max_eval:
                    break
        out.append({"x": x.clone(), "H": H, **c})
    return out


def _bfgs_check(cls: type, ref: list[dict[str, Any]], fn: Any, x0: torch.Tensor, **kwargs: Any) -> BFGS:
    x = x0.clone().requires_grad_(True)
    opt = cls([x], **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss

    for want in ref:
        start = float(fn(x.detach()))
        loss = opt.step(closure)
        assert float(loss.detach()) == start  # the loss at the starting point, untransformed
        torch.testing.assert_close(x.detach(), want["x"], rtol=1e-9, atol=1e-12)
        report = opt.report()
        assert report == {k: want[k] for k in report}, (report, want)
        if want["H"] is not None:
            torch.testing.assert_close(opt.inverse_hessian(), want["H"], rtol=1e-8, atol=1e-10)
    return opt


def _small(x: torch.Tensor) -> torch.Tensor:
    return 0.01 * _smooth(x)  # |g|_1 < 1 at the start: the first trial step is lr itself, not lr / |g|_1


@pytest.mark.parametrize("fn", [_smooth, _small])
@pytest.mark.parametrize("cls", [BFGS, SSBFGS, SSBroyden])
def test_each_iteration_is_the_documented_quasi_newton_step(cls: type, fn: Any) -> None:
    x0 = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64)
    _, g0 = _value_grad(fn, x0)
    assert (float(g0.abs().sum()) > 1) == (fn is _smooth)
    ref = _bfgs_reference(fn, x0, cls.rule, 8)
    assert ref[-1]["updates"] >= 7
    _bfgs_check(cls, ref, fn, x0, max_iter=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_iter": 6, "lr": 0.5},
        {"max_iter": 50, "tolerance_change": 1e-3},
        {"max_iter": 50, "tolerance_grad": 1e-4},
        {"max_iter": 50, "max_eval": 7},
        {"max_iter": 50, "max_eval": 1},
        {"max_iter": 50, "max_eval": 2},
        {"max_iter": 50, "max_eval": 3, "lr": 40.0},
        {"max_iter": 4, "curvature_eps": 0.999999},
        {"max_iter": 4, "line_search_evals": 1},
        {"max_iter": 4, "curvature_eps": 0.9},
        {"max_iter": 4, "c1": 0.3, "c2": 0.4},
    ],
)
def test_the_stopping_rules_and_settings_follow_the_reference(kwargs: dict[str, Any]) -> None:
    x0 = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64)
    ref_kwargs = dict(kwargs)
    ref = _bfgs_reference(_smooth, x0, "ssbfgs", 3, **ref_kwargs)
    if kwargs.get("curvature_eps") == 0.999999:
        assert ref[0]["skipped"] == ref[0]["n_iter"] == 4  # every pair skipped, and iterations go on after each
    _bfgs_check(SSBFGS, ref, _smooth, x0, **kwargs)


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_loss_transforms_follow_the_reference(transform: str) -> None:
    def shifted(x: torch.Tensor) -> torch.Tensor:
        return _smooth(x) + 10.0  # > 0 everywhere near the path

    x0 = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64)
    ref = _bfgs_reference(shifted, x0, "ssbroyden", 5, transform=transform)
    _bfgs_check(SSBroyden, ref, shifted, x0, max_iter=1, loss_transform=transform)


def test_bfgs_defaults_and_settings() -> None:
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = BFGS([x])
    want = {
        "lr": 1.0,
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-12,
        "tolerance_change": 0.0,
        "c1": 1e-4,
        "c2": 0.9,
        "line_search_evals": 25,
        "curvature_eps": 1e-12,
        "loss_transform": None,
    }
    assert {k: opt.defaults[k] for k in want} == want
    assert opt.report() == dict.fromkeys(
        ("n_iter", "func_evals", "updates", "skipped", "resets", "wolfe_failures", "stalls"), 0
    )
    eye = opt.inverse_hessian()
    assert torch.equal(eye, torch.eye(3, dtype=F64))
    # the edges that are allowed
    BFGS([x], tolerance_grad=0.0, tolerance_change=0.0, curvature_eps=0.0, max_eval=1, c1=1e-9, c2=1 - 1e-9)
    BFGS([torch.zeros(10_000, dtype=F64, requires_grad=True)])  # MAX_PARAMS exactly
    BFGS([x], max_params=3)
    for kwargs, name in (
        ({"c1": 0.5, "c2": 0.5}, "c1 must be smaller"),
        ({"c1": 0.0}, "c1"),
        ({"c2": 1.0}, "c2"),
        ({"curvature_eps": 1.0}, "curvature_eps"),
        ({"tolerance_grad": -1.0}, "tolerance_grad"),
        ({"tolerance_change": -1.0}, "tolerance_change"),
        ({"line_search_evals": 0}, "line_search_evals"),
        ({"max_eval": 0}, "max_eval"),
        ({"max_params": 2}, "max_params"),
    ):
        with pytest.raises(ValueError, match=name):
            BFGS([x], **kwargs)
    with pytest.raises(ValueError, match="max_params=10000"):
        BFGS([torch.zeros(10_001, dtype=F64, requires_grad=True)])
    with pytest.raises(TypeError, match="real floating"):
        BFGS([torch.zeros(2, dtype=torch.int64)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BFGS([x])
        qn.check_dtypes("X", [torch.zeros(1, dtype=torch.float32)], warn_float32=False)
    assert caught == []


def test_the_inverse_hessian_is_a_copy_and_symmetrised_every_50_updates() -> None:
    x = torch.tensor([-1.2, 1.0, -1.2, 1.0, -1.2, 1.0, -1.2, 1.0], dtype=F64, requires_grad=True)
    opt = SSBroyden([x], max_iter=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()
        loss.backward()
        return loss

    asymmetric_before = 0
    while opt.report()["updates"] < 50:
        opt.step(closure)
        h = opt.inverse_hessian()
        if opt.report()["updates"] < 50:
            asymmetric_before += int(not torch.equal(h, h.T))
    assert opt.report()["updates"] == 50
    h = opt.inverse_hessian()
    assert torch.equal(h, h.T)  # symmetrised at exactly 50 updates
    assert asymmetric_before > 0  # (and not before: the drift is real)
    h.zero_()
    assert not torch.equal(opt.inverse_hessian(), h)


def test_retries_after_non_finite_trials_are_eight_ten_times_shorter_steps() -> None:
    # f = (x - 1)^2 from 0 with lr = 2e8: the first trial step is lr * min(1, 1 / |g|_1) = 1e8, at x = 2e8; with the
    # loss NaN beyond x = 25 the trials 1e8, 1e7, ..., 100 fail (seven) and the eighth, 10 (x = 20), brackets
    def run(wall: float, mode: str = "nan", **kwargs: Any) -> tuple[float, dict[str, int]]:
        x = torch.zeros(1, dtype=F64, requires_grad=True)
        opt = BFGS([x], lr=2e8, max_iter=1, **kwargs)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = ((x - 1.0) ** 2).sum()
            beyond = float(x.detach().abs().max()) > wall
            if beyond and mode == "nan":
                loss = loss * math.nan
            if beyond and mode == "inf":
                loss = loss + math.inf  # an infinite loss, a finite gradient
            loss.backward()
            if beyond and mode == "nan_grad":
                x.grad = torch.full_like(x, math.nan)  # a finite loss, a NaN gradient
            return loss

        opt.step(closure)
        return float(x.detach()), opt.report()

    moved, report = run(25.0)
    assert moved != 0.0
    assert abs(moved - 1.0) < 1.0
    assert report["stalls"] == 0
    assert report["func_evals"] >= 1 + 8
    # wall 2.5: the eighth trial (x = 20) fails too, so the search gives up: no move, a stall; an infinite loss
    # alone, or a NaN gradient alone, is a failed trial as well
    for mode in ("nan", "inf", "nan_grad"):
        still, report = run(2.5, mode)
        assert (still, report["stalls"], report["func_evals"]) == (0.0, 1, 1 + 8), mode
        moved_too, report = run(25.0, mode)
        assert (moved_too, report["func_evals"]) == (moved, run(25.0)[1]["func_evals"]), mode
    # a budget of 3 evaluations ends the retries early
    still, report = run(25.0, line_search_evals=3)
    assert still == 0.0
    assert report["stalls"] == 1
    assert report["func_evals"] == 1 + 3


def test_no_decrease_resets_then_stalls_with_the_point_restored() -> None:
    # after real steps, the closure turns flat (the same loss everywhere, a non-zero gradient): no step decreases
    # it, so the curvature is forgotten (a reset) and, along -g, the iteration stalls; the point is restored
    x = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    opt = BFGS([x], max_iter=1)
    flat = [False]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _smooth(x)
        if flat[0]:
            loss = (x * 1e-3).sum() - (x.detach() * 1e-3).sum() + 7.0  # 7 everywhere, gradient 1e-3
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    assert opt.report()["updates"] == 3
    before = x.detach().clone()
    flat[0] = True
    opt.param_groups[0]["max_iter"] = 5
    opt.step(closure)
    report = opt.report()
    assert (report["resets"], report["stalls"]) == (1, 1)
    assert torch.equal(x.detach(), before)
    assert torch.equal(opt.inverse_hessian(), torch.eye(4, dtype=F64))


def test_a_stale_matrix_without_decrease_resets_and_the_next_iteration_updates() -> None:
    # H = 1e-300 I: d = -H g is a descent direction, but no step the search tries moves x at all (no decrease), so
    # the curvature is forgotten and the second iteration of the same call steps along -g and updates H
    x = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    opt = SSBFGS([x], max_iter=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _smooth(x)
        loss.backward()
        return loss

    opt.step(closure)
    opt.state[x]["H"] = 1e-300 * torch.eye(4, dtype=F64)
    start = x.detach().clone()
    updates = opt.report()["updates"]
    opt.param_groups[0]["max_iter"] = 2
    opt.step(closure)
    report = opt.report()
    assert (report["resets"], report["stalls"], report["updates"]) == (1, 0, updates + 1)
    ref = _bfgs_reference(_smooth, start, "ssbfgs", 1)
    torch.testing.assert_close(x.detach(), ref[0]["x"], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(opt.inverse_hessian(), ref[0]["H"], rtol=1e-10, atol=1e-12)


def test_a_non_descent_direction_resets_to_the_identity() -> None:
    x = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    opt = SSBFGS([x], max_iter=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _smooth(x)
        loss.backward()
        return loss

    opt.step(closure)
    opt.step(closure)
    state = opt.state[x]
    state["H"] = -torch.eye(4, dtype=F64)  # a stored matrix that points uphill
    start = x.detach().clone()
    opt.step(closure)
    assert opt.report()["resets"] == 1
    # the step taken is the first-iteration one from here: along -g with t0 = min(1, 1 / |g|_1)
    ref = _bfgs_reference(_smooth, start, "ssbfgs", 1)
    torch.testing.assert_close(x.detach(), ref[0]["x"], rtol=1e-12, atol=1e-14)
    # a zero matrix gives d = 0, g^T d = 0: not a descent direction either
    opt.step(closure)
    state["H"] = torch.zeros(4, 4, dtype=F64)
    start = x.detach().clone()
    opt.step(closure)
    assert opt.report()["resets"] == 2
    ref = _bfgs_reference(_smooth, start, "ssbfgs", 1)
    torch.testing.assert_close(x.detach(), ref[0]["x"], rtol=1e-12, atol=1e-14)


def test_unused_parameters_have_zero_gradient_and_bad_gradients_are_refused() -> None:
    x = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    spare = torch.tensor([3.0], dtype=F64, requires_grad=True)
    opt = BFGS([x, spare], max_iter=3)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = _smooth(x)
        loss.backward()
        return loss

    opt.step(closure)
    assert spare.detach().tolist() == [3.0]
    assert spare.grad is None
    ref = _bfgs_reference(_smooth, x.detach().new_tensor([1.5, -1.0, 2.0, 0.5]), "bfgs", 1, max_iter=3)
    torch.testing.assert_close(x.detach(), ref[0]["x"], rtol=1e-10, atol=1e-12)

    y = torch.tensor([1.0], dtype=F64, requires_grad=True)
    bad = BFGS([y])

    def nan_grad() -> torch.Tensor:
        bad.zero_grad()
        loss = (y * 0.0).sum() + 1.0
        y.grad = torch.tensor([math.nan], dtype=F64)
        return loss

    with pytest.raises(NonFiniteGradientError, match="gradient"):
        bad.step(nan_grad)
    assert y.detach().tolist() == [1.0]


def test_starting_points_that_need_no_iteration() -> None:
    # max |g| equal to tolerance_grad stops (inclusive); a log-transformed zero loss stops too
    x = torch.tensor([1.5], dtype=F64, requires_grad=True)
    opt = BFGS([x], tolerance_grad=1.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((x - 1.0) ** 2).sum()  # g = 2 (x - 1) = 1
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 0.25
    assert x.detach().tolist() == [1.5]
    assert opt.report()["n_iter"] == 0
    assert opt.report()["func_evals"] == 1
    logged = BFGS([x], loss_transform="log")

    def zero_loss() -> torch.Tensor:
        logged.zero_grad()
        loss = (x * 0.0).sum() + (x - x.detach()).sum()  # 0, with gradient 1
        loss.backward()
        return loss

    logged.step(zero_loss)
    assert x.detach().tolist() == [1.5]
    assert logged.report()["n_iter"] == 0


def test_the_rule_names_and_loss_transforms_are_the_published_tuples() -> None:
    assert qn.UPDATES == tuple(cls.rule for cls in (BFGS, SSBFGS, SSBroyden)) == ("bfgs", "ssbfgs", "ssbroyden")
    assert qn.LOSS_TRANSFORMS == (None, "sqrt", "log")
    assert (qn.MAX_PARAMS, qn.SYMMETRIZE_EVERY) == (10_000, 50)


def test_energy_natural_gradient_stalls_when_no_damping_gives_a_finite_step() -> None:
    """``r = 1e300 + 1e-40 x``: every Gauss-Newton step ``J r / (J^2 + mu)`` overflows (it would need a damping of
    about 5.6e-49), and the search gives up once the damping passes its ceiling ``1e30 J^2 = 1e-50``. The damping
    starts at ``1e-3 J^2 = 1e-83`` and is multiplied by 2, 4, 8, ... on each rejection, so after ``k`` rejections it
    is ``1e-83 2^(k(k+1)/2)``: the first above ``1e-50`` is ``k = 15``. The run then counts one stall, leaves ``x`` as
    it was and spends no more residual evaluations."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = EnergyNaturalGradient([x], max_iter=100)
    opt.step(lambda: 1e300 + 1e-40 * x)
    report = opt.report()
    assert {k: report[k] for k in ("n_iter", "func_evals", "jacobians", "rejected", "stalls")} == {
        "n_iter": 15,
        "func_evals": 1,
        "jacobians": 1,
        "rejected": 15,
        "stalls": 1,
    }
    assert report["damping"] == pytest.approx(1e-83 * 2.0**120, rel=1e-12)
    assert x.item() == 0.0


def _bfgs_report_after(fn: Any, x0: list[float], steps: int, **settings: Any) -> tuple[dict[str, int], torch.Tensor]:
    x = torch.tensor(x0, dtype=F64, requires_grad=True)
    opt = ng.optim.quasi_newton.BFGS([x], **settings)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return opt.report(), x.detach()


def test_bfgs_counts_a_step_on_the_armijo_bound_as_a_wolfe_step() -> None:
    # f = x^2 / 2 from 1: the first step is t = 1 along -g, to 0, where f = 0 = f + c1 t g^T d with c1 = 1/2
    # exactly (the bound is met with equality, which passes), and the curvature condition holds (g' = 0)
    report, x = _bfgs_report_after(lambda x: 0.5 * (x * x).sum(), [1.0], 1, c1=0.5, c2=0.9, max_iter=1)
    assert x.tolist() == [0.0]
    assert report["wolfe_failures"] == 0


def test_bfgs_skips_the_update_when_the_gradient_does_not_change() -> None:
    # a linear loss: y = g' - g = 0, so s^T y = 0 is not above curvature_eps |s| |y| = 0: the update is skipped and
    # H stays the identity, in the parameters' dtype before the step as after it
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = ng.optim.quasi_newton.BFGS([x], max_iter=1)
    assert opt.inverse_hessian().dtype == F64
    assert torch.equal(opt.inverse_hessian(), torch.eye(2, dtype=F64))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -(x * torch.tensor([1.0, 3.0], dtype=F64)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    report = opt.report()
    assert (report["updates"], report["skipped"]) == (0, 1)
    assert torch.equal(opt.inverse_hessian(), torch.eye(2, dtype=F64))
    assert bool((x.detach() > 0).all())  # it moved along -g


def test_bfgs_a_step_on_the_curvature_bound_is_a_wolfe_step() -> None:
    # f = x^2 / 2 from 1 along -g, one trial at t = lr = 0.5 with c2 = 0.5: |g' d| = 0.5 = c2 |g d| exactly (the
    # curvature bound met with equality passes), and the Armijo bound holds: no Wolfe failure
    report, x = _bfgs_report_after(
        lambda x: 0.5 * (x * x).sum(), [1.0], 1, lr=0.5, c2=0.5, max_iter=1, line_search_evals=1
    )
    assert x.tolist() == [0.5]
    assert report["wolfe_failures"] == 0


def test_bfgs_counts_a_decrease_that_misses_the_armijo_bound_as_a_wolfe_failure() -> None:
    # f = x^4 / 4 from 1 along d = -g = -1 (g^T d = -1) with c1 = 0.45 and one line-search evaluation: the trial at
    # t = lr = 1.9 misses the Armijo bound, the one interpolated trial lands near the minimiser (f_new ~ 1e-6 < f =
    # 1/4) and is accepted as the search's best point. It meets the curvature bound (|g' d| = x'^3 ~ 1e-4 <= c2) but
    # not Armijo's f + c1 t g^T d (about -0.18), so it is one Wolfe failure, not a Wolfe step.
    report, x = _bfgs_report_after(
        lambda x: 0.25 * (x**4).sum(), [1.0], 1, lr=1.9, c1=0.45, c2=0.9, max_iter=1, line_search_evals=1
    )
    t = 1.0 - x.item()
    f_new = 0.25 * x.item() ** 4
    assert 0.0 < f_new < 0.25  # a decrease
    assert f_new > 0.25 - 0.45 * t  # above the Armijo bound
    assert abs(x.item()) ** 3 <= 0.9  # the curvature bound holds
    assert report["wolfe_failures"] == 1


def test_bfgs_state_counts_its_updates() -> None:
    x = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt = ng.optim.quasi_newton.BFGS([x], max_iter=5)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (x * x * torch.tensor([1.0, 3.0], dtype=F64)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    updates = opt.report()["updates"]
    assert updates >= 1
    assert opt.state[x]["n_updates"] == updates
