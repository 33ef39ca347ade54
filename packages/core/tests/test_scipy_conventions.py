"""``Minimizer`` as a ``scipy.optimize.minimize`` method, checked on scipy's own test functions (issue 15).

Everything goes through ``scipy.optimize.minimize(fun, x0, method=Minimizer(...), ...)`` unless a test says it
calls the minimizer directly (the ``qiskit_algorithms`` protocol). The defects the issue lists for ``Minimizer``
each have a test named after them. The runs are deterministic (exact gradients, or central differences of a
deterministic function), so the tolerances bound rounding and truncation, not Monte-Carlo error.
"""

import numpy as np
import pytest
import scipy.optimize as so
from scipy.optimize import Bounds, OptimizeResult, rosen, rosen_der

import noisygrad as ng

X0 = np.array([-1.2, 1.0])  # the classical start of the two-dimensional Rosenbrock function
X0_DOCS = np.array([1.3, 0.7, 0.8, 1.9, 1.2])  # the start of scipy.optimize.minimize's documentation


def quadratic(x, centre, scale):
    return float(scale * ((x - centre) ** 2).sum())


def quadratic_grad(x, centre, scale):
    return 2 * scale * (x - centre)


def quadratic_pair(x, centre, scale):
    return quadratic(x, centre, scale), quadratic_grad(x, centre, scale)


def rosen_pair(x):
    return rosen(x), rosen_der(x)


def sgd():
    return ng.SGD(2e-3, momentum=0.9)


# ---------------------------------------------------------------- the defects of the issue


def test_defect_unexpected_keyword_args():
    centre = np.array([1.0, -2.0, 0.5])
    result = so.minimize(
        quadratic, np.zeros(3), args=(centre, 0.5), method=ng.Minimizer(ng.SGD(0.5), maxiter=60), jac=quadratic_grad
    )
    np.testing.assert_allclose(result.x, centre, atol=1e-12)  # x - c shrinks by (1 - 0.5) = 1/2 a step
    assert result.success


def test_defect_jac_true_bool_not_callable():
    """``jac=True``: fun returns (value, gradient); the iterates equal those of a separate ``jac`` bit for bit."""
    pair = so.minimize(rosen_pair, X0, method=ng.Minimizer(sgd(), maxiter=300), jac=True)
    separate = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=300), jac=rosen_der)
    np.testing.assert_array_equal(pair.x, separate.x)
    assert pair.fun == separate.fun == rosen(pair.x)
    assert (pair.nfev, pair.njev) == (separate.nfev, separate.njev) == (1, 301)  # steps and the jac at x


def test_jac_true_works_when_called_directly():
    calls = []

    def counted(x):
        calls.append(x.copy())
        return rosen_pair(x)

    direct = ng.Minimizer(sgd(), maxiter=50)(counted, X0, jac=True)
    via_scipy = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=50), jac=rosen_der)
    np.testing.assert_array_equal(direct.x, via_scipy.x)
    assert len(calls) == 51  # one per step and one at x for the value and jac: the pair is split, not recomputed
    assert (direct.nfev, direct.njev) == (1, 51)
    np.testing.assert_array_equal(direct.jac, rosen_der(direct.x))


def test_defect_optimize_result_lacks_status():
    result = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=20), jac=rosen_der)
    assert (result.status, result.success) == (0, True)
    assert result.message == "Took all 20 steps of SGD."


def test_defect_nit_always_maxiter():
    def stop_at_7(intermediate_result):
        if intermediate_result.nit == 7:
            raise StopIteration

    result = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=100), jac=rosen_der, callback=stop_at_7)
    assert result.nit == 7
    full = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=7), jac=rosen_der)
    np.testing.assert_array_equal(result.x, full.x)  # the run stopped after the step whose callback raised


@pytest.mark.parametrize(
    "wrap", [lambda v: np.array([v]), np.float64, np.float32, lambda v: np.array(v)], ids=["(1,)", "f64", "f32", "0d"]
)
def test_defect_float_of_a_shape_1_array_under_numpy_2(wrap):
    result = so.minimize(lambda x: wrap(rosen(x)), X0, method=ng.Minimizer(sgd(), maxiter=5), jac=rosen_der)
    assert isinstance(result.fun, np.float64)
    assert result.fun == pytest.approx(rosen(result.x), rel=1e-6)


def test_fun_returning_several_values_is_refused_naming_fun():
    with pytest.raises(ValueError, match=r"fun must return a scalar \(or an array of size 1\), got .* shape \(2,\)"):
        so.minimize(lambda x: np.array([1.0, 2.0]), X0, method=ng.Minimizer(sgd(), maxiter=2), jac=rosen_der)
    with pytest.raises(TypeError, match="fun must return a real number"):
        so.minimize(lambda x: 1j, X0, method=ng.Minimizer(sgd(), maxiter=2), jac=rosen_der)


# ---------------------------------------------------------------- the battery on rosen


@pytest.mark.parametrize("jac", ["callable", "true", "none"])
@pytest.mark.parametrize("bounds", ["none", "pairs", "Bounds"])
@pytest.mark.parametrize("callback", ["none", "intermediate_result", "legacy"])
def test_battery_on_rosen(jac, bounds, callback):
    """Every combination runs through scipy.optimize.minimize and keeps its promises: iterates inside the
    bounds, the callback once per step with the iterate, the counts, and the same iterates whatever the jac form
    (central differences with step 1e-6 agree with rosen_der to about 1e-7 per step)."""
    fun, jac_arg = {"callable": (rosen, rosen_der), "true": (rosen_pair, True), "none": (rosen, None)}[jac]
    box = {"none": None, "pairs": [(-2.0, 0.9), (None, 1.2)], "Bounds": Bounds([-2.0, -np.inf], [0.9, 1.2])}[bounds]
    seen = []

    def new_form(intermediate_result):
        seen.append(intermediate_result)

    def legacy(xk):
        seen.append(xk)

    cb = {"none": None, "intermediate_result": new_form, "legacy": legacy}[callback]
    steps = 60
    result = so.minimize(fun, X0, method=ng.Minimizer(sgd(), maxiter=steps), jac=jac_arg, bounds=box, callback=cb)
    reference = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=steps), jac=rosen_der, bounds=box)

    assert isinstance(result, OptimizeResult)
    assert (result.nit, result.status, result.success) == (steps, 0, True)
    np.testing.assert_allclose(result.x, reference.x, atol=1e-5)
    assert result.fun == rosen(result.x)
    if box is not None:
        assert result.x[0] <= 0.9
        assert result.x[1] <= 1.2
    evaluations_per_step = {"none": 2 * 2, "callable": 0, "true": 0}[jac]
    extra_for_callback = 1 if callback == "intermediate_result" else 0
    # the value at x, and the gradient at x for the result's jac (central differences: 2 n evaluations)
    at_the_end = 1 + evaluations_per_step
    assert result.nfev == steps * (evaluations_per_step + extra_for_callback) + at_the_end
    assert result.njev == steps + 1
    np.testing.assert_allclose(result.jac, rosen_der(result.x), rtol=1e-6, atol=1e-6)
    if callback == "none":
        return
    assert len(seen) == steps
    if callback == "legacy":
        assert all(isinstance(x, np.ndarray) and x.shape == (2,) for x in seen)
        np.testing.assert_array_equal(seen[-1], result.x)
    else:
        last = seen[-1]
        assert isinstance(last, OptimizeResult)
        np.testing.assert_array_equal(last.x, result.x)
        assert last.fun == rosen(last.x)
        assert last.nit == steps
        assert [r.nit for r in seen] == list(range(1, steps + 1))


def test_callbacks_receive_copies():
    def scribble(xk):
        xk[:] = 1e6  # a callback that writes into what it gets must not move the run

    scribbled = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=30), jac=rosen_der, callback=scribble)
    clean = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=30), jac=rosen_der)
    np.testing.assert_array_equal(scribbled.x, clean.x)


@pytest.mark.parametrize("form", ["intermediate_result", "legacy"])
def test_stop_iteration_stops_the_run_as_scipy_does(form):
    """scipy's own methods answer a callback's StopIteration with status 99, success False and this message."""

    def stop_new(intermediate_result):
        if len(calls) == 2:
            raise StopIteration
        calls.append(1)

    def stop_legacy(xk):
        if len(calls) == 2:
            raise StopIteration
        calls.append(1)

    cb = stop_new if form == "intermediate_result" else stop_legacy
    calls = []
    ours = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=50), jac=rosen_der, callback=cb)
    calls = []
    theirs = so.minimize(rosen, X0, method="BFGS", jac=rosen_der, callback=cb)
    for field in ("status", "success", "message", "nit"):
        assert ours[field] == theirs[field], field
    assert (ours.status, ours.nit) == (99, 3)


def test_args_reach_fun_and_jac_in_every_form():
    centre, scale = np.array([3.0, -1.0]), 2.0
    minimizer = ng.Minimizer(ng.SGD(0.1), maxiter=100)
    for fun, jac in ((quadratic, quadratic_grad), (quadratic_pair, True), (quadratic, None)):
        result = so.minimize(fun, np.zeros(2), args=(centre, scale), method=minimizer, jac=jac)
        np.testing.assert_allclose(result.x, centre, atol=1e-6)  # contracts by 0.6 a step: 0.6^100 ~ 6e-23
    lone = so.minimize(lambda x, c: float(((x - c) ** 2).sum()), [0.0], args=5.0, method=minimizer)
    np.testing.assert_allclose(lone.x, [5.0], atol=1e-6)  # scipy wraps a lone argument into a tuple


# ---------------------------------------------------------------- convergence, in numbers


@pytest.mark.parametrize(
    ("rule", "x0", "steps", "tol", "measured"),
    [
        (lambda: ng.SGD(2e-3, momentum=0.9), X0, 1000, 1e-3, 2.7e-4),
        (lambda: ng.Adam(0.05), X0, 2000, 1e-3, 1.9e-4),
        (lambda: ng.SGD(1e-3, momentum=0.9), X0_DOCS, 2000, 1e-4, 2.9e-5),
    ],
    ids=["sgd-momentum-2d", "adam-2d", "sgd-momentum-5d"],
)
def test_convergence_on_rosen_from_the_standard_starts(rule, x0, steps, tol, measured):
    """max |x - 1| after ``steps`` exact-gradient steps, measured as ``measured`` (deterministic): held at ``tol``."""
    result = so.minimize(rosen, x0, method=ng.Minimizer(rule(), maxiter=steps), jac=rosen_der)
    error = np.abs(result.x - 1).max()
    assert error < tol
    assert error == pytest.approx(measured, rel=0.1)


# ---------------------------------------------------------------- the result's fields against scipy's methods


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG"])
@pytest.mark.parametrize("jac", [rosen_der, None], ids=["jac", "no-jac"])
def test_result_fields_match_scipys_methods(method, jac):
    ours = so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=10), jac=jac)
    theirs = so.minimize(rosen, X0, method=method, jac=jac, options={"maxiter": 10})
    fields = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message")
    assert set(fields) <= set(ours)
    assert set(fields) <= set(theirs)
    for name in fields:
        a, b = ours[name], theirs[name]
        assert type(a) is type(b), name
        if isinstance(a, np.ndarray):
            assert (a.dtype, a.shape) == (b.dtype, b.shape), name
    assert set(theirs) - set(ours) <= {"hess_inv"}  # a first-order method keeps no inverse Hessian


# ---------------------------------------------------------------- refusals, named


@pytest.mark.parametrize(
    ("keyword", "value", "match"),
    [
        ("hess", lambda x: np.eye(2), "does not take hess="),
        ("hessp", lambda x, p: p, "does not take hessp="),
        ("constraints", {"type": "ineq", "fun": lambda x: x[0]}, "does not take constraints="),
        ("tol", 1e-6, "does not take tol="),
        ("options", {"gtol": 1e-3}, "does not take the option.s. gtol"),
    ],
)
def test_what_a_first_order_fixed_step_method_cannot_honour_is_refused_by_name(keyword, value, match):
    with pytest.raises(ValueError, match=match):
        so.minimize(rosen, X0, method=ng.Minimizer(sgd(), maxiter=2), jac=rosen_der, **{keyword: value})


def test_options_maxiter_and_disp(capsys):
    result = so.minimize(
        rosen, X0, method=ng.Minimizer(sgd(), maxiter=100), jac=rosen_der, options={"maxiter": 3, "disp": True}
    )
    assert result.nit == 3
    assert "Took all 3 steps of SGD. nit=3" in capsys.readouterr().out


def test_bad_bounds_and_jac_are_named():
    minimizer = ng.Minimizer(sgd(), maxiter=2)
    with pytest.raises(ValueError, match=r"bounds \(a scipy.optimize.Bounds\) must broadcast"):
        minimizer(rosen, X0, bounds=Bounds([0, 0, 0], [1, 1, 1]))
    with pytest.raises(TypeError, match="jac must be a callable"):
        minimizer(rosen, X0, jac="exact")
    with pytest.raises(TypeError, match=r"with jac=True, fun must return \(value, gradient\)"):
        minimizer(rosen, X0, jac=True)
    with pytest.raises(TypeError, match="x0 must be real"):
        minimizer(rosen, X0 + 0j)


def test_a_nan_at_x0_raises_naming_x0():
    with pytest.raises(ng.NonFiniteGradientError, match="NaN at x0, before any step: black-box values"):
        so.minimize(lambda x: np.nan, X0, method=ng.Minimizer(sgd(), maxiter=2))


# ---------------------------------------------------------------- the other callers


def test_the_qiskit_style_positional_call_and_the_constructor_callback_still_work():
    seen = []
    minimizer = ng.Minimizer(sgd(), maxiter=5, callback=lambda nit, x, value: seen.append((nit, x.shape, value)))
    result = minimizer(rosen, X0, rosen_der, [(None, None), (None, None)])
    assert result.nit == 5
    assert seen == [(k, (2,), None) for k in range(1, 6)]


def test_our_callback_rule_is_scipys():
    """scipy decides between callback(intermediate_result) and callback(xk) by the parameter names; so do we."""
    from scipy.optimize._optimize import _wrap_callback  # the installed scipy's own rule, private: compared only

    from noisygrad.adapters.scipy_minimize import _ScipyCallback

    received = []

    def new(intermediate_result):
        received.append(type(intermediate_result))

    def legacy(xk):
        received.append(type(xk))

    def mixed(xk, intermediate_result=None):
        received.append(type(xk))

    result = OptimizeResult(x=np.zeros(2), fun=0.0)
    for callback, expected in ((new, OptimizeResult), (legacy, np.ndarray), (mixed, np.ndarray)):
        received.clear()
        _wrap_callback(callback)(result)
        _ScipyCallback(callback)(result)
        assert received == [expected, expected]


@pytest.mark.slow  # importing qiskit alone takes 2-5 s here
def test_qiskit_algorithms_vqe_takes_the_minimizer():
    """qiskit_algorithms.VQE calls a callable optimizer as optimizer(fun=, x0=, jac=, bounds=)."""
    qiskit_algorithms = pytest.importorskip("qiskit_algorithms")
    from qiskit.circuit import Parameter, QuantumCircuit
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    theta = Parameter("theta")
    ansatz = QuantumCircuit(1)
    ansatz.ry(theta, 0)
    vqe = qiskit_algorithms.VQE(
        StatevectorEstimator(), ansatz, optimizer=ng.Minimizer(ng.SGD(0.4), maxiter=40), initial_point=[0.5]
    )
    result = vqe.compute_minimum_eigenvalue(SparsePauliOp("Z"))
    assert result.eigenvalue == pytest.approx(-1.0, abs=1e-8)  # <Z> = cos(theta), minimal at theta = pi
    assert result.optimizer_result.nit == 40


# ---------------------------------------------------------------- the same call through scipy's own methods


def scaled_rosen(x, a):
    return a * rosen(x)


def scaled_rosen_der(x, a):
    return a * rosen_der(x)


SAME_CALL_BOUNDS = {"none": None, "pairs": [(-2.0, 0.9), (None, 1.2)], "Bounds": Bounds([-2.0, -np.inf], [0.9, 1.2])}


@pytest.mark.parametrize("callback", ["none", "intermediate_result", "legacy"])
@pytest.mark.parametrize("bounds", list(SAME_CALL_BOUNDS))
@pytest.mark.parametrize("jac", ["callable", "true", "none"])
def test_result_fields_mean_what_scipys_methods_mean_on_the_same_call(jac, bounds, callback):
    """One call, ``minimize(a * rosen, x0, args=(a,), jac=..., bounds=..., callback=..., maxiter=10)``, through
    ``Minimizer`` and through scipy's built-in methods that take it (L-BFGS-B always; BFGS and CG when there are
    no bounds). For every result, ours and theirs alike: the same field names, types, dtypes and shapes; ``fun``
    is ``fun(x, *args)`` and ``jac`` the gradient at ``x``; ``nfev``/``njev`` are the calls of ``fun``/``jac``
    counted from outside (with ``jac=True`` scipy memoises the pair: then at most the calls); ``nit`` is the
    number of callbacks, each with what scipy hands over; ``success`` is ``status == 0``; ``x`` is in the box."""
    a = 0.5
    calls = {"fun": 0, "jac": 0}

    def fun(x, a):
        calls["fun"] += 1
        return scaled_rosen(x, a)

    def der(x, a):
        calls["jac"] += 1
        return scaled_rosen_der(x, a)

    def pair(x, a):
        calls["fun"] += 1
        return scaled_rosen(x, a), scaled_rosen_der(x, a)

    f, jac_arg = {"callable": (fun, der), "true": (pair, True), "none": (fun, None)}[jac]
    box = SAME_CALL_BOUNDS[bounds]
    seen: list = []

    def new_form(intermediate_result):
        seen.append(intermediate_result)

    def legacy(xk):
        seen.append(xk)

    cb = {"none": None, "intermediate_result": new_form, "legacy": legacy}[callback]
    methods = ["L-BFGS-B"] if box is not None else ["L-BFGS-B", "BFGS", "CG"]
    fields = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message")
    results = {}
    for method in [ng.Minimizer(sgd(), maxiter=10), *methods]:
        calls.update(fun=0, jac=0)
        seen.clear()
        result = so.minimize(
            f, X0, args=(a,), method=method, jac=jac_arg, bounds=box, callback=cb, options={"maxiter": 10}
        )
        name = method if isinstance(method, str) else "Minimizer"
        results[name] = result
        assert set(fields) <= set(result), name
        assert result.fun == scaled_rosen(result.x, a), name
        gradient_tolerance = 1e-5 if jac == "none" else 1e-12  # finite differences: truncation and rounding
        np.testing.assert_allclose(result.jac, scaled_rosen_der(result.x, a), rtol=gradient_tolerance, atol=1e-6)
        if jac == "true":
            assert result.nfev <= calls["fun"], name
            assert result.njev <= calls["fun"], name
        else:
            assert result.nfev == calls["fun"], name
        if jac == "callable":
            assert result.njev == calls["jac"], name
        assert result.success == (result.status == 0), name
        if box is not None:
            assert -2.0 <= result.x[0] <= 0.9, name
            assert result.x[1] <= 1.2, name
        if callback != "none":
            assert len(seen) == result.nit, name
            last = seen[-1]
            if callback == "legacy":
                assert isinstance(last, np.ndarray), name
                assert last.shape == X0.shape, name
                np.testing.assert_array_equal(last, result.x)
            else:
                assert isinstance(last, OptimizeResult), name
                assert {"x", "fun"} <= set(last), name
                np.testing.assert_array_equal(last.x, result.x)
                assert last.fun == scaled_rosen(last.x, a), name
    ours = results.pop("Minimizer")
    assert ours.nit == 10
    for name, theirs in results.items():
        for field in fields:
            mine, other = ours[field], theirs[field]
            assert type(mine) is type(other), (name, field)
            if isinstance(mine, np.ndarray):
                assert (mine.dtype, mine.shape) == (other.dtype, other.shape), (name, field)
        if jac == "none":  # both count a finite-difference gradient as one jac evaluation
            assert ours.njev == ours.nit + 1, name
            assert theirs.njev >= theirs.nit, name


def test_a_non_finite_value_at_the_returned_point_is_status_2_with_the_jac_there():
    """SGD with lr 0.2 on ``-x`` (gradient -1) reaches x = 1 in 5 steps, where ``fun`` is +inf: a failed result
    (status 2), not an error, and ``jac`` is still the gradient at x."""

    def fun(x):
        return float(-x[0] + (np.inf if x[0] > 0.5 else 0.0))

    result = so.minimize(fun, [0.0], method=ng.Minimizer(ng.SGD(0.2), maxiter=5), jac=lambda x: np.array([-1.0]))
    np.testing.assert_allclose(result.x, [1.0], rtol=1e-12)
    assert (result.status, result.success, result.fun) == (2, False, np.inf)
    assert result.message == "The value at the returned point is not finite."
    np.testing.assert_array_equal(result.jac, [-1.0])
    assert result.njev == 6
