"""The rule base, the thermostat, the tail indices and the input checks: behaviours that mutation testing of
``optim/base.py``, ``optim/thermostat.py``, ``noise/tails.py`` and ``checks.py`` found unchecked
(tools/mutation.py, issue 18).

Every check is exact (closed forms, documented defaults, the boundaries of checked ranges, bit-for-bit parity
with ``torch.optim``) or, where a quadrature or a sample is involved, held to a stated tolerance.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.integrate
import torch

import noisygrad as ng
from noisygrad.checks import (
    NonFiniteGradientError,
    as_array,
    as_dtype,
    as_parameter_vector,
    caller_stacklevel,
    check_finite,
    check_generator,
    check_in_range,
    check_positive,
    check_positive_array,
    check_positive_int,
    check_real,
    check_same_shape,
    check_torch_generator,
    warn,
)
from noisygrad.noise.tails import hill_tail_index, kesten_tail_index
from noisygrad.optim.base import Rule, State
from noisygrad.schedules import as_schedule

# ---------------------------------------------------------------------------------------------- optim/base.py


class _Scaled(Rule):
    """A user's rule, as the base documents it: ``x - lr * scale * g``, with ``lr`` required (no default)."""

    hyperparameters = ("scale",)

    def __init__(self, lr: float, *, scale: float = 1.0) -> None:
        self.lr = as_schedule("lr", lr)
        self.scale = check_positive("scale", scale)

    def _init(self, params: torch.Tensor) -> State:
        return {}

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        return params - lr * self.scale * grad, state


def test_replace_builds_a_rule_whose_constructor_requires_lr():
    """``replace`` passes the rule's own ``lr`` to the constructor that checks the new settings, so a rule without
    a default ``lr`` can be replaced; the copy keeps the schedule and steps with the new setting."""
    rule = _Scaled(0.5, scale=1.0)
    changed = rule.replace(scale=2.0)
    assert changed.scale == 2.0
    assert rule.scale == 1.0
    assert changed.lr is rule.lr
    x, g = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64)
    new, state = changed.update(x, g, changed.init(x))
    torch.testing.assert_close(new, torch.tensor([0.0, 3.0], dtype=torch.float64), rtol=0, atol=0)
    assert state == {"step": 1}
    with pytest.raises(ValueError, match="scale"):
        rule.replace(scale=-1.0)  # checked as the constructor checks it


def test_replace_refuses_a_constructor_argument_that_is_not_a_hyperparameter():
    """SGLD's ``temperature`` is a constructor argument but no per-group setting: ``replace`` refuses it instead of
    silently returning an unchanged copy."""
    with pytest.raises(TypeError, match="'temperature' is not a setting of SGLD"):
        ng.SGLD(0.1).replace(temperature=2.0)
    with pytest.raises(TypeError, match="'lr' is not a setting of SGD"):
        ng.SGD(0.1).replace(lr=0.2)


def test_update_takes_an_lr_override_of_zero_and_refuses_a_negative_one():
    """``lr=0.0`` for one step is allowed (as in torch): the parameters stay, the step count advances."""
    x, g = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64)
    for rule in (ng.SGD(0.1), ng.Adam(0.1)):
        new, state = rule.update(x, g, rule.init(x), lr=0.0)
        torch.testing.assert_close(new, x, rtol=0, atol=0)
        assert state["step"] == 1
        with pytest.raises(ValueError, match="lr"):
            rule.update(x, g, rule.init(x), lr=-1e-3)


def test_the_repr_lists_every_setting():
    assert repr(ng.SGD(0.1)) == (
        "SGD(lr=Constant(value=0.1), momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)"
    )
    assert repr(_Scaled(0.5, scale=2.0)) == "_Scaled(lr=Constant(value=0.5), scale=2.0)"


def test_a_rule_steps_complex_parameters_as_their_real_view_by_default():
    """``Rule.complex_as_real`` defaults to True: Adam (which keeps the default) steps a complex parameter through
    TorchOptimizer as ``torch.optim.Adam`` does, on the real view (``|g|^2``, not the complex ``g * g``)."""
    assert Rule.complex_as_real is True
    assert ng.Adam.complex_as_real is True
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(4, generator=gen, dtype=torch.complex128)
    grads = [torch.randn(4, generator=gen, dtype=torch.complex128) for _ in range(5)]
    ours, theirs = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    opt_ours = ng.TorchOptimizer([ours], ng.Adam(0.1))
    opt_theirs = torch.optim.Adam([theirs], lr=0.1)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- optim/thermostat.py

_N, _DIM = 20, 3


def _estimator(batch_size: int = 4, *, replace: bool = False) -> ng.MiniBatch:
    gen = torch.Generator().manual_seed(13)
    X = torch.randn(_N, _DIM, generator=gen, dtype=torch.float64)
    y = torch.randn(_N, generator=gen, dtype=torch.float64)
    objective = ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    return ng.MiniBatch(objective, batch_size, replace=replace, noise_stats=True)


def _info(trace: float | None) -> ng.StepInfo:
    """A step whose estimate reports ``trace_cov = trace`` at a point of ``_DIM`` coordinates."""
    stats = {} if trace is None else {"trace_cov": trace}
    x = torch.zeros(_DIM, dtype=torch.float64)
    return ng.StepInfo(0, x, ng.Estimate(x, None, ng.Cost(), stats), 0.1, ng.Cost())


def test_thermostat_defaults_and_its_initial_state():
    """Defaults: ``control="lr"``, ``smoothing=0.9``, no ``lr_max``; before any step the rate is ``lr``."""
    estimator = _estimator()
    thermostat = ng.Thermostat(estimator, 1e-3, lr=0.1)
    assert thermostat.estimator is estimator
    assert (thermostat.temperature, thermostat.lr, thermostat.control) == (1e-3, 0.1, "lr")
    assert (thermostat.smoothing, thermostat.lr_max) == (0.9, math.inf)
    assert thermostat(0) == 0.1
    assert thermostat(7) == 0.1
    assert thermostat.state_dict() == {"trace": None, "lr": 0.1, "batch_size": 4}


def test_thermostat_smoothing_range_is_zero_closed_one_open():
    estimator = _estimator()
    assert ng.Thermostat(estimator, 1e-3, lr=0.1, smoothing=0.0).smoothing == 0.0
    assert ng.Thermostat(estimator, 1e-3, lr=0.1, smoothing=0.999).smoothing == 0.999
    for bad in (1.0, 1.5, -1e-9):
        with pytest.raises(ValueError, match="smoothing"):
            ng.Thermostat(estimator, 1e-3, lr=0.1, smoothing=bad)


def test_thermostat_moving_average_and_lr_closed_form_without_replacement():
    """``tr <- s tr + (1 - s) trace`` (the first trace taken as it is), then ``lr = 2 d T / (tr (1/b - 1/N))``."""
    thermostat = ng.Thermostat(_estimator(4), 1e-3, lr=0.1, smoothing=0.25)
    thermostat.observe(_info(0.5))
    assert thermostat.state_dict()["trace"] == 0.5
    assert thermostat.lr == pytest.approx(2 * _DIM * 1e-3 / (0.5 * (1 / 4 - 1 / _N)), rel=1e-14)
    thermostat.observe(_info(0.25))
    trace = 0.25 * 0.5 + 0.75 * 0.25
    assert thermostat.state_dict()["trace"] == pytest.approx(trace, rel=1e-15)
    assert thermostat.lr == pytest.approx(2 * _DIM * 1e-3 / (trace * (1 / 4 - 1 / _N)), rel=1e-14)
    default = ng.Thermostat(_estimator(4), 1e-3, lr=0.1)
    default.observe(_info(2.0))
    default.observe(_info(4.0))
    assert default.state_dict()["trace"] == pytest.approx(0.9 * 2.0 + 0.1 * 4.0, rel=1e-15)  # smoothing 0.9


def test_thermostat_lr_with_replacement_uses_one_over_b_and_lr_max_caps_it():
    thermostat = ng.Thermostat(_estimator(4, replace=True), 1e-3, lr=0.1, smoothing=0.0)
    thermostat.observe(_info(0.5))
    assert thermostat.lr == pytest.approx(2 * _DIM * 1e-3 / (0.5 / 4), rel=1e-14)
    capped = ng.Thermostat(_estimator(4, replace=True), 1e-3, lr=0.1, smoothing=0.0, lr_max=0.01)
    assert capped.lr_max == 0.01
    capped.observe(_info(0.5))
    assert capped.lr == 0.01


def test_thermostat_keeps_lr_on_a_zero_trace_or_a_full_batch_without_replacement():
    """A zero measured trace, or batches of all N examples without replacement (no noise per example: the
    temperature is 0 at any rate), leave the rate as it is rather than dividing by zero."""
    thermostat = ng.Thermostat(_estimator(4), 1e-3, lr=0.1, smoothing=0.0)
    thermostat.observe(_info(0.0))
    assert thermostat.state_dict() == {"trace": 0.0, "lr": 0.1, "batch_size": 4}
    full = ng.Thermostat(_estimator(_N), 1e-3, lr=0.1, smoothing=0.0)
    full.observe(_info(0.5))
    assert full.state_dict() == {"trace": 0.5, "lr": 0.1, "batch_size": _N}


def test_thermostat_needs_the_trace_in_the_estimate():
    thermostat = ng.Thermostat(_estimator(), 1e-3, lr=0.1)
    with pytest.raises(ValueError, match="trace_cov"):
        thermostat.observe(_info(None))
    assert thermostat.state_dict() == {"trace": None, "lr": 0.1, "batch_size": 4}


def _temperature_for(needed: float, lr: float, trace: float) -> float:
    """The target ``T`` at which the batch control needs the noise factor ``needed``: ``2 d T / (lr tr)``."""
    return needed * lr * trace / (2 * _DIM)


@pytest.mark.parametrize(
    ("replace", "needed", "batch"),
    [
        (True, 1 / 7.4, 7),  # round(1 / needed)
        (True, 1 / 30.2, 30),  # i.i.d. draws: above N is allowed
        (True, 1 / 1.2, 2),  # at least 2
        (False, 1 / 10.2 - 1 / _N, 10),  # round(1 / (needed + 1 / N))
        (False, 1 / 1.2 - 1 / _N, 2),  # at least 2
    ],
)
def test_thermostat_batch_control_closed_form(replace: bool, needed: float, batch: int):
    lr, trace = 0.1, 0.6
    estimator = _estimator(4, replace=replace)
    thermostat = ng.Thermostat(estimator, _temperature_for(needed, lr, trace), lr=lr, control="batch", smoothing=0.0)
    thermostat.observe(_info(trace))
    assert estimator.batch_size == batch
    assert thermostat.lr == lr  # the rate stays fixed under batch control
    assert thermostat.state_dict() == {"trace": trace, "lr": lr, "batch_size": batch}


def test_thermostat_loads_the_boundaries_of_its_state():
    """``trace`` may be ``None`` or 0; a batch of all N is allowed without replacement, N + 1 is not; with
    replacement any batch size is."""
    thermostat = ng.Thermostat(_estimator(4), 1e-3, lr=0.1, control="batch")
    thermostat.load_state_dict({"trace": 0.0, "lr": 0.2, "batch_size": _N})
    assert thermostat.state_dict() == {"trace": 0.0, "lr": 0.2, "batch_size": _N}
    assert thermostat.estimator.batch_size == _N
    assert thermostat(0) == 0.2
    thermostat.load_state_dict({"trace": None, "lr": 0.3, "batch_size": 5})
    assert thermostat.state_dict() == {"trace": None, "lr": 0.3, "batch_size": 5}
    with pytest.raises(ValueError, match="number of examples"):
        thermostat.load_state_dict({"trace": 1.0, "lr": 0.3, "batch_size": _N + 1})
    with pytest.raises(ValueError, match="keys"):
        thermostat.load_state_dict({"trace": 1.0, "lr": 0.3, "batch_size": 5, "extra": 1})
    with pytest.raises(ValueError, match="keys"):
        thermostat.load_state_dict([("trace", 1.0), ("lr", 0.3), ("batch_size", 5)])  # type: ignore[arg-type]
    assert thermostat.state_dict() == {"trace": None, "lr": 0.3, "batch_size": 5}
    iid = ng.Thermostat(_estimator(4, replace=True), 1e-3, lr=0.1, control="batch")
    iid.load_state_dict({"trace": 1.5, "lr": 0.1, "batch_size": _N + 5})
    assert iid.state_dict() == {"trace": 1.5, "lr": 0.1, "batch_size": _N + 5}


def test_thermostat_refuses_a_bad_estimator_and_control():
    with pytest.raises(TypeError, match="MiniBatch"):
        ng.Thermostat(ng.FullBatch(_estimator().objective), 1e-3, lr=0.1)  # type: ignore[arg-type]
    for control in ("lr", "batch"):
        assert ng.Thermostat(_estimator(), 1e-3, lr=0.1, control=control).control == control
    with pytest.raises(ValueError, match="control"):
        ng.Thermostat(_estimator(), 1e-3, lr=0.1, control="rate")


# ---------------------------------------------------------------------------------------------- checks.py


def test_check_positive_bounds_and_types():
    assert check_positive("a", 3) == 3.0
    assert type(check_positive("a", 3)) is float
    assert check_positive("a", np.float32(0.5)) == 0.5  # any numbers.Real
    assert check_positive("a", 1e-300) == 1e-300
    assert check_positive("a", 1.0) == 1.0
    assert check_positive("a", 0.5) == 0.5
    assert check_positive("a", 0.0, allow_zero=True) == 0.0
    assert check_positive("a", 0.5, allow_zero=True) == 0.5
    for bad in (0.0, -1e-300, -1.0, math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="a must be a finite number > 0"):
            check_positive("a", bad)
    for bad in (-1e-300, math.nan, math.inf):
        with pytest.raises(ValueError, match="a must be a finite number >= 0"):
            check_positive("a", bad, allow_zero=True)
    for bad in (True, False, "1", None, 1j, np.array([1.0])):
        with pytest.raises(TypeError, match="a must be a real number"):
            check_positive("a", bad)


def test_check_in_range_defaults_to_closed_low_and_open_high():
    assert check_in_range("a", 0.0, 0.0, 1.0) == 0.0
    assert check_in_range("a", 1, 0.0, 2.0) == 1.0
    assert type(check_in_range("a", 1, 0.0, 2.0)) is float
    with pytest.raises(ValueError, match=r"a must lie in \[0.0, 1.0\), got 1.0"):
        check_in_range("a", 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"\(0.0, 1.0\]"):
        check_in_range("a", 0.0, 0.0, 1.0, low_open=True, high_open=False)
    assert check_in_range("a", 1.0, 0.0, 1.0, low_open=True, high_open=False) == 1.0
    assert check_in_range("a", 1e-300, 0.0, 1.0, low_open=True) == 1e-300
    assert check_in_range("a", 1.0 - 2**-53, 0.0, 1.0) == 1.0 - 2**-53
    for bad in (-1e-300, 1.5, math.nan):
        with pytest.raises(ValueError, match="a must lie in"):
            check_in_range("a", bad, 0.0, 1.0)
    with pytest.raises(ValueError, match="a must lie in"):  # in the closed interval, but not finite
        check_in_range("a", math.inf, 0.0, math.inf, high_open=False)
    for bad in (True, "0.5", None):
        with pytest.raises(TypeError, match="a must be a real number"):
            check_in_range("a", bad, 0.0, 1.0)


def test_check_positive_int_bounds_and_types():
    assert check_positive_int("n", 1) == 1
    assert check_positive_int("n", np.int64(7)) == 7
    assert type(check_positive_int("n", np.int64(7))) is int
    assert check_positive_int("n", 0, allow_zero=True) == 0
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n must be an integer > 0"):
            check_positive_int("n", bad)
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        check_positive_int("n", -1, allow_zero=True)
    for bad in (True, 2.0, "3", None):
        with pytest.raises(TypeError, match="n must be an integer"):
            check_positive_int("n", bad)


def test_check_finite_returns_its_tensor_and_counts_the_bad_entries():
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert check_finite("g", t) is t
    z = torch.tensor([1 + 1j, 2.0], dtype=torch.complex128)
    assert check_finite("z", z) is z
    with pytest.raises(NonFiniteGradientError, match=r"g has 1 non-finite entry \(NaN or Inf\) out of 3; lower"):
        check_finite("g", torch.tensor([1.0, math.nan, 2.0]))
    with pytest.raises(NonFiniteGradientError, match=r"g has 2 non-finite entries .* out of 3; do this"):
        check_finite("g", torch.tensor([math.inf, -math.inf, 2.0]), hint="do this")
    with pytest.raises(NonFiniteGradientError, match="z has 1"):
        check_finite("z", torch.tensor([complex(math.nan, 0.0), 1.0]))
    big = torch.full((4,), torch.finfo(torch.float32).max)  # finite entries whose sum overflows
    assert check_finite("g", big) is big


def test_check_same_shape():
    check_same_shape("a", torch.zeros(2, 3), torch.ones(2, 3), "b")
    with pytest.raises(ValueError, match=r"a has shape \(3, 2\) but b has shape \(2, 3\)"):
        check_same_shape("a", torch.zeros(3, 2), torch.ones(2, 3), "b")


def test_as_parameter_vector_dtypes_and_copies():
    out = as_parameter_vector("x0", [0.1, 0.2])
    assert out.dtype == torch.float64
    assert out.tolist() == [0.1, 0.2]
    assert as_parameter_vector("x0", [0.5], dtype=torch.float32).dtype == torch.float32
    assert as_parameter_vector("x0", np.array([1, 2])).dtype == torch.float64
    assert as_parameter_vector("x0", torch.tensor([1, 2], dtype=torch.int32)).tolist() == [1.0, 2.0]
    t32 = torch.tensor([1.0, 2.0], dtype=torch.float32)
    kept = as_parameter_vector("x0", t32)
    assert kept.dtype == torch.float32  # a floating tensor keeps its dtype
    assert as_parameter_vector("x0", t32, dtype=torch.float64).dtype == torch.float32
    kept[0] = 5.0
    assert t32[0] == 1.0  # a copy, never a view
    leaf = torch.ones(2, requires_grad=True)
    assert not as_parameter_vector("x0", leaf).requires_grad
    for bad in ([[1.0, 2.0]], [], 3.0, torch.zeros(2, 2)):
        with pytest.raises(ValueError, match="x0 must be a non-empty 1-D array"):
            as_parameter_vector("x0", bad)
    for bad in (torch.tensor([True, False]), torch.tensor([1 + 1j]), torch.tensor([1, 2], dtype=torch.int16)):
        with pytest.raises(TypeError, match="x0 must hold real numbers"):
            as_parameter_vector("x0", bad)
    with pytest.raises(TypeError, match="x0 must be a 1-D array of numbers"):
        as_parameter_vector("x0", ["a"])
    with pytest.raises(NonFiniteGradientError, match=r"x0 has 1 non-finite .*; pass finite numbers as x0"):
        as_parameter_vector("x0", [1.0, math.nan])


def test_as_dtype():
    assert as_dtype("float32") is np.float32
    assert as_dtype(np.float64) is np.float64
    assert as_dtype(np.dtype("float32")) is np.float32
    assert as_dtype(float) is np.float64
    with pytest.raises(ValueError, match="dtype must be float64 or float32, got int64"):
        as_dtype("int64")
    with pytest.raises(TypeError, match="dtype must be float64 or float32"):
        as_dtype(object())


def test_as_array_converts_checks_and_copies_only_when_asked():
    own = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert as_array("a", own, np.float64, ndim=(2,)) is own  # already right: no copy (read it only)
    fresh = as_array("a", own, np.float64, ndim=(2,), copy=True)
    assert not np.shares_memory(fresh, own)
    assert np.array_equal(fresh, own)
    ints = [[1, 2], [3, 4]]
    for copy in (False, True):
        out = as_array("a", ints, np.float64, ndim=(1, 2), copy=copy)
        assert out.dtype == np.float64
        assert out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
        fortran = as_array("a", np.asfortranarray(own), np.float32, ndim=(2,), copy=copy)
        assert fortran.flags.c_contiguous
        assert fortran.dtype == np.float32
        assert np.array_equal(fortran, own)
    assert as_array("a", np.array([1, 2], dtype=np.uint8), np.float64, ndim=(1,)).tolist() == [1.0, 2.0]
    for copy in (False, True):  # a 0-d value stays 0-d (np.ascontiguousarray would make it shape (1,))
        assert as_array("a", 3.0, np.float64, ndim=(0, 1), copy=copy).shape == ()
    for bad in (np.array([True]), np.array(["1.0"]), np.array([1j]), np.array([None])):
        with pytest.raises(TypeError, match="a must hold real numbers"):
            as_array("a", bad, np.float64, ndim=(1,))
    with pytest.raises(ValueError, match="a must have 1 or 2 dimensions, got shape"):
        as_array("a", np.zeros((1, 1, 1)), np.float64, ndim=(1, 2))
    with pytest.raises(ValueError, match=r"a has 2 non-finite values \(NaN or Inf\) out of 3"):
        as_array("a", [math.nan, 1.0, math.inf], np.float64, ndim=(1,))
    with pytest.raises(ValueError, match=r"a has 1 non-finite value \(NaN or Inf\) out of 2"):
        as_array("a", [math.nan, 1.0], np.float64, ndim=(1,), copy=True)


def test_generator_checks_return_the_generator_and_refuse_anything_else():
    rng = np.random.default_rng(0)
    assert check_generator(rng) is rng
    for bad in (None, np.random.RandomState(0), 0):
        with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
            check_generator(bad)
    gen = torch.Generator().manual_seed(0)
    assert check_torch_generator("generator", gen) is gen
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator.*\(None would fall back"):
        check_torch_generator("generator", None)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator.*; got int"):
        check_torch_generator("generator", 0)


def test_check_real():
    assert check_real("v", -3) == -3.0
    assert type(check_real("v", -3)) is float
    assert check_real("v", 0) == 0.0
    assert check_real("v", np.float64(2.5)) == 2.5
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="v must be a finite real number"):
            check_real("v", bad)
    for bad in (True, "1", None):
        with pytest.raises(TypeError, match="v must be a finite real number"):
            check_real("v", bad)


def test_check_positive_array_takes_a_float64_copy():
    values = np.array([0.5, 2.0])
    out = check_positive_array("w", values)
    assert out.dtype == np.float64
    assert out.tolist() == [0.5, 2.0]
    assert not np.shares_memory(out, values)
    assert check_positive_array("w", 2.0).tolist() == [2.0]  # a number becomes one entry
    assert check_positive_array("w", [1, 3]).dtype == np.float64
    assert check_positive_array("w", [1e-300]).tolist() == [1e-300]
    with pytest.raises(ValueError, match="w must be a non-empty 1-D array"):
        check_positive_array("w", [])
    with pytest.raises(ValueError, match=r"w must be a non-empty 1-D array, got shape \(1, 2\)"):
        check_positive_array("w", [[1.0, 2.0]])
    for bad in ([0.0, 1.0], [-1.0], [math.nan], [math.inf]):
        with pytest.raises(ValueError, match="w must hold finite numbers > 0"):
            check_positive_array("w", bad)


_CODE = """
def inner(warn, category):
    warn("deep inside", category)


def outer(warn, category):
    inner(warn, category)


def level(caller_stacklevel):
    return caller_stacklevel()
"""


def _module(name: str) -> dict[str, Any]:
    """Functions whose module is called ``name`` (compiled with the file name ``<name>``)."""
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(_CODE, f"<{name}>", "exec"), namespace)
    return namespace


def _warned_in(name: str) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _module(name)["outer"](warn, UserWarning)  # this line is the caller outside the library
    return [w.filename for w in record]


@pytest.mark.parametrize(
    ("module", "inside"),
    [
        ("noisygrad", True),
        ("noisygrad.optim.sgd", True),
        ("noisygrad.quantum", True),  # a plugin is part of the library
        ("torch.utils._contextlib", True),  # torch's frames between optimizer.step() and the library
        ("torch.optim.optimizer", True),
        ("torch.optim.lr_scheduler", True),
        ("noisygrad.tour", False),  # the tour's experiments are callers of the library
        ("noisygrad.tour.experiments.fake", False),
        ("noisygradx", False),
        ("noisygrad_plugin", False),
        ("noisygrad.touring", True),
        ("my_package.noisygrad", False),
        ("torch.optim", False),
        ("__main__", False),
    ],
)
def test_warnings_skip_exactly_the_library_frames(module: str, inside: bool):
    """``warn`` names the first frame outside the library: this test's line for a library module, the module's
    own line otherwise."""
    assert _warned_in(module) == [__file__ if inside else f"<{module}>"]
    assert _module(module)["level"](caller_stacklevel) == (2 if inside else 1)


# ---------------------------------------------------------------------------------------------- noise/tails.py


def _hill_reference(samples: np.ndarray, fraction: float) -> tuple[float, float]:
    """Hill's estimate written out: the k largest ``|x|`` over the (k+1)-th, by a full sort."""
    x = np.sort(np.abs(np.asarray(samples, dtype=np.float64)).ravel())[::-1]
    k = int(fraction * x.size)
    alpha = 1.0 / float(np.mean(np.log(x[:k] / x[k])))
    return alpha, alpha / math.sqrt(k)


def _student(n: int, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(3.0, n)  # signed, heavy-tailed draws


def test_hill_tail_index_equals_its_closed_form():
    """Signed draws in any shape, as numpy or torch: ``1 / mean log(X_(i) / X_(k+1))``, s.e. ``alpha / sqrt(k)``."""
    samples = _student(4000)
    want = _hill_reference(samples, 0.01)  # k = 40
    got = hill_tail_index(samples, fraction=0.01)
    assert got == pytest.approx(want, rel=1e-12)
    assert hill_tail_index(samples.reshape(40, 100), fraction=0.01) == got
    assert hill_tail_index(torch.from_numpy(samples), fraction=0.01) == got
    assert hill_tail_index(-samples, fraction=0.01) == got
    assert hill_tail_index(samples, fraction=0.05) == pytest.approx(_hill_reference(samples, 0.05), rel=1e-12)
    # an order where a partial sort around the wrong position leaves smaller draws among the top k + 1 (numpy's
    # introselect, found by a search over seeds); the estimate must still use exactly the k + 1 largest
    ranks = np.random.default_rng(119).permutation(1000) + 1.0
    assert hill_tail_index(ranks, fraction=0.05) == pytest.approx(_hill_reference(ranks, 0.05), rel=1e-12)


def test_hill_tail_index_is_scale_free():
    """A power law has no scale: draws multiplied by 1e-3 (all below 1) have the same index."""
    samples = _student(4000)
    alpha, se = hill_tail_index(samples, fraction=0.01)
    small = hill_tail_index(samples * 1e-3, fraction=0.01)
    assert small == pytest.approx((alpha, se), rel=1e-9)


def test_hill_tail_index_default_fraction_and_the_bounds_of_k():
    """``fraction`` defaults to 0.001; ``k = fraction * n`` of exactly 20 is enough, 19 is not."""
    samples = _student(20_000)
    assert hill_tail_index(samples) == hill_tail_index(samples, fraction=0.001)
    assert hill_tail_index(samples) == pytest.approx(_hill_reference(samples, 0.001), rel=1e-12)
    assert hill_tail_index(samples[:2000], fraction=0.01)[1] == pytest.approx(
        hill_tail_index(samples[:2000], fraction=0.01)[0] / math.sqrt(20), rel=1e-15
    )
    with pytest.raises(ValueError, match=r"fraction \* len\(samples\) >= 20, got 19 \(n = 19999\)"):
        hill_tail_index(samples[:19_999])
    with pytest.raises(ValueError, match=r"got 19 \(n = 1999\)"):
        hill_tail_index(samples[:1999], fraction=0.01)


def test_hill_tail_index_fraction_is_an_open_interval():
    samples = _student(4000)
    assert hill_tail_index(samples, fraction=0.499) == pytest.approx(_hill_reference(samples, 0.499), rel=1e-12)
    for bad in (0.0, 0.5, 0.6, -0.1):
        with pytest.raises(ValueError, match=r"fraction must lie in \(0.0, 0.5\)"):
            hill_tail_index(samples, fraction=bad)


def test_hill_tail_index_refuses_a_zero_threshold_and_non_finite_draws():
    samples = np.zeros(2000)
    samples[:20] = np.arange(1.0, 21.0)  # k = 20 positive draws, the 21st largest is 0
    with pytest.raises(ValueError, match="the \\(k\\+1\\)-th largest \\|sample\\| is 0"):
        hill_tail_index(samples, fraction=0.01)
    samples[20] = 0.5  # a positive threshold: accepted
    assert hill_tail_index(samples, fraction=0.01) == pytest.approx(_hill_reference(samples, 0.01), rel=1e-12)
    samples[5] = math.inf
    with pytest.raises(ValueError, match="samples must be finite"):
        hill_tail_index(samples, fraction=0.01)


def _kesten_moment(lr: float, alpha: float) -> float:
    """``E|1 - lr x^2|^alpha`` for ``x ~ N(0, 1)`` (batch size 1), by a quadrature in ``x`` split at the kink."""
    kink = 1.0 / math.sqrt(lr)

    def f(x: float) -> float:
        return abs(1.0 - lr * x * x) ** alpha * math.exp(-0.5 * x * x) * math.sqrt(2.0 / math.pi)

    left, _ = scipy.integrate.quad(f, 0.0, kink, limit=200)
    right, _ = scipy.integrate.quad(f, kink, np.inf, limit=200)
    return left + right


def test_kesten_tail_index_solves_the_moment_equation_below_one():
    """At ``lr = 1.5`` the index is below 1 (about 0.477): it solves ``E|1 - lr x^2|^alpha = 1``, checked by an
    independent quadrature in ``x``, to 1e-8."""
    alpha = kesten_tail_index(1.5)
    assert 0.47 < alpha < 0.48
    assert _kesten_moment(1.5, alpha) == pytest.approx(1.0, abs=1e-8)
    assert _kesten_moment(1.5, 0.99 * alpha) < 1.0 < _kesten_moment(1.5, 1.01 * alpha)


def test_kesten_tail_index_defaults_to_batches_of_one():
    assert kesten_tail_index(0.5) == kesten_tail_index(0.5, 1)
    assert kesten_tail_index(0.5, 2) > 1.5 * kesten_tail_index(0.5)
    with pytest.raises(ValueError, match=r"lr=3\.0 is too large for batch_size=1"):
        kesten_tail_index(3.0)
