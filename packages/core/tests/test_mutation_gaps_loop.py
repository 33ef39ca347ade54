"""Exact tests that close the mutation-testing gaps of ``optim/lbfgs.py`` and ``loop_parts.py`` (issue 18).

Every check here is exact or to rounding (float64): the L-BFGS steps against a dense inverse-BFGS reference
written independently of the two-loop recursion, the first step's closed form on both sides of ``|g|_1 = 1``, the
pair test at its boundary, the memory's trimming, resets and counts, the documented defaults, and the
generator's reproducibility; no statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from noisygrad import FiniteSum, loop_parts
from noisygrad.estimators.base import Cost
from noisygrad.loop_parts import Blocking, FinalEstimate, IterateAveraging, Measurement, Projection
from noisygrad.optim.lbfgs import LBFGS, LBFGSResult, minimize_lbfgs

F64 = torch.float64

# ------------------------------------------------------------------------------------------------------ lbfgs


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-12, atol: float = 1e-15) -> None:
    """``|actual - expected| <= atol + rtol |expected|`` entrywise, same dtype and shape (torch.allclose's rule)."""
    assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), (actual, expected)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (actual, expected)


def _quadratic() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed SPD ``A`` (condition about 20) and ``b`` for ``f(x) = x^T A x / 2 - b^T x``."""
    v = torch.tensor([1.0, 2.0, -0.5, 0.7], dtype=F64)
    q = torch.eye(4, dtype=F64) - 2.0 * torch.outer(v, v) / float(v @ v)  # a Householder reflection (orthogonal)
    a = q @ torch.diag(torch.tensor([0.2, 0.9, 1.7, 4.0], dtype=F64)) @ q.T
    return a, torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)


def _closure_for(opt: LBFGS, w: torch.Tensor, grad_fn: Any, loss_fn: Any = None) -> Any:
    """A closure that sets ``w.grad = grad_fn(w)`` and returns ``loss_fn(w)`` (0.0 when not given)."""

    def closure() -> torch.Tensor:
        with torch.no_grad():
            w.grad = grad_fn(w.detach().clone())
            return torch.as_tensor(0.0 if loss_fn is None else loss_fn(w.detach().clone()), dtype=F64)

    return closure


def _dense_reference(
    grad_fn: Any, x0: torch.Tensor, lr: float, steps: int, history: int, damping: float = 0.0, eps: float = 1e-8
) -> list[torch.Tensor]:
    """The iterates of L-BFGS with ``H0 = (s^T y / y^T y) I`` (newest pair) and the dense inverse-BFGS updates.

    ``H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T`` over the kept pairs, oldest first; the first step (no
    pairs) is ``-lr * min(1, 1 / |g|_1) * g``; a pair is kept iff ``s^T y > eps |s| |y|``.
    """
    x, pairs, out = x0.clone(), [], []
    eye = torch.eye(x.numel(), dtype=F64)
    for _ in range(steps):
        g = grad_fn(x)
        d = None
        if pairs:
            s_new, y_new = pairs[-1]
            h = float(s_new @ y_new) / float(y_new @ y_new) * eye
            for s, y in pairs:
                rho = 1.0 / float(y @ s)
                v = eye - rho * torch.outer(y, s)
                h = v.T @ h @ v + rho * torch.outer(s, s)
            d = -(h @ g)
            if float(d @ g) >= 0:
                pairs, d = [], None
        if d is None:
            d = -g * min(1.0, 1.0 / float(g.abs().sum()))
        s = lr * d
        x = x + s
        y = grad_fn(x) - g + damping * s
        if float(s @ y) > eps * float(s.norm()) * float(y.norm()):
            pairs = [*pairs, (s, y)][-history:]
        out.append(x.clone())
    return out


@pytest.mark.parametrize(("history", "damping"), [(3, 0.0), (10, 0.0), (3, 0.25)])
def test_lbfgs_steps_equal_the_dense_inverse_bfgs_reference(history: int, damping: float) -> None:
    # Two-loop recursion == dense inverse-BFGS with H0 = gamma I from the newest pair (Nocedal and Wright, Alg. 7.4)
    a, b = _quadratic()

    def grad_fn(x: torch.Tensor) -> torch.Tensor:
        return a @ x - b

    x0 = torch.tensor([3.0, -1.0, 2.0, 0.5], dtype=F64)
    expected = _dense_reference(grad_fn, x0, lr=0.6, steps=9, history=history, damping=damping)
    w = x0.clone().requires_grad_(True)
    opt = LBFGS([w], lr=0.6, history_size=history, damping=damping)
    closure = _closure_for(opt, w, grad_fn)
    for k in range(9):
        opt.step(closure)
        _assert_close(w.detach(), expected[k], rtol=1e-10, atol=1e-12)
    assert opt.report() == {"accepted": 9, "skipped": 0, "resets": 0, "steps": 9}
    assert len(opt.state[w]["s"]) == min(history, 9)


def test_lbfgs_first_step_closed_form_on_both_sides_of_unit_l1_norm() -> None:
    # no curvature yet: lr * min(1, 1 / |g|_1) along -g (torch.optim.LBFGS's first step)
    for g, lr in ((torch.tensor([3.0, -1.0], dtype=F64), 0.5), (torch.tensor([0.125, -0.25], dtype=F64), 0.5)):
        w = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
        opt = LBFGS([w], lr=lr)
        loss = opt.step(_closure_for(opt, w, lambda x, g=g: g.clone(), lambda x: 7.5))
        step = -lr * g * min(1.0, 1.0 / float(g.abs().sum()))
        _assert_close(w.detach(), torch.tensor([1.0, 2.0], dtype=F64) + step, rtol=0, atol=1e-15)
        assert float(loss) == 7.5  # the loss at the starting point
        # a constant gradient: y = 0, s^T y = 0 is not > 0, so the pair is skipped
        assert opt.report() == {"accepted": 0, "skipped": 1, "resets": 0, "steps": 1}


def test_lbfgs_zero_gradient_takes_no_step_and_resets_the_memory() -> None:
    # with pairs in memory, a zero gradient gives direction 0, not a descent direction: the memory is forgotten
    w = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt = LBFGS([w], lr=0.5)
    opt.step(_closure_for(opt, w, lambda x: 2.0 * x))
    assert opt.report() == {"accepted": 1, "skipped": 0, "resets": 0, "steps": 1}
    before = w.detach().clone()
    opt.step(_closure_for(opt, w, lambda x: torch.zeros_like(x)))
    assert torch.equal(w.detach(), before)
    assert opt.state[w]["s"] == []
    assert opt.state[w]["y"] == []
    assert opt.report() == {"accepted": 1, "skipped": 1, "resets": 1, "steps": 2}
    # a zero gradient without memory: no step, no reset (the first-step rule gives 0), the pair is skipped
    fresh = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt2 = LBFGS([fresh])
    opt2.step(_closure_for(opt2, fresh, lambda x: torch.zeros_like(x)))
    assert torch.equal(fresh.detach(), torch.tensor([1.0, -2.0], dtype=F64))
    assert opt2.report() == {"accepted": 0, "skipped": 1, "resets": 0, "steps": 1}


def test_lbfgs_small_descent_product_is_not_a_reset() -> None:
    # direction @ grad = -g^T H g is negative but small (> -1): the memory stays
    a, _ = _quadratic()
    w = torch.tensor([0.01, -0.02, 0.0, 0.03], dtype=F64, requires_grad=True)
    opt = LBFGS([w], lr=0.3)
    closure = _closure_for(opt, w, lambda x: a @ x)
    for _ in range(3):
        opt.step(closure)
    assert opt.report() == {"accepted": 3, "skipped": 0, "resets": 0, "steps": 3}


@pytest.mark.parametrize(("eps", "kept"), [(0.59, True), (0.61, False)])
def test_lbfgs_pair_test_is_a_cosine_threshold(eps: float, kept: bool) -> None:
    # gradient M x with a non-symmetric M: y = M s, and cos(s, y) = 0.6 for this s (|s| = 0.5, |y| = 2.5)
    m = torch.tensor([[3.0, -4.0], [4.0, 3.0]], dtype=F64)  # 5 * rotation with cos 0.6
    g0 = torch.tensor([0.3, 0.4], dtype=F64)  # |g0|_1 = 0.7 < 1: s = -lr g0 with lr = 1, |s| = 0.5
    x0 = torch.linalg.solve(m, g0)
    w = x0.clone().requires_grad_(True)
    opt = LBFGS([w], lr=1.0, curvature_eps=eps)
    opt.step(_closure_for(opt, w, lambda x: m @ x))
    s = -g0
    assert math.isclose(float(s @ (m @ s)) / (float(s.norm()) * float((m @ s).norm())), 0.6, rel_tol=1e-12)
    assert opt.report()["accepted"] == int(kept)
    assert opt.report()["skipped"] == int(not kept)
    if kept:
        _assert_close(opt.state[w]["s"][0], s, rtol=0, atol=1e-15)
        _assert_close(opt.state[w]["y"][0], m @ s, rtol=0, atol=1e-14)


def test_lbfgs_zero_curvature_eps_skips_an_orthogonal_pair_and_damping_enters_y() -> None:
    # curvature_eps = 0 is allowed; a pair with s^T y == 0 exactly (a rotation by 90 degrees) is still skipped
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    w = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
    opt = LBFGS([w], lr=0.5, curvature_eps=0.0)
    opt.step(_closure_for(opt, w, lambda x: rot @ x))
    assert opt.report()["skipped"] == 1
    # damping 0.5 adds 0.5 s: s^T y = 0.5 |s|^2 > 0, kept, with y = rot s + 0.5 s exactly
    w2 = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
    opt2 = LBFGS([w2], lr=0.5, curvature_eps=0.0, damping=0.5)
    opt2.step(_closure_for(opt2, w2, lambda x: rot @ x))
    s = opt2.state[w2]["s"][0]
    _assert_close(s, torch.tensor([0.0, -0.5], dtype=F64), rtol=0, atol=0)
    _assert_close(opt2.state[w2]["y"][0], rot @ s + 0.5 * s, rtol=0, atol=0)


def test_lbfgs_memory_keeps_the_newest_pairs() -> None:
    a, b = _quadratic()
    w = torch.zeros(4, dtype=F64, requires_grad=True)
    opt = LBFGS([w], lr=0.3, history_size=2)
    steps: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        with torch.no_grad():
            w.grad = a @ w.detach() - b
        return torch.zeros((), dtype=F64)

    for _ in range(4):
        before = w.detach().clone()
        opt.step(closure)
        steps.append(w.detach() - before)
    kept = opt.state[w]["s"]
    assert len(kept) == 2
    assert len(opt.state[w]["y"]) == 2
    _assert_close(kept[0], steps[2], rtol=1e-12, atol=1e-15)
    _assert_close(kept[1], steps[3], rtol=1e-12, atol=1e-15)


def test_lbfgs_several_parameters_are_one_flat_vector() -> None:
    # a (2, 2) matrix and a vector of 3, one without a gradient: its gradient counts as zeros of its dtype
    a = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=F64, requires_grad=True)
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32, requires_grad=True)
    opt = LBFGS([v, a], lr=0.1)
    ga = torch.tensor([[0.1, -0.2], [0.05, 0.15]], dtype=F64)  # |g|_1 = 0.5: the step is -lr g

    def closure() -> torch.Tensor:
        a.grad = ga.clone()
        v.grad = None
        return torch.zeros(())

    opt.step(closure)
    _assert_close(a.detach(), torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=F64) - 0.1 * ga)
    assert torch.equal(v.detach(), torch.tensor([1.0, 2.0, 3.0]))
    assert opt.report()["skipped"] == 1  # constant gradient: y = 0
    # the flat gradient is float64 (v's zeros take v's dtype, float32, and a's gradient is float64)
    w = torch.tensor([1.0, 2.0], dtype=torch.float32, requires_grad=True)
    u = torch.tensor([0.0], dtype=F64, requires_grad=True)
    opt2 = LBFGS([w, u], lr=0.5)

    def closure2() -> torch.Tensor:
        with torch.no_grad():
            w.grad = 2.0 * w.detach()
        u.grad = None
        return torch.zeros(())

    opt2.step(closure2)
    assert opt2.state[w]["s"][0].dtype == F64


def test_lbfgs_documented_defaults_and_refusals() -> None:
    w = torch.zeros(2, requires_grad=True)
    opt = LBFGS([w])
    group = opt.param_groups[0]
    assert (group["lr"], group["history_size"], group["curvature_eps"], group["damping"]) == (1.0, 10, 1e-8, 0.0)
    assert opt.report() == {"accepted": 0, "skipped": 0, "resets": 0, "steps": 0}
    LBFGS([w], curvature_eps=0.0)  # the closed lower end
    LBFGS([w], curvature_eps=0.999)
    with pytest.raises(ValueError, match="curvature_eps"):
        LBFGS([w], curvature_eps=-1e-12)
    with pytest.raises(ValueError, match="damping"):
        LBFGS([w], damping=-1e-12)
    with pytest.raises(ValueError, match="lr"):
        LBFGS([w], lr=0.0)
    with pytest.raises(ValueError, match="single parameter group"):
        LBFGS([{"params": [w]}, {"params": [torch.zeros(1, requires_grad=True)]}])


def _least_squares(n: int = 40, d: int = 3) -> FiniteSum:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = x @ torch.tensor([1.0, -0.5, 0.25], dtype=F64) + 0.3 * torch.randn(n, generator=gen, dtype=F64)
    return FiniteSum(lambda w, xb, yb: 0.5 * ((xb @ w - yb) ** 2).mean(), (x, y))


def _manual_run(objective: FiniteSum, x0: torch.Tensor, b: int, steps: int, seed: int, **kw: Any) -> torch.Tensor:
    """minimize_lbfgs re-done with the class: a uniform batch per step from ``Generator().manual_seed(seed)``."""
    x = x0.clone().requires_grad_(True)
    opt = LBFGS([x], **kw)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = objective.batch(torch.randperm(objective.n_examples, generator=gen)[:b])

        def closure(batch: tuple[torch.Tensor, ...] = batch) -> torch.Tensor:
            loss = objective.loss(x, *batch)
            (x.grad,) = torch.autograd.grad(loss, x)
            return loss

        opt.step(closure)
    return x.detach()


def test_minimize_lbfgs_defaults_and_generator_equal_a_manual_run() -> None:
    objective = _least_squares()
    x0 = torch.tensor([0.5, 0.5, -0.5], dtype=F64)
    kept = x0.clone()
    torch.manual_seed(123)
    res = minimize_lbfgs(objective, x0, batch_size=8, steps=14)
    torch.manual_seed(456)  # torch's global generator plays no part
    again = minimize_lbfgs(objective, x0, batch_size=8, steps=14)
    assert torch.equal(res.x, again.x)
    assert torch.equal(x0, kept)  # the caller's x0 is not touched
    manual = _manual_run(objective, x0, 8, 14, seed=0, lr=1.0, history_size=10, curvature_eps=1e-8, damping=0.0)
    _assert_close(res.x, manual, rtol=1e-13, atol=1e-15)
    assert res.history == []
    assert res.nit == 14
    assert res.cost == Cost(examples=2 * 8 * 14)
    assert res.fun == objective.value(res.x)
    assert (res.pairs_accepted, res.pairs_skipped, res.resets) == (14, 0, 0)
    # each default matters on this run (so the comparison above pins each of them)
    for other in ({"history_size": 11}, {"damping": 1.0}, {"lr": 2.0}, {"seed": 1}):
        assert not torch.allclose(minimize_lbfgs(objective, x0, batch_size=8, steps=14, **other).x, res.x)
    explicit = dict(lr=0.5, history_size=3, curvature_eps=0.9, damping=0.1)
    res2 = minimize_lbfgs(objective, x0, batch_size=8, steps=9, seed=5, **explicit)  # type: ignore[arg-type]
    assert (res2.pairs_accepted, res2.pairs_skipped) == (7, 2)  # curvature_eps = 0.9 skips two of the nine pairs
    _assert_close(res2.x, _manual_run(objective, x0, 8, 9, 5, **explicit), rtol=1e-13, atol=1e-15)


def test_minimize_lbfgs_records_every_k_steps_and_takes_the_whole_set() -> None:
    objective = _least_squares()
    x0 = torch.zeros(3, dtype=F64)
    res = minimize_lbfgs(objective, x0, batch_size=40, steps=7, lr=0.5, record_every=3)  # batch = all 40 examples
    assert len(res.history) == 2
    xs = [_manual_run(objective, x0, 40, k, 0, lr=0.5) for k in (3, 6)]
    for h, x in zip(res.history, xs, strict=True):
        assert math.isclose(h, objective.value(x), rel_tol=1e-12)
    assert res.cost == Cost(examples=2 * 40 * 7)
    every = minimize_lbfgs(objective, x0, batch_size=40, steps=3, lr=0.5, record_every=1)
    assert len(every.history) == 3
    assert res.skipped_fraction == 0.0


def test_minimize_lbfgs_refuses_a_bad_x0_by_name() -> None:
    with pytest.raises(ValueError, match=r"^x0 must be a non-empty 1-D array"):
        minimize_lbfgs(_least_squares(), [[0.0, 0.0, 0.0]], batch_size=4, steps=1)


def test_lbfgs_result_defaults_and_skipped_fraction() -> None:
    r = LBFGSResult(torch.zeros(1), 0.0, 0, Cost(), 0, 0, 0)
    assert r.history == []
    assert r.skipped_fraction == 0.0
    assert LBFGSResult(torch.zeros(1), 0.0, 4, Cost(), 3, 1, 0).skipped_fraction == 0.25
    assert LBFGSResult(torch.zeros(1), 0.0, 4, Cost(), 0, 4, 0).skipped_fraction == 1.0


# ------------------------------------------------------------------------------------------------- loop_parts


class _Recorder:
    """A :data:`Measure` that returns fixed values (and standard errors) and keeps the points it was given."""

    def __init__(self, values: list[float], stderr: list[float] | None = None) -> None:
        self.values, self.stderr = values, stderr
        self.points: list[torch.Tensor] = []

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> Measurement:
        self.points.append(points.clone())
        k = points.shape[0]
        values = torch.tensor(self.values[:k], dtype=F64)
        stderr = None if self.stderr is None else torch.tensor(self.stderr[:k], dtype=F64)
        return Measurement(values, stderr, Cost(evaluations=k))


def test_measure_alias_and_frozen_parts() -> None:
    assert loop_parts.Measure == Callable[[torch.Tensor, torch.Generator], Measurement]
    parts = [Projection(0.0, 1.0), Blocking(allowed_increase=0.0), IterateAveraging(2), FinalEstimate()]
    for part, field_name in zip(parts, ("low", "sigmas", "last", "repeats"), strict=True):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, field_name, 3)
    # tensors in the bounds: == is identity, so comparing two projections never asks a tensor for its truth value
    p = Projection(torch.zeros(2), torch.ones(2))
    assert p == p
    assert p != Projection(torch.zeros(2), torch.ones(2))


def test_projection_bounds_checks_at_their_edges() -> None:
    Projection(1.0, 1.0)  # low == high is a box (a point)
    Projection(0, 2)  # integer bounds
    Projection(torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1.0, 2.0]))
    assert torch.equal(
        Projection(0, 2).project(torch.tensor([-1.0, 3.0], dtype=F64)), torch.tensor([0.0, 2.0], dtype=F64)
    )
    with pytest.raises(ValueError, match="low <= high"):
        Projection(math.nan, 1.0)
    with pytest.raises(ValueError, match="low <= high"):
        Projection(0.0, torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="low <= high"):
        Projection(torch.tensor([0.0, 2.0]), 1.5)
    for bad in (True, torch.tensor([1 + 1j])):
        with pytest.raises(TypeError, match="real numbers"):
            Projection(bad, 2.0)
        with pytest.raises(TypeError, match="real numbers"):
            Projection(-2.0, bad)
    with pytest.raises(TypeError, match="high must be a number or a tensor"):
        Projection(0.0, "one")


def test_projection_check_accepts_exactly_the_broadcastable_bounds() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    for shape in ((), (3,), (1,), (2, 1), (2, 3), (1, 3)):
        Projection(torch.zeros(shape), torch.ones(shape)).check(x)
        Projection(-1.0, torch.ones(shape)).check(x)
    Projection(torch.zeros(3), 1.0).check(torch.zeros(3))  # as many dimensions as the parameters
    for shape in ((2,), (1, 2, 3), (3, 3), (2, 2)):
        with pytest.raises(ValueError, match="projection's low has shape"):
            Projection(torch.zeros(shape), 1.0).check(x)
        with pytest.raises(ValueError, match="projection's high has shape"):
            Projection(-1.0, torch.ones(shape)).check(x)


def test_projection_clamps_in_the_parameters_dtype() -> None:
    # bounds are cast to x's dtype: 0.1 and 0.7 in float64 exactly (not their float32 roundings)
    x = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    assert torch.equal(Projection(0.1, 0.7).project(x), torch.tensor([0.1, 0.5, 0.7], dtype=F64))
    x32 = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float32)
    out = Projection(torch.tensor(0.1, dtype=F64), torch.tensor(0.7, dtype=F64)).project(x32)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([0.1, 0.5, 0.7], dtype=torch.float32))
    per = Projection(torch.tensor([0.0, -1.0, 0.2]), torch.tensor([0.0, 1.0, 2.0])).project(x)
    assert torch.equal(per, torch.tensor([0.0, 0.5, 1.0], dtype=F64))


def test_blocking_defaults_and_normalised_configuration() -> None:
    assert Blocking() == Blocking(None, None, 2.0)
    b = Blocking(allowed_increase=1, sigmas=3)
    assert type(b.allowed_increase) is float
    assert b.allowed_increase == 1.0
    assert type(b.sigmas) is float
    assert b.sigmas == 3.0
    assert Blocking(allowed_increase=0).allowed_increase == 0.0  # zero is allowed
    with pytest.raises(ValueError, match="allowed_increase"):
        Blocking(allowed_increase=-1e-12)


def test_blocking_sigma_rule_states_and_details_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64)  # 3 entries: a (1, 3) row, never (2, ...) or (3, 1)
    block = Blocking(sigmas=3.0)
    m0 = _Recorder([1.0], [0.3])
    state, cost = block.init(x, gen, m0)
    assert state == {"reference": 1.0, "stderr": 0.3, "rejected": 0}
    assert cost == Cost(evaluations=1)
    assert len(m0.points) == 1
    assert torch.equal(m0.points[0], x.reshape(1, 3))
    allowed = 3.0 * math.hypot(0.4, 0.3)  # 1.5 (to rounding)
    # a rise of exactly the allowance is accepted (<=); the state takes the new value and standard error
    accepted, new, details, cost = block.judge(x + 1, state, gen, _Recorder([1.0 + allowed], [0.4]))
    assert accepted is True
    assert cost == Cost(evaluations=1)
    assert details == {"measured": 1.0 + allowed, "reference": 1.0, "allowed": allowed}
    assert new == {"reference": 1.0 + allowed, "stderr": 0.4, "rejected": 0}
    # a larger rise is rejected: reference and stderr stay, one more rejection
    accepted, rejected_state, details, _ = block.judge(x + 1, state, gen, _Recorder([1.0 + allowed + 1e-9], [0.4]))
    assert accepted is False
    assert rejected_state == {"reference": 1.0, "stderr": 0.3, "rejected": 1}
    assert details["allowed"] == allowed
    accepted, again, _, _ = block.judge(x + 1, rejected_state, gen, _Recorder([9.0], [0.4]))
    assert accepted is False
    assert again["rejected"] == 2
    # a fall below the reference minus the allowance is accepted (the rule is value <= reference + allowed)
    assert block.judge(x, state, gen, _Recorder([1.0 - 1.2], [0.4]))[0] is True
    assert state == {"reference": 1.0, "stderr": 0.3, "rejected": 0}  # the caller's state is not mutated


def test_blocking_fixed_allowance_without_standard_errors() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([0.5, -0.5, 2.0], dtype=F64)
    block = Blocking(allowed_increase=0.5)
    state, _ = block.init(x, gen, _Recorder([2.0]))  # no standard errors: 0.0 in the state
    assert state == {"reference": 2.0, "stderr": 0.0, "rejected": 0}
    accepted, new, details, _ = block.judge(x, state, gen, _Recorder([2.5]))
    assert accepted is True
    assert details == {"measured": 2.5, "reference": 2.0, "allowed": 0.5}
    assert new == {"reference": 2.5, "stderr": 0.0, "rejected": 0}
    assert block.judge(x, state, gen, _Recorder([2.5 + 1e-12]))[0] is False
    # standard errors given with a fixed allowance: the allowance is used, the stderr is kept
    accepted, new, details, _ = Blocking(allowed_increase=0.0).judge(x, state, gen, _Recorder([2.0], [0.7]))
    assert accepted is True
    assert details["allowed"] == 0.0
    assert new["stderr"] == 0.7
    with pytest.raises(ValueError, match="no standard errors"):
        Blocking(sigmas=1.0).init(x, gen, _Recorder([2.0]))


def test_iterate_averaging_keeps_the_last_copies() -> None:
    avg = IterateAveraging(2)
    state = avg.init()
    assert state == {"tail": []}
    x = torch.tensor([9.0, 9.0], dtype=F64)
    assert avg.point(x, state) is x  # no accepted iterate: the current point
    xs = [torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([3.0, 6.0], dtype=F64), torch.tensor([5.0, 4.0], dtype=F64)]
    for xi in xs:
        state = avg.observe(xi, state)
    assert len(state["tail"]) == 2
    xs[2].add_(100.0)  # the state holds copies
    assert torch.equal(state["tail"][1], torch.tensor([5.0, 4.0], dtype=F64))
    assert torch.equal(avg.point(x, state), torch.tensor([4.0, 5.0], dtype=F64))
    assert IterateAveraging(np.int64(3)).last == 3
    assert type(IterateAveraging(np.int64(3)).last) is int


def test_final_estimate_single_and_repeated_measurements() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([1.0, -1.0, 0.5], dtype=F64)
    assert FinalEstimate().repeats == 1
    assert FinalEstimate().measure is None
    assert type(FinalEstimate(repeats=np.int64(2)).repeats) is int
    one = _Recorder([2.5], [0.25])
    assert FinalEstimate().estimate(x, gen, one) == (2.5, 0.25, Cost(evaluations=1))
    assert torch.equal(one.points[0], x.reshape(1, 3))
    assert FinalEstimate().estimate(x, gen, _Recorder([2.5])) == (2.5, None, Cost(evaluations=1))
    three = _Recorder([1.0, 2.0, 6.0], [9.0, 9.0, 9.0])
    value, stderr, cost = FinalEstimate(repeats=3).estimate(x, gen, three)
    assert torch.equal(three.points[0], x.reshape(1, 3).repeat(3, 1))
    # mean 3, unbiased standard deviation sqrt(7), standard error sqrt(7 / 3); the measure's own errors unused
    assert value == 3.0
    assert math.isclose(stderr, math.sqrt(7.0 / 3.0), rel_tol=1e-15)
    assert cost == Cost(evaluations=3)
    two = FinalEstimate(repeats=2).estimate(x, gen, _Recorder([1.0, 3.0]))
    assert two[0] == 2.0
    assert math.isclose(two[1], 1.0, rel_tol=1e-15)
