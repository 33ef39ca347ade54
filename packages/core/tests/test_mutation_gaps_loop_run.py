"""Exact tests that close the mutation-testing gaps of ``loop.py`` and ``loop_checks.py`` (issue 18).

``minimize``'s own behaviour, step by step: the history record of each step (its keys and values), what a callback
sees, the result's defaults and repr, ``x0`` projected before the first step, the default seed and the caller's
generator, the status message of a resumed run, ``nfev`` after a checkpoint that predates its count, the fused
path given every argument, and the documented default history size (10,000 records). And its checks: which
``x0`` is refused with which error, the note added to a failure of the first estimate, the three explanations of a
NaN/Inf, and ``update_checked`` on a rule that does not check its gradient.

Every check is exact: the objective is ``|x - 1|^2`` with its gradient from autograd (``FullBatch``) and dyadic
learning rates, so each iterate, value and gradient norm is a closed form in float64; the fused path is compared
with the step-by-step loop to rounding (``rtol=1e-12``), as ``test_reliability_core.py`` does. No statistical
claim is made, so there is no Monte-Carlo tolerance.
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
from noisygrad.estimators.base import Cost, Estimate, Stateless
from noisygrad.loop import MinimizeResult, StepInfo
from noisygrad.loop_checkpoint import CheckpointError, checkpoint_checksum
from noisygrad.loop_checks import explain_non_finite, note_first_estimate_failure, update_checked
from noisygrad.loop_fused import fused_reason

F64 = torch.float64


def _bowl() -> ng.Energy:
    """``f(x) = |x - 1|^2``: gradient ``2 (x - 1)``, exact in float64 for dyadic ``x``."""
    return ng.Energy(lambda x: ((x - 1.0) ** 2).sum())


class _Holder:
    """A bare objective-like object: only the attributes a test gives it."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


# ------------------------------------------------------------------------------------------------ the loop


def test_each_step_is_recorded_and_called_back_with_its_exact_values() -> None:
    """SGD with ``lr(t) = 0.25 / (t + 1)`` from ``(0, 3)``: ``x1 = (0.5, 2)``, ``x2 = (0.625, 1.75)``."""
    seen: list[StepInfo] = []
    result = ng.minimize(
        ng.FullBatch(_bowl()), ng.SGD(lambda t: 0.25 / (t + 1)), [0.0, 3.0], steps=2, callbacks=[seen.append]
    )
    zero = {"examples": 0, "evaluations": 0, "shots": 0}  # autograd: no evaluations counted, no examples
    assert result.history == [
        {"step": 1, "value": 5.0, "grad_norm": math.sqrt(20.0), "lr": 0.25, **zero},
        {"step": 2, "value": 1.25, "grad_norm": math.sqrt(5.0), "lr": 0.125, **zero},
    ]
    assert [(info.step, info.lr, info.accepted, info.details) for info in seen] == [
        (1, 0.25, True, {}),
        (2, 0.125, True, {}),
    ]
    assert torch.equal(seen[0].x, torch.tensor([0.5, 2.0], dtype=F64))
    assert torch.equal(seen[0].estimate.grad, torch.tensor([-2.0, 4.0], dtype=F64))
    assert torch.equal(result.x, torch.tensor([0.625, 1.75], dtype=F64))
    assert (result.nit, result.rejected, result.fun, result.nfev) == (2, 0, 0.375**2 + 0.75**2, 2)
    assert result.stopped_by_callback is False
    assert (result.status, result.success, result.message) == (0, True, "took all 2 steps asked for")


def test_a_black_box_step_records_its_value_as_nan_and_its_evaluations() -> None:
    box = ng.NoisyBlackBox(lambda points, generator: ((points - 1.0) ** 2).sum(1))
    result = ng.minimize(ng.CentralDifference(box, step=0.5), ng.SGD(0.25), [0.0], steps=1)
    (record,) = result.history
    assert math.isnan(record.pop("value"))  # a black box gives no value with its gradient
    assert record == {"step": 1, "grad_norm": 2.0, "lr": 0.25, "examples": 0, "evaluations": 2, "shots": 0}
    assert (result.fun, result.rejected, result.stopped_by_callback) == (None, 0, False)


def test_step_info_is_frozen_and_defaults_to_an_accepted_step_without_details() -> None:
    estimate = Estimate(torch.zeros(2, dtype=F64), 1.0, Cost())
    info = StepInfo(3, torch.ones(2, dtype=F64), estimate, 0.1, Cost(examples=4))
    assert (info.accepted, info.details) == (True, {})
    assert StepInfo(3, info.x, estimate, 0.1, Cost()).details is not info.details  # a fresh dict each
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.step = 4  # type: ignore[misc]


def test_the_result_defaults_and_its_repr_leaves_the_checkpoint_out() -> None:
    result = MinimizeResult(torch.zeros(1), 0.0, 1, Cost(), [], False, {"x": torch.arange(7)})
    assert (result.rejected, result.fun_estimate, result.fun_stderr, result.nfev) == (0, None, None, 0)
    assert (result.status, result.success, result.message) == (0, True, "")
    assert "checkpoint" not in repr(result)
    assert repr(result).startswith("MinimizeResult(x=tensor([0.]), fun=0.0, nit=1,")


def test_x0_outside_the_box_is_projected_before_the_first_estimate() -> None:
    """x0 = (3, -3) in [-1, 1]^2 is (1, -1): gradient (0, -4), value 4, and with lr 0.25 the step lands on (1, 0)."""
    x0 = torch.tensor([3.0, -3.0], dtype=F64)
    result = ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.25), x0, steps=1, projection=ng.Projection(-1.0, 1.0))
    assert torch.equal(result.x, torch.tensor([1.0, 0.0], dtype=F64))
    assert (result.history[0]["value"], result.history[0]["grad_norm"]) == (4.0, 4.0)
    assert torch.equal(x0, torch.tensor([3.0, -3.0], dtype=F64))  # the caller's x0 is not projected in place


class _OnlyEstimate:
    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        return Estimate(torch.zeros_like(params), 0.0, Cost())


class _OnlyUpdate:
    lr = None  # an attribute, not a schedule

    def update(self, params: torch.Tensor, grad: torch.Tensor, state: Any) -> Any:
        return params, state


def test_an_estimator_or_optimizer_that_is_not_one_is_refused_naming_what_it_lacks() -> None:
    with pytest.raises(TypeError, match=r"^estimator must be a noisygrad estimator .*got object \(no estimate, "):
        ng.minimize(object(), ng.SGD(0.1), [0.0], steps=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^estimator must .*got _OnlyEstimate \(no state_dict, load_state_dict\)$"):
        ng.minimize(_OnlyEstimate(), ng.SGD(0.1), [0.0], steps=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^optimizer must be a noisygrad optimizer .*got _OnlyUpdate \(no init, lr\)$"):
        ng.minimize(ng.FullBatch(_bowl()), _OnlyUpdate(), [0.0], steps=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("part", ["projection", "blocking", "averaging", "final"])
def test_a_part_of_the_wrong_kind_is_refused_naming_its_slot(part: str) -> None:
    wrong = ng.Blocking(allowed_increase=0.0) if part != "blocking" else ng.IterateAveraging(2)
    expected = {"projection": "Projection", "blocking": "Blocking", "averaging": "IterateAveraging"}
    kind = expected.get(part, "FinalEstimate")
    with pytest.raises(TypeError, match=rf"^{part} must be a noisygrad\.{kind} or None, got {type(wrong).__name__}$"):
        ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.1), [0.0], steps=1, **{part: wrong})


def _noisy_run(**kwargs: Any) -> ng.MinimizeResult:
    box = ng.NoisyBlackBox(lambda p, g: ((p - 1.0) ** 2).sum(1) + 0.3 * torch.randn(len(p), generator=g, dtype=p.dtype))
    return ng.minimize(ng.SPSA(box, c=0.1), ng.SGD(0.1), [0.0, 0.0], steps=5, **kwargs)


def test_the_default_seed_is_zero_and_another_seed_gives_another_run() -> None:
    default, zero, one = _noisy_run(), _noisy_run(seed=0), _noisy_run(seed=1)
    assert torch.equal(default.x, zero.x)  # same seed, same bits
    assert torch.equal(default.checkpoint["generator"], zero.checkpoint["generator"])
    assert not torch.equal(default.x, one.x)  # another seed, another run


@pytest.mark.parametrize("callbacks", [{print}, "print", print], ids=["set", "str", "callable"])
def test_callbacks_that_are_not_a_sequence_are_refused_naming_callbacks(callbacks: Any) -> None:
    with pytest.raises(TypeError, match=r"^callbacks must be a sequence of callables \(a list\)"):
        ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.1), [0.0], steps=1, callbacks=callbacks)


def test_a_callback_stop_in_a_resumed_run_counts_the_steps_of_that_call() -> None:
    first = ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.25), [0.0], steps=3)
    steps_seen: list[int] = []

    def stop_at_5(info: StepInfo) -> Any:
        steps_seen.append(info.step)
        return 1 if info.step == 4 else info.step == 5  # only True stops: 1 is not True

    rest = ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.25), steps=10, resume=first.checkpoint, callbacks=[stop_at_5])
    assert steps_seen == [4, 5]
    assert (rest.nit, rest.status, rest.stopped_by_callback) == (5, 1, True)
    assert rest.message == "a callback stopped the run after 2 of 10 steps"


def test_a_checkpoint_without_the_evaluation_count_resumes_counting_from_zero() -> None:
    """An older checkpoint (no schema, no ``value_and_grad_calls``): nfev counts this call's steps only."""
    first = ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.25), [0.0], steps=3)
    dropped = ("format", "version", "kinds", "params", "checksum", "value_and_grad_calls")
    older = {k: v for k, v in first.checkpoint.items() if k not in dropped}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rest = ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.25), steps=2, resume=older)
    assert (rest.nit, rest.nfev) == (5, 2)
    assert rest.checkpoint["value_and_grad_calls"] == 2


def _thermostat_run() -> tuple[ng.MiniBatch, ng.SGD, ng.Thermostat]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=gen, dtype=F64)
    estimator = ng.MiniBatch(ng.GLM(X, X.sum(1), loss="squared"), 8, noise_stats=True)
    thermostat = ng.Thermostat(estimator, 1e-4, lr=0.05, control="lr", smoothing=0.5, lr_max=0.5)
    return estimator, ng.SGD(thermostat), thermostat


def test_a_resume_whose_estimator_state_fails_puts_the_thermostat_back() -> None:
    """The thermostat's state is loaded before the estimator's; when the estimator refuses its state, the
    thermostat gets its own state back (all or nothing)."""
    estimator, optimizer, thermostat = _thermostat_run()
    done = ng.minimize(estimator, optimizer, torch.zeros(3, dtype=F64), steps=5, callbacks=[thermostat.observe])
    broken = {**done.checkpoint, "estimator": {"junk": 1}}
    broken["checksum"] = checkpoint_checksum(broken)
    estimator, optimizer, thermostat = _thermostat_run()
    before = thermostat.state_dict()
    assert before != done.checkpoint["companions"][0]["state"]  # loading it would change the thermostat
    with pytest.raises(CheckpointError, match=r"resume\['estimator'\] does not fit the MiniBatch"):
        ng.minimize(estimator, optimizer, steps=1, resume=broken, callbacks=[thermostat.observe])
    assert thermostat.state_dict() == before


# ------------------------------------------------------------------------------------------ the checks


def test_a_complex_scalar_x0_is_refused_as_complex() -> None:
    with pytest.raises(TypeError, match=r"^x0 must be real"):
        ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.1), 1j, steps=1)


def test_a_ragged_x0_is_refused_as_not_an_array_not_as_complex() -> None:
    with pytest.raises(TypeError, match=r"^x0 must be a 1-D array of numbers, got list"):
        ng.minimize(ng.FullBatch(_bowl()), ng.SGD(0.1), [[1.0], [2.0, 3.0]], steps=1)


@pytest.mark.parametrize("n_params", [2, np.int64(2)], ids=["int", "numpy"])
def test_an_objective_that_states_n_params_names_it_for_a_wrong_x0(n_params: Any) -> None:
    class Stated(ng.NoisyBlackBox):
        pass

    box = Stated(lambda points, generator: (points**2).sum(1))
    box.n_params = n_params  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"^x0 must have 2 entries, one per parameter \(the objective's n_params\)"):
        ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [0.0, 0.0, 0.0], steps=1)
    assert ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [1.0, 1.0], steps=1).nit == 1


def _note(x: torch.Tensor, objective: object) -> str:
    exc = RuntimeError("the user's loss failed")
    note_first_estimate_failure(exc, x, objective)
    (note,) = exc.__notes__
    return note


def test_the_note_of_a_first_estimate_failure_names_only_what_differs() -> None:
    x = torch.zeros(2, dtype=F64)
    head = "noisygrad.minimize: this came from the first gradient estimate, at x0 (shape (2,), torch.float64 on cpu)."
    unstated = (
        "The objective does not state its number of parameters: check that x0's length is the one its loss expects."
    )
    matching = _Holder(data=(torch.zeros(3, 2, dtype=F64), torch.arange(3)))  # float64 and integer data, on cpu
    assert _note(x, matching) == (
        f"{head} The objective's data: data[0] shape (3, 2), torch.float64 on cpu; data[1] shape (3,), torch.int64 "
        f"on cpu. {unstated}"
    )
    integers = _Holder(data=(torch.arange(6).reshape(3, 2),), n_params=2)  # no floating data: no dtype to compare
    assert _note(x, integers) == f"{head} The objective's data: data[0] shape (3, 2), torch.int64 on cpu."
    elsewhere = _Holder(data=(torch.zeros(3, 2, dtype=torch.float32, device="meta"),), n_params=2)
    assert _note(x, elsewhere) == (
        f"{head} The objective's data: data[0] shape (3, 2), torch.float32 on meta. x0 is torch.float64 but the "
        "data are torch.float32: pass x0 in the data's dtype. x0 is on cpu but the data are on meta: put them on "
        "one device."
    )
    assert _note(x, _Holder(data=[torch.zeros(3)], n_params=2)) == head  # data that are not a tuple: not read
    assert _note(x, None) == f"{head} {unstated}"


def test_explain_non_finite_tells_the_three_causes_apart() -> None:
    found = ng.NonFiniteGradientError("gradient has 1 non-finite entry; a generic hint")
    dirty = _Holder(data=(torch.tensor([1.0, math.nan, math.inf]), torch.arange(3), torch.tensor([math.nan * 1j])))
    at_x0 = explain_non_finite(found, step=0, at_x0=True, objective=dirty)
    assert type(at_x0) is ng.NonFiniteGradientError
    assert str(at_x0) == (
        "the objective/data give NaN at x0, before any step: gradient has 1 non-finite entry; its data hold NaN/Inf "
        "(data[0] has 2 of 3; data[2] has 1 of 1 non-finite entries). The learning rate has not acted yet: check "
        "the objective and its data at x0"
    )
    assert str(explain_non_finite(found, step=0, at_x0=True, objective=None)) == (
        "the objective/data give NaN at x0, before any step: gradient has 1 non-finite entry; the objective gives "
        "NaN/Inf. The learning rate has not acted yet: check the objective and its data at x0"
    )
    assert str(explain_non_finite(found, step=7, at_x0=False, objective=dirty)) == (
        "non-finite values at step 7: gradient has 1 non-finite entry; the objective's data hold NaN/Inf (data[0] "
        "has 2 of 3; data[2] has 1 of 1 non-finite entries), which the estimates drew only now: clean the data (the "
        "learning rate is not the cause)"
    )
    assert str(explain_non_finite(found, step=7, at_x0=False, objective=_Holder(data=(torch.ones(2),)))) == (
        "diverged at step 7: gradient has 1 non-finite entry at the iterate after 7 steps, from a finite x0: lower "
        "the learning rate, check the objective for overflow, or clip gradients"
    )


class _Unchecked:
    """A rule that does not check its gradient: ``x - grad``, or ``x - nan_to_num(grad)`` with ``tolerant``."""

    def __init__(self, tolerant: bool = False) -> None:
        self.tolerant = tolerant

    def update(self, x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        return x - (torch.nan_to_num(grad, nan=0.0) if self.tolerant else grad), {"step": state["step"] + 1}


class _Named(Stateless):
    def __init__(self, objective: object = None) -> None:
        self.objective = objective


def _update(grad: list[float], x: list[float] | None = None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    x_t = torch.zeros(len(grad), dtype=F64) if x is None else torch.tensor(x, dtype=F64)
    est = Estimate(torch.tensor(grad, dtype=F64), None, Cost())
    rule = _Unchecked(kwargs.pop("tolerant", False))
    estimator = _Named(kwargs.pop("objective", None))
    return update_checked(rule, x_t, est, {"step": 4}, estimator=estimator, step=4, at_x0=False, **kwargs)


def test_update_checked_names_a_non_finite_gradient_that_the_rule_let_through() -> None:
    with pytest.raises(ng.NonFiniteGradientError) as one:
        _update([1.0, math.nan])
    assert str(one.value) == (
        "diverged at step 4: gradient of _Named has 1 non-finite entry (NaN or Inf) out of 2 at the iterate after 4 "
        "steps, from a finite x0: lower the learning rate, check the objective for overflow, or clip gradients"
    )
    with pytest.raises(ng.NonFiniteGradientError, match=r"^non-finite values at step 4: gradient of _Named has 2 "):
        _update([math.inf, math.nan], objective=_Holder(data=(torch.tensor([math.nan]),)))


def test_update_checked_tells_an_overflowing_update_from_a_bad_gradient() -> None:
    with pytest.raises(ng.NonFiniteGradientError) as overflow:
        _update([-1e308, 0.0], x=[1e308, 0.0])  # 1e308 + 1e308 overflows: the gradient was finite
    assert str(overflow.value) == (
        "diverged at step 5: the update made the parameters NaN/Inf from a finite gradient; lower the learning rate, "
        "check the objective for overflow, or clip gradients"
    )
    big, state = _update([0.0, 0.0], x=[1e308, 1e308])  # finite entries whose sum overflows are finite
    assert torch.equal(big, torch.tensor([1e308, 1e308], dtype=F64))
    assert state == {"step": 5}


def test_update_checked_leaves_a_gradient_alone_when_the_rule_returns_a_finite_candidate() -> None:
    """The gradient is examined only when the candidate is not finite (one reduction per step): a rule that
    handles a NaN gradient itself (here ``nan_to_num``) is not second-guessed."""
    candidate, state = _update([math.nan, 2.0], tolerant=True)
    assert torch.equal(candidate, torch.tensor([0.0, -2.0], dtype=F64))
    assert state == {"step": 5}


# ------------------------------------------------------------------- last: the slow tests (numba, 10,000 steps)


def _saga() -> ng.SAGA:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 5, generator=gen, dtype=F64)
    y = X @ torch.ones(5, dtype=F64) + 0.1 * torch.randn(200, generator=gen, dtype=F64)
    return ng.SAGA(ng.GLM(X, y, loss="squared", l2=1e-3), 8)


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": 5, "record_every": 4, "history_size": 3}, {"generator": 9}],
    ids=["seed-record-history", "generator"],
)
def test_the_fused_path_is_given_every_argument(kwargs: dict[str, Any]) -> None:
    """The fused run (no callbacks) and the step-by-step one (a no-op callback) agree on the records, the draws and
    the point (to rounding): so seed, record_every, history_size and generator all reached the fused run."""
    if fused_reason(_saga(), ng.SGD(0.02)) is not None:
        pytest.skip(f"the fused path is not available here: {fused_reason(_saga(), ng.SGD(0.02))}")

    def run(**extra: Any) -> ng.MinimizeResult:
        args = dict(kwargs)
        if "generator" in args:
            args["generator"] = torch.Generator().manual_seed(args["generator"])
        return ng.minimize(_saga(), ng.SGD(0.02), torch.zeros(5, dtype=F64), steps=30, **args, **extra)

    fused, stepwise = run(), run(callbacks=[lambda info: None])
    default = ng.minimize(_saga(), ng.SGD(0.02), torch.zeros(5, dtype=F64), steps=30)
    expected_steps = [20, 24, 28] if "record_every" in kwargs else list(range(1, 31))
    assert [r["step"] for r in fused.history] == [r["step"] for r in stepwise.history] == expected_steps
    assert torch.equal(fused.checkpoint["generator"], stepwise.checkpoint["generator"])
    assert not torch.equal(fused.checkpoint["generator"], default.checkpoint["generator"])  # not seed 0's draws
    torch.testing.assert_close(fused.x, stepwise.x, rtol=1e-12, atol=1e-14)


class _Zero(Stateless):
    """A gradient estimate of 0 with value 0: the cheapest step the loop can take."""

    def __init__(self) -> None:
        self.objective = ng.Energy(lambda x: (x**2).sum())

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        return Estimate(torch.zeros_like(params), 0.0, Cost())


def test_the_default_history_keeps_the_last_10000_records() -> None:
    """docs/reliability.md: minimize keeps the last ``history_size`` records, default 10,000."""
    result = ng.minimize(_Zero(), ng.SGD(0.1), [0.0], steps=10_001)
    assert (len(result.history), result.history[0]["step"], result.history[-1]["step"]) == (10_000, 2, 10_001)
    assert result.nit == result.nfev == 10_001
