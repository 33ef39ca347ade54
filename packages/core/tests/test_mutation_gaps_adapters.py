"""Exact tests that close the mutation-testing gaps of ``adapters/scipy_minimize.py`` and ``adapters/torch_optim.py``
(issue 18).

``Minimizer`` is run with plain SGD on ``f(x) = |x|^2 / 2`` (or a shifted copy), whose iterates have the closed form
``x_k = (1 - lr)^k x_0``: with an exact ``jac`` the checks are exact to rounding, and with the default central
differences (step ``1e-6``, exact for a quadratic up to rounding) to ``1e-8``. The counts (``nfev``, ``njev``,
calls of ``fun``), statuses, bounds, refusals and defaults are exact. ``TorchOptimizer`` is checked against
``torch.optim`` twins and closed forms, bit for bit. No statistical claim is made, so there is no Monte-Carlo
tolerance.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.optimize as so
import torch

import noisygrad as ng
from noisygrad.adapters import scipy_minimize as sm
from noisygrad.adapters import torch_optim as to

# ------------------------------------------------------------------------------------------------ Minimizer


def _half_square(x: np.ndarray) -> float:
    return float(0.5 * (x**2).sum())


def _identity_grad(x: np.ndarray) -> np.ndarray:
    return np.array(x, dtype=np.float64)


class _Counted:
    """``fun`` that counts its calls and remembers every point it saw (copies)."""

    def __init__(self, fun: Any) -> None:
        self.fun, self.calls, self.points = fun, 0, []

    def __call__(self, x: np.ndarray, *args: object) -> Any:
        self.calls += 1
        self.points.append(np.array(x, copy=True))
        return self.fun(x, *args)


def test_minimizer_defaults_are_100_steps_and_seed_0() -> None:
    m = ng.Minimizer(ng.SGD(0.1))
    assert (m.maxiter, m.seed, m.callback) == (100, 0, None)
    result = m(_half_square, np.array([1.0, -2.0]), jac=_identity_grad)
    assert result.nit == 100
    assert len(result.history) == 100
    expected = 0.9**100 * np.array([1.0, -2.0])
    np.testing.assert_allclose(result.x, expected, rtol=1e-12)
    assert ng.Minimizer(ng.SGD(0.1), seed=0).seed == 0  # seed 0 is allowed
    with pytest.raises(ValueError, match="seed"):
        ng.Minimizer(ng.SGD(0.1), seed=-1)
    with pytest.raises(ValueError, match="maxiter"):
        ng.Minimizer(ng.SGD(0.1), maxiter=0)


def test_minimizer_default_gradient_is_central_differences_with_exact_counts() -> None:
    fun = _Counted(_half_square)
    x0 = np.array([1.0, -2.0, 0.5])
    result = ng.Minimizer(ng.SGD(0.25), maxiter=3)(fun, x0)
    # 3 steps of 2n = 6 evaluations, fun at x (1), the result's jac (6): 25
    assert result.nfev == fun.calls == 3 * 6 + 1 + 6
    assert result.njev == 3 + 1
    np.testing.assert_allclose(result.x, 0.75**3 * x0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result.jac, 0.75**3 * x0, rtol=0, atol=1e-8)
    assert result.fun == pytest.approx(_half_square(0.75**3 * x0), abs=1e-9)
    assert type(result.fun) is np.float64
    assert [h["nit"] for h in result.history] == [1, 2, 3]
    assert [h["nfev"] for h in result.history] == [6, 12, 18]
    norms = [h["grad_norm"] for h in result.history]
    np.testing.assert_allclose(norms, [0.75**k * np.linalg.norm(x0) for k in range(3)], rtol=1e-7)
    assert (result.status, result.success, result.message) == (0, True, "Took all 3 steps of SGD.")


def test_minimizer_with_jac_counts_and_iterates_exactly() -> None:
    fun, jac = _Counted(_half_square), _Counted(_identity_grad)
    x0 = np.array([2.0, -1.0])
    result = ng.Minimizer(ng.SGD(0.5), maxiter=4)(fun, x0, jac=jac)
    np.testing.assert_array_equal(result.x, 0.5**4 * x0)
    np.testing.assert_array_equal(result.jac, 0.5**4 * x0)
    assert result.fun == _half_square(0.5**4 * x0)
    assert (result.nfev, fun.calls) == (1, 1)  # only fun at the returned x
    assert (result.njev, jac.calls) == (5, 5)  # one per step, one for the result's jac
    assert [h["nfev"] for h in result.history] == [0, 0, 0, 0]
    np.testing.assert_array_equal(x0, [2.0, -1.0])  # the caller's x0 is not touched


def test_jac_true_calls_fun_once_per_point_and_counts_value_requests() -> None:
    def pair(x: np.ndarray) -> tuple[float, np.ndarray]:
        return _half_square(x), np.array(x)

    fun = _Counted(pair)
    x0 = np.array([1.0, 3.0])
    result = ng.Minimizer(ng.SGD(0.5), maxiter=3)(fun, x0, jac=True)
    np.testing.assert_array_equal(result.x, 0.125 * x0)
    # points x0, x1, x2 for the steps, x3 for the value and the result's jac: one call each
    assert fun.calls == 4
    assert (result.nfev, result.njev) == (1, 4)
    np.testing.assert_array_equal(result.jac, 0.125 * x0)
    assert result.fun == _half_square(0.125 * x0)
    # the memo: value then gradient at one point is one call; a new point is a new call
    memo = sm._ValueAndGradient(_Counted(pair))
    assert memo.x is None
    assert memo.pair == (None, None)
    assert memo.value(np.array([2.0])) == 2.0
    np.testing.assert_array_equal(memo.gradient(np.array([2.0])), [2.0])
    assert memo.fun.calls == 1
    assert memo.gradient(np.array([4.0]))[0] == 4.0
    assert memo.fun.calls == 2
    assert memo.value(np.array([4.0])) == 8.0
    assert memo.fun.calls == 2
    assert memo.value(np.array([2.0])) == 2.0
    assert memo.fun.calls == 3
    # a list pair works; a 3-tuple or a scalar is refused
    assert sm._ValueAndGradient(lambda x: [1.0, x]).value(np.zeros(1)) == 1.0
    for bad in (lambda x: (1.0, x, x), lambda x: 1.0):
        with pytest.raises(TypeError, match="jac=True"):
            sm._ValueAndGradient(bad).value(np.zeros(1))


def test_the_memo_keeps_a_copy_of_the_point() -> None:
    fun = _Counted(lambda x: (float(x[0]), x.copy()))
    memo = sm._ValueAndGradient(fun)
    x = np.array([1.0])
    memo.value(x)
    x[0] = 5.0  # the caller reuses its array: the memo must see a new point
    assert memo.value(x) == 5.0
    assert fun.calls == 2


def test_scipy_minimize_with_jac_true_matches_the_closed_form() -> None:
    result = so.minimize(
        lambda x: (_half_square(x), np.array(x)),
        np.array([4.0]),
        jac=True,
        method=ng.Minimizer(ng.SGD(0.25), maxiter=2),
    )
    np.testing.assert_array_equal(result.x, [4.0 * 0.75**2])
    assert result.nit == 2


def test_jac_strings_and_false_mean_the_gradient_estimator() -> None:
    x0 = np.array([1.0, -1.0])
    reference = ng.Minimizer(ng.SGD(0.1), maxiter=2)(_half_square, x0)
    for jac in (None, False, "2-point", "3-point", "cs"):
        result = ng.Minimizer(ng.SGD(0.1), maxiter=2)(_half_square, x0, jac=jac)
        np.testing.assert_array_equal(result.x, reference.x)
        assert result.nfev == reference.nfev == 2 * 4 + 1 + 4
    for jac in ("XX2-point", "finite", 3):
        with pytest.raises(TypeError, match="jac"):
            ng.Minimizer(ng.SGD(0.1), maxiter=2)(_half_square, x0, jac=jac)


def test_a_custom_gradient_factory_is_used_and_seeded() -> None:
    seen = []

    def factory(objective: ng.NoisyBlackBox) -> Any:
        seen.append(objective)
        return ng.SPSA(objective, c=0.1)

    x0 = np.array([1.0, 2.0, 3.0])
    a = ng.Minimizer(ng.SGD(0.1), maxiter=3, gradient=factory, seed=7)(_half_square, x0)
    b = ng.Minimizer(ng.SGD(0.1), maxiter=3, gradient=factory, seed=7)(_half_square, x0)
    assert len(seen) == 2
    assert isinstance(seen[0], ng.NoisyBlackBox)
    np.testing.assert_array_equal(a.x, b.x)  # same seed, same bits
    c = ng.Minimizer(ng.SGD(0.1), maxiter=3, gradient=factory, seed=8)(_half_square, x0)
    assert not np.array_equal(a.x, c.x)  # another seed, other Rademacher draws
    # SPSA: 2 evaluations per step and for the result's jac, 1 for fun at x
    assert a.nfev == 3 * 2 + 1 + 2
    assert a.njev == 4


def test_bounds_as_pairs_and_as_scipy_bounds() -> None:
    x0 = torch.tensor([0.0, 5.0, -5.0], dtype=torch.float64)
    low, high = sm.box_from_bounds([(None, 1.0), (-1.0, None), (-2.0, 2.0)], x0)
    assert low.dtype == high.dtype == torch.float64
    assert low.tolist() == [-math.inf, -1.0, -2.0]
    assert high.tolist() == [1.0, math.inf, 2.0]
    low, high = sm.box_from_bounds(so.Bounds(-1.0, [1.0, 2.0, 3.0]), x0)
    assert low.tolist() == [-1.0, -1.0, -1.0]
    assert high.tolist() == [1.0, 2.0, 3.0]
    low, high = sm.box_from_bounds(so.Bounds([0.0, 1.0, 2.0], np.inf), x0)
    assert low.tolist() == [0.0, 1.0, 2.0]
    assert high.tolist() == [math.inf] * 3
    # low == high is a fixed parameter, allowed
    low, high = sm.box_from_bounds([(1.0, 1.0)] * 3, x0)
    assert low.tolist() == high.tolist() == [1.0, 1.0, 1.0]
    assert sm.box_from_bounds(None, x0) is None
    assert sm.box_from_bounds([(0, 1)] * 3, x0.float())[0].dtype == torch.float32
    for bad in ([(2.0, 1.0)] * 3, [(math.nan, 1.0)] * 3, [(0.0, math.nan)] * 3, so.Bounds(1.0, 0.0)):
        with pytest.raises(ValueError, match="low <= high"):
            sm.box_from_bounds(bad, x0)
    with pytest.raises(ValueError, match="one \\(low, high\\) pair per parameter"):
        sm.box_from_bounds([(0.0, 1.0)] * 2, x0)
    # a scipy Bounds holding None (an object array) is read as float64 (None -> NaN) and refused naming bounds
    for bad in (so.Bounds(0.0, np.array([None] * 3)), so.Bounds(np.array([None] * 3), 1.0)):
        with pytest.raises(ValueError, match="bounds must satisfy"):
            sm.box_from_bounds(bad, x0)
    with pytest.raises(ValueError, match="one \\(low, high\\) pair per parameter"):
        sm.box_from_bounds([(0.0, 1.0), (0.0, 1.0), (0.0, 1.0, 2.0)], x0)
    with pytest.raises(TypeError, match=r"bounds must be .* pairs, got list"):  # names what it got
        sm.box_from_bounds([1.0, 2.0, 3.0], x0)
    with pytest.raises(ValueError, match="must broadcast"):
        sm.box_from_bounds(so.Bounds([0.0, 0.0], [1.0, 1.0]), x0)


def test_bounds_project_x0_and_every_iterate() -> None:
    fun = _Counted(_half_square)
    result = ng.Minimizer(ng.SGD(0.5), maxiter=2)(
        fun, np.array([3.0, -3.0]), jac=_identity_grad, bounds=[(2.0, 4.0), (None, None)]
    )
    # x0 -> (2, -3); steps: (1 -> projected 2, -1.5), (2, -0.75)
    np.testing.assert_array_equal(result.x, [2.0, -0.75])
    assert fun.points[-1].tolist() == [2.0, -0.75]


def test_scalar_value_takes_real_numbers_and_size_one_arrays() -> None:
    assert sm.scalar_value(np.array([[2.5]])) == 2.5
    assert sm.scalar_value(np.float32(1.5)) == 1.5
    assert sm.scalar_value(3) == 3.0
    assert sm.scalar_value(np.uint8(4)) == 4.0
    assert sm.scalar_value(True) == 1.0
    assert type(sm.scalar_value(np.int64(2))) is float
    with pytest.raises(ValueError, match="scalar"):
        sm.scalar_value(np.zeros(2))
    with pytest.raises(ValueError, match="scalar"):
        sm.scalar_value(np.zeros(0))
    for bad in ("a", 1j, np.array([1 + 2j]), None):
        with pytest.raises(TypeError, match="real number"):
            sm.scalar_value(bad)


def test_jac_shape_complex_and_counts_are_checked() -> None:
    x0 = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="complex"):
        ng.Minimizer(ng.SGD(0.1), maxiter=1)(_half_square, x0, jac=lambda x: x + 0j)
    with pytest.raises(ValueError, match="shape"):
        ng.Minimizer(ng.SGD(0.1), maxiter=1)(_half_square, x0, jac=lambda x: np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        ng.Minimizer(ng.SGD(0.1), maxiter=1)(_half_square, x0, jac=lambda x: np.zeros((2, 1)))
    received = []

    def jac(x: np.ndarray) -> np.ndarray:
        received.append(x)
        out = x.copy()
        x[:] = 99.0  # scribbling on its argument must not move the iterate
        return out

    result = ng.Minimizer(ng.SGD(0.5), maxiter=2)(_half_square, x0, jac=jac)
    np.testing.assert_array_equal(result.x, 0.25 * x0)
    assert all(r.dtype == np.float64 for r in received)
    grad = sm._Jacobian(ng.NoisyBlackBox(lambda p, g: p.sum(1)), lambda x: [1, 2], (), {"njev": 0})
    out = grad.gradient(torch.zeros(2, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert out.tolist() == [1.0, 2.0]
    assert grad.counts == {"njev": 1}


def test_a_nan_gradient_during_the_run_raises_and_at_the_end_is_reported() -> None:
    with pytest.raises(ng.NonFiniteGradientError):
        ng.Minimizer(ng.SGD(0.1), maxiter=2)(_half_square, np.ones(2), jac=lambda x: np.full(2, np.nan))
    # the result's jac by the estimator: NaN of size n when the estimate at x is not finite (status 2)
    result = ng.Minimizer(ng.SGD(1.0), maxiter=1)(
        lambda x: math.nan if x[0] == 0.0 else _half_square(x), np.array([1.0, 1.0]), jac=_identity_grad
    )
    assert result.status == 2
    assert not result.success
    assert math.isnan(result.fun)
    assert result.message == sm.STATUS_MESSAGES[2]
    est = ng.CentralDifference(ng.NoisyBlackBox(lambda p, g: torch.full((len(p),), math.nan, dtype=p.dtype)))
    counts = {"njev": 0}
    jac = sm._gradient_at(torch.zeros(3, dtype=torch.float64), est, torch.Generator().manual_seed(0), counts)
    assert jac.shape == (3,)
    assert np.isnan(jac).all()
    assert counts == {"njev": 1}


def test_scipy_callbacks_both_forms_and_stop_iteration() -> None:
    x0 = np.array([2.0, -2.0])
    seen: list[Any] = []

    def modern(intermediate_result: so.OptimizeResult) -> None:
        seen.append(dict(intermediate_result))

    fun = _Counted(_half_square)
    result = ng.Minimizer(ng.SGD(0.5), maxiter=2)(fun, x0, jac=_identity_grad, callback=modern)
    assert [s["nit"] for s in seen] == [1, 2]
    np.testing.assert_array_equal(seen[0]["x"], 0.5 * x0)
    np.testing.assert_array_equal(seen[0]["jac"], x0)  # the gradient the step used
    assert seen[0]["fun"] == _half_square(0.5 * x0)
    assert type(seen[0]["fun"]) is np.float64
    assert [s["nfev"] for s in seen] == [1, 2]
    assert [s["njev"] for s in seen] == [1, 2]
    assert result.nfev == fun.calls == 3
    # the legacy form gets x only, and no extra evaluation
    legacy: list[np.ndarray] = []
    fun = _Counted(_half_square)
    result = ng.Minimizer(ng.SGD(0.5), maxiter=2)(fun, x0, jac=_identity_grad, callback=legacy.append)
    assert len(legacy) == 2
    assert legacy[1].tolist() == (0.25 * x0).tolist()
    assert result.nfev == fun.calls == 1

    def stop(xk: np.ndarray) -> None:
        raise StopIteration

    result = ng.Minimizer(ng.SGD(0.5), maxiter=5)(_half_square, x0, jac=_identity_grad, callback=stop)
    assert (result.nit, result.status, result.success) == (1, 99, False)
    assert result.message == sm.STATUS_MESSAGES[99]
    np.testing.assert_array_equal(result.x, 0.5 * x0)
    with pytest.raises(TypeError, match="callback"):
        ng.Minimizer(ng.SGD(0.5), maxiter=1)(_half_square, x0, callback=3)
    # the callback's own exceptions pass through
    with pytest.raises(KeyError):
        ng.Minimizer(ng.SGD(0.5), maxiter=1)(_half_square, x0, callback=lambda xk: {}["a"])


def test_scipy_callback_rule() -> None:
    def modern(intermediate_result: Any) -> None: ...

    def two(intermediate_result: Any, other: Any = None) -> None: ...

    def legacy(xk: Any) -> None: ...

    assert sm._ScipyCallback(modern).wants_value is True
    assert sm._ScipyCallback(two).wants_value is False
    assert sm._ScipyCallback(legacy).wants_value is False
    assert sm._ScipyCallback(print).wants_value is False
    # a builtin without a signature (max) is a legacy callback(xk): it gets x and the run goes on
    assert sm._ScipyCallback(max).wants_value is False
    result = ng.Minimizer(ng.SGD(0.5), maxiter=2)(_half_square, np.array([1.0, 2.0]), jac=_identity_grad, callback=max)
    assert (result.nit, result.status) == (2, 0)


def test_the_result_jac_by_an_estimator_is_float64() -> None:
    class Float32Gradient:
        def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Any:
            return ng.Estimate(torch.tensor([0.5, -1.5], dtype=torch.float32), None, ng.Cost())

    counts = {"njev": 0}
    jac = sm._gradient_at(torch.zeros(2, dtype=torch.float64), Float32Gradient(), torch.Generator(), counts)
    assert jac.dtype == np.float64
    assert jac.tolist() == [0.5, -1.5]
    assert counts == {"njev": 1}


def test_the_constructor_callback_gets_step_x_and_the_estimate() -> None:
    calls: list[tuple[int, list[float], Any]] = []
    x0 = np.array([1.0, 2.0])
    ng.Minimizer(ng.SGD(0.5), maxiter=2, callback=lambda k, x, v: calls.append((k, x.tolist(), v)))(
        _half_square, x0, jac=_identity_grad
    )
    assert calls == [(1, [0.5, 1.0], None), (2, [0.25, 0.5], None)]
    with pytest.raises(TypeError, match="callback"):
        ng.Minimizer(ng.SGD(0.5), callback=1)
    with pytest.raises(TypeError, match="optimizer"):
        ng.Minimizer(torch.optim.SGD)


def test_args_a_lone_argument_becomes_a_one_tuple() -> None:
    def fun(x: np.ndarray, centre: float) -> float:
        return float(0.5 * ((x - centre) ** 2).sum())

    def jac(x: np.ndarray, centre: float) -> np.ndarray:
        return x - centre

    result = ng.Minimizer(ng.SGD(0.5), maxiter=1)(fun, np.array([3.0]), jac=jac, args=1.0)
    np.testing.assert_array_equal(result.x, [2.0])
    result = ng.Minimizer(ng.SGD(0.5), maxiter=1)(fun, np.array([3.0]), jac=jac, args=(1.0,))
    np.testing.assert_array_equal(result.x, [2.0])


def test_refusals_and_options() -> None:
    m = ng.Minimizer(ng.SGD(0.5), maxiter=3)
    x0 = np.array([1.0])
    for constraints in (None, (), []):
        assert m(_half_square, x0, jac=_identity_grad, constraints=constraints).nit == 3
    with pytest.raises(ValueError, match="constraints"):
        m(_half_square, x0, constraints=[{"type": "eq", "fun": _half_square}])
    with pytest.raises(ValueError, match="constraints"):
        m(_half_square, x0, constraints={"type": "eq", "fun": _half_square})
    with pytest.raises(ValueError, match="hess="):
        m(_half_square, x0, hess=lambda x: x)
    with pytest.raises(ValueError, match="hessp="):
        m(_half_square, x0, hessp=lambda x, p: p)
    with pytest.raises(ValueError, match="tol="):
        m(_half_square, x0, tol=1e-3)
    with pytest.raises(ValueError, match="gtol"):
        m(_half_square, x0, gtol=1e-3)
    with pytest.raises(TypeError, match="fun"):
        m(3.0, x0)
    assert m(_half_square, x0, jac=_identity_grad, maxiter=None).nit == 3
    assert m(_half_square, x0, jac=_identity_grad, maxiter=2).nit == 2
    assert m._options({}) == (3, False)
    assert m._options({"maxiter": 5, "disp": 1}) == (5, True)
    with pytest.raises(ValueError, match="maxiter"):
        m._options({"maxiter": 0})


def test_disp_prints_the_message_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    ng.Minimizer(ng.SGD(0.5), maxiter=2)(_half_square, np.array([2.0]), jac=_identity_grad, disp=True)
    assert capsys.readouterr().out == "Took all 2 steps of SGD. nit=2 nfev=1 njev=3 fun=0.125\n"
    ng.Minimizer(ng.SGD(0.5), maxiter=2)(_half_square, np.array([2.0]), jac=_identity_grad, disp=False)
    ng.Minimizer(ng.SGD(0.5), maxiter=2)(_half_square, np.array([2.0]), jac=_identity_grad)
    assert capsys.readouterr().out == ""


def test_x0_forms_and_refusals() -> None:
    for x0 in ([1, 2], np.array([1, 2], dtype=np.uint8), torch.tensor([1.0, 2.0], dtype=torch.float32)):
        x = sm._start(x0)
        assert x.dtype == torch.float64
        assert x.tolist() == [1.0, 2.0]
    arr = np.array([1.0, 2.0])
    x = sm._start(arr)
    x[0] = 7.0
    assert arr[0] == 1.0  # a copy
    for bad in (np.array([1 + 1j]), np.array([True]), np.array(["a"]), object()):
        with pytest.raises(TypeError, match="x0"):
            sm._start(bad)
    for bad in (np.zeros(0), np.zeros((2, 2)), np.float64(1.0)):
        with pytest.raises(ValueError, match="x0"):
            sm._start(bad)


def test_history_repr() -> None:
    h = sm.History([{"nit": 1, "grad_norm": 0.123456, "nfev": 4}, {"nit": 2, "grad_norm": 1.5, "nfev": 8}])
    assert repr(h) == str(h) == "History(2 steps of nit, grad_norm, nfev; last: nit=2, grad_norm=1.5, nfev=8)"


# ------------------------------------------------------------------------------------------- TorchOptimizer


def _tensors(
    seed: int = 0, shape: tuple[int, ...] = (3, 2), dtype: torch.dtype = torch.float64
) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g, dtype=dtype))]


def _run(opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, scheduler: Any = None) -> list[float]:
    losses = []
    for _ in range(steps):

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (
                sum(((p - 0.3) ** 2).sum().real for p in params)
                if params[0].is_complex()
                else sum(((p - 0.3) ** 2).sum() for p in params)
            )
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
        if scheduler is not None:
            scheduler.step()
    return losses


@pytest.mark.parametrize("maximize", [False, True])
def test_maximize_and_closure_match_torch_sgd_bit_for_bit(maximize: bool) -> None:
    ours, theirs = _tensors(), _tensors()
    opt_a = to.TorchSGD(ours, lr=0.05, momentum=0.9, maximize=maximize)
    opt_b = torch.optim.SGD(theirs, lr=0.05, momentum=0.9, maximize=maximize)
    assert _run(opt_a, ours, 5) == _run(opt_b, theirs, 5)
    assert torch.equal(ours[0], theirs[0])
    assert opt_a.param_groups[0]["maximize"] is maximize


def test_step_without_closure_returns_none_and_skips_parameters_without_grad() -> None:
    params = _tensors() + _tensors(1)
    before = params[1].detach().clone()
    opt = ng.TorchOptimizer(params, ng.SGD(0.5))
    (params[0] ** 2).sum().backward()
    expected = params[0].detach() * 0.0  # x - 0.5 * 2x
    assert opt.step() is None
    assert torch.equal(params[0].detach(), expected)
    assert torch.equal(params[1].detach(), before)
    assert params[1] not in opt.state
    assert opt.state[params[0]]["step"].dtype == torch.float32
    assert float(opt.state[params[0]]["step"]) == 1.0


def test_step_counter_dtype_follows_the_default_dtype() -> None:
    assert to._scalar_dtype() == torch.float32
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert to._scalar_dtype() == torch.float64
    finally:
        torch.set_default_dtype(old)
    # under a float16 default, torch.optim still counts in float32 (its _get_scalar_dtype), and so does the adapter
    torch.set_default_dtype(torch.float16)
    try:
        ours = torch.nn.Parameter(torch.ones(2, dtype=torch.float32))
        theirs = torch.nn.Parameter(torch.ones(2, dtype=torch.float32))
        opt_a, opt_b = ng.TorchOptimizer([ours], ng.Adam(0.1)), torch.optim.Adam([theirs], lr=0.1)
        for p, opt in ((ours, opt_a), (theirs, opt_b)):
            p.grad = torch.ones(2, dtype=torch.float32)
            opt.step()
        assert opt_a.state[ours]["step"].dtype == opt_b.state[theirs]["step"].dtype == torch.float32
    finally:
        torch.set_default_dtype(old)


def test_complex_parameters_match_torch_adam_and_sgd() -> None:
    for make_ours, make_theirs in (
        (lambda p: ng.TorchOptimizer(p, ng.Adam(0.05)), lambda p: torch.optim.Adam(p, lr=0.05)),
        (
            lambda p: ng.TorchOptimizer(p, ng.SGD(0.05, momentum=0.5)),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5),
        ),
    ):
        ours, theirs = _tensors(dtype=torch.complex128), _tensors(dtype=torch.complex128)
        opt_a, opt_b = make_ours(ours), make_theirs(theirs)
        _run(opt_a, ours, 4)
        _run(opt_b, theirs, 4)
        assert torch.equal(ours[0], theirs[0])
        for key, value in opt_b.state[theirs[0]].items():
            assert torch.equal(opt_a.state[ours[0]][key], value), key
            assert opt_a.state[ours[0]][key].dtype == value.dtype, key


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("decoupled", [False, True])
def test_complex_parameters_with_weight_decay_match_torch_adam_bit_for_bit(dtype, decoupled) -> None:
    """torch's Adam adds L2 decay to the complex gradient in complex arithmetic (two roundings) before viewing it
    as real; the adapter does the same, where the real view's sum could be fused into one rounding (AVX512 FMA)."""
    ours, theirs = _tensors(dtype=dtype), _tensors(dtype=dtype)
    settings = {"weight_decay": 0.1, "amsgrad": True, "decoupled_weight_decay": decoupled}
    opt_a = ng.TorchOptimizer(ours, ng.Adam(0.05, **settings))
    opt_b = torch.optim.Adam(theirs, lr=0.05, **settings)
    rule = opt_a.rule
    _run(opt_a, ours, 6)
    _run(opt_b, theirs, 6)
    assert torch.equal(ours[0], theirs[0])
    for key, value in opt_b.state[theirs[0]].items():
        assert torch.equal(opt_a.state[ours[0]][key], value), key
    assert opt_a.rule is rule  # the user's rule, with its decay
    assert rule.weight_decay == 0.1


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_parameters_with_weight_decay_match_torch_sgd_bit_for_bit(dtype) -> None:
    """SGD's L2 decay (a rule without AdamW's decoupling flag) is added to the complex gradient as torch adds it."""
    ours, theirs = _tensors(dtype=dtype), _tensors(dtype=dtype)
    settings = {"momentum": 0.5, "weight_decay": 0.1, "nesterov": True}
    opt_a = ng.TorchOptimizer(ours, ng.SGD(0.05, **settings))
    opt_b = torch.optim.SGD(theirs, lr=0.05, **settings)
    _run(opt_a, ours, 6)
    _run(opt_b, theirs, 6)
    assert torch.equal(ours[0], theirs[0])
    assert torch.equal(opt_a.state[ours[0]]["momentum_buffer"], opt_b.state[theirs[0]]["momentum_buffer"])


def test_a_schedule_rule_writes_its_lr_and_warns_once_under_a_torch_scheduler() -> None:
    params = _tensors()
    rule = ng.SGD(ng.RobbinsMonro(a=0.5, b=1.0, alpha=1.0))
    opt = ng.TorchOptimizer(params, rule)
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.param_groups[0]["schedule_step"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(opt, params, 2)
    assert opt.param_groups[0]["schedule_step"] == 2
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / 3)
    opt.param_groups[0]["initial_lr"] = 0.5
    with pytest.warns(UserWarning, match="lr_scheduler"):
        _run(opt, params, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(opt, params, 1)  # once only
    # the constant rule: the torch scheduler's lr is the step's rate, no warning, schedule_step stays 0
    params = _tensors()
    opt = ng.TorchOptimizer(params, ng.SGD(0.1))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(opt, params, 2, sched)
    assert opt.param_groups[0]["schedule_step"] == 0
    assert opt.param_groups[0]["lr"] == 0.025


def test_param_groups_lr_and_settings() -> None:
    a, b = _tensors(), _tensors(1)
    opt = ng.TorchOptimizer([{"params": a}, {"params": b, "lr": 0.0, "momentum": 0.5}], ng.SGD(0.1, momentum=0.9))
    before = b[0].detach().clone()
    theirs_a = _tensors()
    ref = torch.optim.SGD(theirs_a, lr=0.1, momentum=0.9)
    _run(opt, a + b, 3)
    _run(ref, theirs_a, 3)
    assert torch.equal(a[0], theirs_a[0])
    assert torch.equal(b[0], before)
    assert opt.param_groups[1]["momentum"] == 0.5
    # a setting changed between steps is read at the next step (the cached rule is rebuilt)
    x, y = _tensors(2), _tensors(2)
    opt_x = ng.TorchOptimizer(x, ng.SGD(0.1, momentum=0.9))
    opt_y = torch.optim.SGD(y, lr=0.1, momentum=0.9)
    for m in (0.9, 0.2, 0.7):
        opt_x.param_groups[0]["momentum"] = m
        opt_y.param_groups[0]["momentum"] = m
        _run(opt_x, x, 1)
        _run(opt_y, y, 1)
    assert torch.equal(x[0], y[0])
    # a tensor lr is a rate; a tensor of two elements is refused naming lr
    z, w = _tensors(3), _tensors(3)
    opt_z = ng.TorchOptimizer([{"params": z, "lr": torch.tensor(0.25)}], ng.SGD(0.1))
    opt_w = torch.optim.SGD(w, lr=0.25)
    _run(opt_z, z, 1)
    _run(opt_w, w, 1)
    assert torch.equal(z[0], w[0])
    with pytest.raises(ValueError, match="given as a tensor must hold one element"):
        ng.TorchOptimizer([{"params": _tensors(), "lr": torch.tensor([0.1, 0.2])}], ng.SGD(0.1))
    with pytest.raises(ValueError, match=r"param group 1: .*lr"):
        opt_z.add_param_group({"params": _tensors(4), "lr": -1.0})
    with pytest.raises(ValueError, match=r"param group 0: .*momentum"):
        ng.TorchOptimizer([{"params": _tensors(), "momentum": -0.5}], ng.SGD(0.1))


def test_plain_converts_tensors_nested_in_tuples() -> None:
    assert to._plain((torch.tensor(0.5), 0.9)) == (0.5, 0.9)
    assert to._plain([torch.tensor([0.25])]) == (0.25,)
    assert to._plain(3) == 3
    with pytest.raises(ValueError, match=r"betas\[1\] given as a tensor"):
        to._plain((0.9, torch.zeros(2)), "betas")
    assert to._is_neutral(0)
    assert to._is_neutral(False)
    assert to._is_neutral(None)
    assert to._is_neutral(0.0)
    assert to._is_neutral(torch.tensor(0.0))
    assert not to._is_neutral(0.1)
    assert not to._is_neutral(True)
    assert not to._is_neutral("a")
    assert not to._is_neutral(1)


def test_scheduled_rule_refuses_a_group_lr_other_than_its_own() -> None:
    rule = ng.SGD(ng.RobbinsMonro(a=0.5, b=1.0, alpha=1.0))
    opt = ng.TorchOptimizer(_tensors(), rule)
    opt.add_param_group({"params": _tensors(1), "lr": 0.5})  # its own rate: fine
    opt.add_param_group({"params": _tensors(2)})
    with pytest.raises(ValueError, match=r"param group 3 sets lr=0.1"):
        opt.add_param_group({"params": _tensors(3), "lr": 0.1})
    assert len(opt.param_groups) == 3
    # a constant rule takes per-group rates
    opt = ng.TorchOptimizer(_tensors(), ng.SGD(0.5))
    opt.add_param_group({"params": _tensors(1), "lr": 0.1})
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]


def test_defaults_and_flags() -> None:
    sgld = ng.TorchOptimizer(_tensors(), ng.SGLD(1e-3))
    assert not any(flag in sgld.defaults for flag in ("foreach", "fused", "capturable", "differentiable"))
    assert sgld.defaults["lr"] == 1e-3
    assert sgld.defaults["maximize"] is False
    assert sgld.defaults["schedule_step"] == 0
    assert ng.TorchOptimizer(_tensors(), ng.SGLD(1e-3), foreach=True).defaults["foreach"] is True
    assert ng.TorchOptimizer(_tensors(), ng.SGLD(1e-3), fused=False).defaults["fused"] is False
    adam = ng.TorchOptimizer(_tensors(), ng.Adam(1e-3))
    twin = torch.optim.Adam(_tensors(), lr=1e-3).defaults
    assert set(twin) <= set(adam.defaults)
    for key in ("foreach", "fused", "capturable", "differentiable", "eps", "betas", "weight_decay", "amsgrad"):
        assert adam.defaults[key] == twin[key], key
    assert ng.TorchOptimizer(_tensors(), ng.Adam(1e-3), foreach=False).defaults["foreach"] is False
    for flag in ({"fused": True}, {"capturable": True}, {"differentiable": True}):
        with pytest.raises(ValueError, match=next(iter(flag))):
            ng.TorchOptimizer(_tensors(), ng.SGLD(1e-3), **flag)
    with pytest.raises(TypeError, match="noisygrad optimizer"):
        ng.TorchOptimizer(_tensors(), torch.optim.SGD)  # type: ignore[arg-type]
    # a NaN rate is refused naming the group and lr
    with pytest.raises(ValueError, match=r"param group 0: .*lr"):
        ng.TorchOptimizer([{"params": _tensors(), "lr": math.nan}], ng.Adam(1e-3))


def test_twin_settings_the_rule_lacks_are_refused_and_defaults_pass() -> None:
    names = to._torch_setting_names()
    assert {"momentum", "betas", "weight_decay", "eps", "nesterov", "amsgrad"} <= names
    assert "params" not in names
    opt = ng.TorchOptimizer([{"params": _tensors(), "weight_decay": 0.0}], ng.SGLD(1e-3))
    assert opt.param_groups[0]["weight_decay"] == 0.0
    to.TorchAdam(_tensors(), lr=1e-3, foreach=True, capturable=False)  # the flags at allowed values


def test_sparse_and_non_finite_are_refused_before_any_update() -> None:
    a, b = _tensors(), _tensors(1)
    opt = ng.TorchOptimizer([{"params": a}, {"params": b}], ng.SGD(0.1))
    a[0].grad = torch.ones_like(a[0])
    b[0].grad = torch.ones_like(b[0]).to_sparse()
    before = a[0].detach().clone()
    with pytest.raises(RuntimeError, match="sparse gradients \\(param group 1\\)"):
        opt.step()
    assert torch.equal(a[0], before)
    assert not opt.state
    b[0].grad = None
    with torch.no_grad():
        b[0][0, 0] = math.inf
    b[0].grad = torch.ones_like(b[0])
    with pytest.raises(ng.NonFiniteGradientError, match="parameter 0 of param group 1"):
        opt.step()
    assert torch.equal(a[0], before)


def test_state_dicts_load_between_twins() -> None:
    # torch.optim.SGD without momentum keeps no step: ours starts its count at 0
    theirs, ours = _tensors(), _tensors()
    t_opt = torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    _run(t_opt, theirs, 3)
    with torch.no_grad():
        ours[0].copy_(theirs[0])
    o_opt = ng.TorchOptimizer(ours, ng.SGD(0.1, momentum=0.9))
    o_opt.load_state_dict(copy.deepcopy(t_opt.state_dict()))  # torch's steps update its buffers in place
    _run(t_opt, theirs, 2)
    _run(o_opt, ours, 2)
    assert torch.equal(ours[0], theirs[0])
    assert float(o_opt.state[ours[0]]["step"]) == 2.0
    # Adam: the state dict of torch.optim.Adam loads, and ours continues bit for bit
    theirs, ours = _tensors(1), _tensors(1)
    t_opt = torch.optim.Adam(theirs, lr=0.01)
    _run(t_opt, theirs, 3)
    with torch.no_grad():
        ours[0].copy_(theirs[0])
    o_opt = ng.TorchOptimizer(ours, ng.Adam(0.01))
    saved = copy.deepcopy(t_opt.state_dict())
    for group in saved["param_groups"]:
        group.pop("maximize")
    o_opt.load_state_dict(saved)
    assert o_opt.param_groups[0]["maximize"] is False
    assert o_opt.param_groups[0]["schedule_step"] == 0
    _run(t_opt, theirs, 2)
    _run(o_opt, ours, 2)
    assert torch.equal(ours[0], theirs[0])


def test_load_state_dict_keeps_a_generator_state_exact() -> None:
    params = _tensors()
    opt = ng.TorchOptimizer(params, ng.SGLD(1e-3, temperature=0.5))
    _run(opt, params, 2)
    saved = copy.deepcopy(opt.state_dict())
    integer = {k: v for k, v in saved["state"][0].items() if isinstance(v, torch.Tensor) and not v.is_floating_point()}
    assert integer  # the sampler's generator state
    params2 = [torch.nn.Parameter(params[0].detach().to(torch.float32))]
    opt2 = ng.TorchOptimizer(params2, ng.SGLD(1e-3, temperature=0.5))
    opt2.load_state_dict(saved)
    for key, value in integer.items():
        assert opt2.state[params2[0]][key].dtype == value.dtype
        assert torch.equal(opt2.state[params2[0]][key], value)
        assert opt2.state[params2[0]][key] is not saved["state"][0][key]  # a copy


def test_getstate_carries_the_rule_and_setstate_resets_caches() -> None:
    params = _tensors()
    opt = ng.TorchOptimizer(params, ng.Adam(0.01))
    _run(opt, params, 1)
    state = opt.__getstate__()
    assert state["rule"] is opt.rule
    clone = pickle.loads(pickle.dumps(opt))
    assert clone._group_rules == {}
    assert clone._warned_two_schedules is False
    assert set(clone._twin_defaults) == set(torch.optim.Adam(_tensors()).defaults)
    sgld = pickle.loads(pickle.dumps(ng.TorchOptimizer(_tensors(), ng.SGLD(1e-3))))
    assert sgld._twin_defaults == {}


def test_drop_in_classes() -> None:
    assert to.TorchAdam.__name__ == "TorchAdam"
    assert to.TorchAdamW.__name__ == "TorchAdamW"
    assert to.TorchSGD.__module__ == "noisygrad.adapters.torch_optim"
    named = ng.TorchOptimizer.drop_in(ng.Adam, name="MyAdam")
    assert named.__name__ == "MyAdam"
    assert issubclass(named, ng.TorchOptimizer)
    like = ng.TorchOptimizer.drop_in(ng.Adam, like=torch.optim.AdamW)
    assert like.__name__ == "TorchAdamW"
    opt = like(_tensors())
    assert opt.defaults["weight_decay"] == 1e-2
    assert opt.defaults["lr"] == 1e-3
    # positional arguments as torch's
    ours, theirs = _tensors(), _tensors()
    o_opt = to.TorchAdam(ours, 0.01, (0.8, 0.99))
    t_opt = torch.optim.Adam(theirs, 0.01, (0.8, 0.99))
    _run(o_opt, ours, 3)
    _run(t_opt, theirs, 3)
    assert torch.equal(ours[0], theirs[0])
    # a tensor lr and tensor betas become numbers
    o_opt = to.TorchAdam(_tensors(), lr=torch.tensor(0.5), betas=(torch.tensor(0.75), 0.99))
    assert o_opt.rule.betas == (0.75, 0.99)
    assert o_opt.defaults["lr"] == 0.5
    with pytest.raises(TypeError, match=r"^Adam: "):
        to.TorchAdam(_tensors(), bogus=1)
    with pytest.raises(ValueError, match="no torch_twin"):
        ng.TorchOptimizer.drop_in(ng.SGLD)
    # fixed settings go to the rule; a setting of the twin the rule lacks is refused unless at its default
    fixed = ng.TorchOptimizer.drop_in(ng.SGD, nesterov=True)
    assert fixed(_tensors(), lr=0.1, momentum=0.9).rule.nesterov is True
    lacking = ng.TorchOptimizer.drop_in(ng.SGD, like=torch.optim.Adam)
    lacking(_tensors(), lr=0.1, weight_decay=0.0, foreach=None, maximize=True)
    with pytest.raises(ValueError, match="amsgrad=True is a setting of Adam that SGD lacks"):
        lacking(_tensors(), lr=0.1, amsgrad=True)
    assert lacking(_tensors(), lr=0.1, maximize=True).defaults["maximize"] is True


def test_implementation_flags_are_refused_by_their_own_check_for_every_rule() -> None:
    """``capturable``/``differentiable``/``fused`` at a non-default value are refused naming the flag and why,
    whether or not the rule's twin lists the flag (torch.optim.SGD has no ``capturable``)."""
    for rule in (ng.SGD(0.1), ng.Adam(0.1), ng.SGLD(1e-3)):
        for flag in ("capturable", "differentiable", "fused"):
            with pytest.raises(ValueError, match=rf"param group 0: {flag}=True is not supported \(TorchOptimizer"):
                ng.TorchOptimizer(_tensors(), rule, **{flag: True})
        opt = ng.TorchOptimizer(_tensors(), rule, foreach=True)
        assert opt.param_groups[0]["foreach"] is True


class _SGDWithoutNesterov(ng.SGD):
    """An SGD whose settings leave out one of its twin's (``nesterov``): the twin's value is refused unless default."""

    hyperparameters = ("momentum", "dampening", "weight_decay")


def test_a_twin_setting_the_rule_lacks_is_refused_unless_at_the_twins_default() -> None:
    params = _tensors()
    opt = ng.TorchOptimizer(params, _SGDWithoutNesterov(0.1, momentum=0.5))
    assert opt.param_groups[0]["nesterov"] is False
    with pytest.raises(ValueError, match=r"param group 1: nesterov=True is a setting of torch.optim.SGD"):
        opt.add_param_group({"params": _tensors(1), "nesterov": True})
    opt.add_param_group({"params": _tensors(2), "nesterov": False})
    assert len(opt.param_groups) == 2


def test_a_torch_setting_put_on_a_group_after_it_was_added_is_refused_at_the_next_step() -> None:
    """A rule without a twin: ``weight_decay = 0.1`` set on a group later is refused, not silently ignored."""
    params = _tensors()
    opt = ng.TorchOptimizer(params, ng.SGLD(1e-3))
    _run(opt, params, 1)
    opt.param_groups[0]["weight_decay"] = 0.1
    before = params[0].detach().clone()
    with pytest.raises(ValueError, match=r"param group 0: weight_decay=0.1 is a torch.optim setting"):
        _run(opt, params, 1)
    assert torch.equal(params[0], before)
    opt.param_groups[0]["weight_decay"] = 0.0  # neutral again: steps
    _run(opt, params, 1)
    assert not torch.equal(params[0], before)


class _OwnTorchOptimizer(ng.TorchOptimizer):
    """A user's subclass, in this module: its drop-ins belong to this module too."""


PickledAdam = _OwnTorchOptimizer.drop_in(ng.Adam, name="PickledAdam")


def test_a_drop_in_of_a_subclass_lives_in_the_subclass_module_and_pickles() -> None:
    assert PickledAdam.__module__ == __name__
    assert issubclass(PickledAdam, _OwnTorchOptimizer)
    params = _tensors()
    opt = PickledAdam(params, lr=0.5)
    _run(opt, params, 1)
    clone = pickle.loads(pickle.dumps(opt))  # found by module and name
    assert type(clone) is PickledAdam
    assert clone.defaults["lr"] == 0.5


@pytest.mark.parametrize("make", [lambda p: ng.TorchOptimizer(p, ng.SGD(0.1)), lambda p: ng.TorchSGD(p, lr=0.1)])
def test_a_tensor_lr_of_two_elements_is_refused_naming_the_group_and_lr(make) -> None:
    params = _tensors()
    opt = make(params)
    extra = {"params": _tensors(seed=1), "lr": torch.tensor([0.1, 0.2])}
    refused = r"^param group 1: lr given as a tensor must hold one element, got shape \(2,\)"
    with pytest.raises(ValueError, match=refused):
        opt.add_param_group(extra)
    assert len(opt.param_groups) == 1
    opt.param_groups[0]["lr"] = torch.tensor([0.1, 0.2])
    params[0].grad = torch.ones_like(params[0])
    before = params[0].detach().clone()
    with pytest.raises(ValueError, match=r"^param group 0: lr given as a tensor must hold one element"):
        opt.step()
    assert torch.equal(params[0], before)


def test_a_rule_without_weight_decay_steps_a_complex_parameter_as_its_real_view() -> None:
    # SGLD has no weight decay: a complex parameter steps exactly as the float pair (its real view) does
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, generator=gen, dtype=torch.complex128)
    grads = [torch.randn(4, generator=gen, dtype=torch.complex128) for _ in range(3)]
    complex_param = torch.nn.Parameter(x0.clone())
    real_param = torch.nn.Parameter(torch.view_as_real(x0).clone())
    opt_c = ng.TorchOptimizer([complex_param], ng.SGLD(0.01, seed=4))
    opt_r = ng.TorchOptimizer([real_param], ng.SGLD(0.01, seed=4))
    for g in grads:
        complex_param.grad, real_param.grad = g.clone(), torch.view_as_real(g).clone()
        opt_c.step()
        opt_r.step()
    assert complex_param.is_complex()
    assert torch.equal(torch.view_as_real(complex_param.detach()), real_param.detach())


def test_a_protocol_rule_steps_a_complex_parameter_as_its_real_view() -> None:
    """An update rule that only follows the ``Optimizer`` protocol (no ``Rule`` base, so no ``complex_as_real``
    attribute) gets a complex parameter as its real view, as ``torch.optim`` steps rules that are not linear in the
    gradient: it sees float64 pairs, and the parameter stays complex."""
    seen: list[torch.dtype] = []

    class Halving:
        lr = ng.Constant(0.5)

        def init(self, params: torch.Tensor) -> dict[str, Any]:
            return {"step": 0}

        def update(self, params, grad, state, *, lr=None):  # type: ignore[no-untyped-def]
            seen.append(params.dtype)
            return params - 0.5 * grad, {"step": state["step"] + 1}

    z = torch.tensor([1.0 + 2.0j], dtype=torch.complex128, requires_grad=True)
    opt = ng.TorchOptimizer([z], Halving())
    z.grad = torch.tensor([2.0 - 4.0j], dtype=torch.complex128)
    opt.step()
    assert seen == [torch.float64]
    assert z.dtype == torch.complex128
    assert torch.equal(z.detach(), torch.tensor([0.0 + 4.0j], dtype=torch.complex128))
