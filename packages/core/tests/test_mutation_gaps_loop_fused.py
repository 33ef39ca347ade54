"""Exact tests that close the mutation-testing gaps of ``loop_fused.py`` and ``loop_checkpoint.py`` (issue 18).

``minimize_fused``: which steps stay in Python (counted exactly: one at ``x0``, none on a resume, none for a
zero learning rate, none across the bounded kernel stretches), how long one kernel call may be, the schedule's
refused rates (NaN, negative) at their step on a fresh and a resumed run, the result's status and message (a
finite run whose value overflows: status 2, as ``minimize``), the bounded and unbounded history, the caller's
generator after a divergence, and the checks of ``resume=``. The checkpoint schema: the checksum's type tags
(a sparse tensor hashes as its dense form, ``np.int64(5)`` as ``5``, ``True`` not as ``1``), ``check_stamped``,
the structural refusals of ``check_checkpoint`` at their boundary, a failed estimator or companion load put
back, and the companions found. Every check is exact (same seeds, same draws; counts and bits compared), or to
rounding where the compiled and step-by-step paths sum in different orders (relative 1e-12 in float64); no
statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import noisygrad as ng
import noisygrad.loop_fused as loop_fused
from noisygrad import SGD, NonFiniteGradientError, minimize
from noisygrad.estimators.variance_reduction import SAGA, SVRG
from noisygrad.glm import GLM
from noisygrad.loop_checkpoint import (
    CheckpointError,
    LegacyCheckpointWarning,
    check_checkpoint,
    check_stamped,
    checkpoint_checksum,
    companion_states,
    companions_of,
    load_companion_states,
    load_estimator_state,
)
from noisygrad.loop_fused import fused_reason, minimize_fused

F64 = torch.float64
N, D = 60, 3


def _glm(d: int = D) -> GLM:
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(N, d, generator=gen, dtype=F64)
    y = X @ torch.linspace(1.0, -2.0, d, dtype=F64) + 0.1 * torch.randn(N, generator=gen, dtype=F64)
    return GLM(X, y, loss="squared", l2=0.01)


def _x0(d: int = D) -> torch.Tensor:
    return torch.zeros(d, dtype=F64)


def _counting(estimator: Any) -> list[int]:
    """Count the Python calls of ``estimator.estimate`` (the compiled stretches do not call it)."""
    calls = [0]
    method = estimator.estimate

    def estimate(params: torch.Tensor, generator: torch.Generator) -> Any:
        calls[0] += 1
        return method(params, generator)

    estimator.estimate = estimate
    return calls


def _observe(info: Any) -> None:
    """A callback that does nothing: it keeps ``minimize`` step by step."""


STEP_BY_STEP = [_observe]
FACTORIES = {"saga": lambda o: SAGA(o, 4), "svrg": lambda o: SVRG(o, 4)}

needs_fused = pytest.mark.skipif(
    fused_reason(SAGA(_glm(), 4), SGD(0.1)) is not None, reason="the fused path needs numba"
)


# ----------------------------------------------------------------------------------------------- loop_checkpoint


def _checkpoint(steps: int = 4) -> dict[str, Any]:
    return ng.minimize(ng.MiniBatch(_glm(), 8), ng.Adam(0.05), _x0(), steps=steps, seed=3).checkpoint


def _legacy(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in checkpoint.items() if k not in ("format", "version", "kinds", "params", "checksum")}


def _check_legacy(checkpoint: dict[str, Any], optimizer: object = None, estimator: object = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyCheckpointWarning)
        return check_checkpoint(
            checkpoint,
            optimizer=ng.Adam(0.05) if optimizer is None else optimizer,
            estimator=ng.MiniBatch(_glm(), 8) if estimator is None else estimator,
        )


def test_the_format_is_the_literal_name_and_a_stamped_checkpoint_passes_without_a_warning() -> None:
    checkpoint = _checkpoint()
    assert checkpoint["format"] == "noisygrad.minimize"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_checkpoint(checkpoint, optimizer=ng.Adam(0.05), estimator=ng.MiniBatch(_glm(), 8)) is checkpoint


def test_the_checksum_tags_types_and_takes_any_keys() -> None:
    dense = torch.tensor([[0.0, 1.5], [0.0, 0.0]], dtype=F64)
    assert checkpoint_checksum({"a": dense.to_sparse()}) == checkpoint_checksum({"a": dense})
    assert checkpoint_checksum({"a": np.int64(5)}) == checkpoint_checksum({"a": 5})
    assert checkpoint_checksum({"a": np.float64(0.25)}) == checkpoint_checksum({"a": 0.25})
    assert checkpoint_checksum({"a": True}) != checkpoint_checksum({"a": 1})
    assert checkpoint_checksum({"a": None}) != checkpoint_checksum({"a": "None"})
    assert checkpoint_checksum({"a": b"xy"}) != checkpoint_checksum({"a": "xy"})
    assert checkpoint_checksum({"a": b"xy"}) != checkpoint_checksum({"a": b"xz"})
    # keys of several types, in any order; the checksum entry itself is left out
    mixed = {2: "b", "a": 1, (1, 2): [3]}
    assert checkpoint_checksum(mixed) == checkpoint_checksum(dict(reversed(list(mixed.items()))))
    assert checkpoint_checksum({**mixed, "checksum": "anything"}) == checkpoint_checksum(mixed)
    assert checkpoint_checksum({"a": [1]}) != checkpoint_checksum({"a": (1,)})


def _plugin_state() -> dict[str, Any]:
    state = {"w": torch.arange(3.0, dtype=F64), "settings": {"mu": 0.5, "kernel": "fast"}}
    state["checksum"] = checkpoint_checksum(state)
    return state


def test_check_stamped_passes_an_intact_state_and_refuses_each_fault_naming_it() -> None:
    state = _plugin_state()
    check_stamped(state, keys=("w", "settings"), settings={"mu": 0.5, "kernel": "fast"}, hint="pass mu=")
    with pytest.raises(CheckpointError, match=r"^resume: the checkpoint is truncated: \['w'\] missing$"):
        check_stamped({k: v for k, v in state.items() if k != "w"}, keys=("w", "settings"), settings={}, hint="")
    with pytest.raises(CheckpointError, match=r"truncated: \['checksum'\] missing"):
        check_stamped({k: v for k, v in state.items() if k != "checksum"}, keys=("w",), settings={}, hint="")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        check_stamped({**state, "w": torch.zeros(3, dtype=F64)}, keys=("w",), settings={}, hint="")
    with pytest.raises(CheckpointError, match=r"settings\['mu'\] is 0.5 in the checkpoint but 0.25 here; pass mu="):
        check_stamped(state, keys=("w",), settings={"mu": 0.25}, hint="pass mu=")


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_a_version_that_is_not_an_integer_at_least_1_is_refused(version: object) -> None:
    checkpoint = copy.deepcopy(_checkpoint())
    checkpoint["version"] = version
    checkpoint["checksum"] = checkpoint_checksum(checkpoint)
    with pytest.raises(CheckpointError, match="version must be an integer >= 1"):
        check_checkpoint(checkpoint, optimizer=ng.Adam(0.05), estimator=ng.MiniBatch(_glm(), 8))


def test_params_that_are_not_a_dict_are_refused() -> None:
    checkpoint = copy.deepcopy(_checkpoint())
    checkpoint["params"] = [D]
    checkpoint["checksum"] = checkpoint_checksum(checkpoint)
    with pytest.raises(CheckpointError, match="params must be a dict of shape and dtype, got list"):
        check_checkpoint(checkpoint, optimizer=ng.Adam(0.05), estimator=ng.MiniBatch(_glm(), 8))


@pytest.mark.parametrize(
    "x",
    [
        torch.zeros(1, D, dtype=F64),
        torch.zeros(0, dtype=F64),
        torch.zeros(D, dtype=torch.int64),
        torch.zeros(D, dtype=torch.float16),
        torch.zeros(D, dtype=torch.bfloat16),
    ],
    ids=["2-d", "empty", "int64", "float16", "bfloat16"],
)
def test_parameters_that_are_not_a_non_empty_1d_float_vector_are_refused(x: torch.Tensor) -> None:
    checkpoint = {**_legacy(_checkpoint()), "x": x}
    with pytest.raises(CheckpointError, match=r"resume\['x'\] must be a non-empty 1-D float32 or float64 tensor"):
        _check_legacy(checkpoint)


def test_a_single_parameter_and_an_estimator_without_an_objective_are_accepted() -> None:
    one = ng.minimize(ng.MiniBatch(_glm(1), 8), ng.Adam(0.05), _x0(1), steps=3, seed=0).checkpoint
    assert check_checkpoint(one, optimizer=ng.Adam(0.05), estimator=ng.MiniBatch(_glm(1), 8)) is one
    # no stated dimension, dtype or device, and an optimizer without init (nothing to compare its state with)
    legacy = _legacy(_checkpoint())
    assert _check_legacy(legacy, optimizer=object(), estimator=object()) is legacy


def test_parameters_of_another_dtype_than_the_objectives_are_refused() -> None:
    checkpoint = {**_legacy(_checkpoint()), "x": torch.zeros(D, dtype=torch.float32)}
    checkpoint["optimizer"] = ng.Adam(0.05).init(checkpoint["x"])
    with pytest.raises(CheckpointError, match=r"resume\['x'\] is torch.float32 on cpu but the objective computes in"):
        _check_legacy(checkpoint)


@pytest.mark.parametrize("step", [-1, True, 1.5, None])
def test_an_optimizer_step_that_is_not_an_integer_at_least_0_is_refused(step: object) -> None:
    checkpoint = copy.deepcopy(_legacy(_checkpoint()))
    checkpoint["optimizer"]["step"] = step
    with pytest.raises(CheckpointError, match=r"resume\['optimizer'\]\['step'\] must be an integer >= 0"):
        _check_legacy(checkpoint)


def test_zero_counts_are_accepted() -> None:
    checkpoint = copy.deepcopy(_legacy(_checkpoint()))
    checkpoint["optimizer"]["step"] = 0
    checkpoint["step"] = 0
    checkpoint["value_and_grad_calls"] = 0
    checkpoint["cost"] = {"examples": 0, "evaluations": 0, "shots": 0}
    assert _check_legacy(checkpoint) is checkpoint


def test_a_truncated_checkpoint_names_only_what_it_lacks() -> None:
    legacy = {k: v for k, v in _legacy(_checkpoint()).items() if k != "x"}
    with pytest.raises(CheckpointError, match=r"the checkpoint lacks 'x' \(it has 'cost'"):
        _check_legacy(legacy)


class _Partial:
    """A stateful object whose ``load_state_dict`` sets ``a`` before it checks ``b`` (a partial load)."""

    def __init__(self) -> None:
        self.a, self.b = 1, 2

    def state_dict(self) -> dict[str, int]:
        return {"a": self.a, "b": self.b}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.a = state["a"]
        if not isinstance(state["b"], int):
            raise ValueError("b must be an integer")
        self.b = state["b"]


def test_a_failed_estimator_load_puts_the_earlier_state_back() -> None:
    estimator = _Partial()
    with pytest.raises(CheckpointError, match=r"resume\['estimator'\] does not fit the _Partial passed"):
        load_estimator_state(estimator, {"a": 7, "b": "x"})
    assert estimator.state_dict() == {"a": 1, "b": 2}
    load_estimator_state(estimator, {"a": 7, "b": 8})
    assert estimator.state_dict() == {"a": 7, "b": 8}


def test_companions_are_the_stateful_schedule_and_callback_owners_each_once() -> None:
    class OnlySaves:
        def state_dict(self) -> dict[str, Any]:
            return {}

        def __call__(self, t: int) -> float:
            return 0.1

    meter, other = _Partial(), _Partial()

    class WithMeter:
        lr = meter

    assert companions_of(SGD(0.1), []) == []
    assert companions_of(SGD(OnlySaves()), []) == []  # state_dict without load_state_dict: not a companion
    assert companions_of(object(), [_observe]) == []  # no lr, a plain function
    assert companions_of(object(), [other.state_dict]) == [
        other
    ]  # a bound method brings its owner (as a Thermostat's observe does)
    found = companions_of(WithMeter(), [meter.load_state_dict, other.state_dict, other, meter])
    assert found == [meter, other]
    assert found[0] is meter
    assert found[1] is other
    assert companion_states(found) == [{"kind": "_Partial", "state": {"a": 1, "b": 2}}] * 2


@pytest.mark.parametrize(
    "saved",
    [{"kind": "_Partial"}, {"kind": "_Partial", "state": [1, 2]}, {"kind": "_Partial", "state": {}, "extra": 0}],
    ids=["no-state", "state-not-a-dict", "extra-key"],
)
def test_a_malformed_companion_entry_is_refused(saved: dict[str, Any]) -> None:
    companion = _Partial()
    with pytest.raises(CheckpointError, match=r"resume\['companions'\] must be a list of \{'kind', 'state'\} dicts"):
        load_companion_states([companion], {"companions": [saved]})
    assert companion.state_dict() == {"a": 1, "b": 2}


def test_companions_load_all_or_none() -> None:
    first, second = _Partial(), _Partial()
    good = {"kind": "_Partial", "state": {"a": 5, "b": 6}}
    bad = {"kind": "_Partial", "state": {"a": 9, "b": "x"}}
    with pytest.raises(CheckpointError, match=r"resume\['companions'\]\[1\] does not fit the _Partial passed"):
        load_companion_states([first, second], {"companions": [good, bad]})
    assert first.state_dict() == second.state_dict() == {"a": 1, "b": 2}
    with pytest.raises(CheckpointError, match=r"resume\['companions'\]\[0\] does not fit the _Partial passed"):
        load_companion_states([first, second], {"companions": [bad, good]})
    assert first.state_dict() == second.state_dict() == {"a": 1, "b": 2}
    load_companion_states([first, second], {"companions": [good, good]})
    assert first.state_dict() == second.state_dict() == {"a": 5, "b": 6}
    load_companion_states([], {})  # no companions, none saved


# ---------------------------------------------------------------------------------------------------- loop_fused


@needs_fused
@pytest.mark.parametrize("name", list(FACTORIES))
def test_only_the_first_step_of_a_fresh_run_is_taken_in_python(name: str) -> None:
    # the step at x0 fills the memory (SAGA's table, SVRG's anchor) step by step; the rest is compiled, and a
    # resumed run (memory loaded) takes none in Python, even for a single step
    estimator = FACTORIES[name](_glm())
    calls = _counting(estimator)
    first = minimize_fused(estimator, SGD(0.05), _x0(), steps=30, seed=0)
    assert calls[0] == 1
    assert (first.status, first.success, first.stopped_by_callback) == (0, True, False)
    assert first.message == "took all 30 steps asked for"
    for steps in (1, 12):
        resumed_estimator = FACTORIES[name](_glm())
        resumed_calls = _counting(resumed_estimator)
        rest = minimize_fused(resumed_estimator, SGD(0.05), steps=steps, resume=first.checkpoint)
        assert resumed_calls[0] == 0
        assert rest.nit == 30 + steps
        slow = minimize(
            FACTORIES[name](_glm()), SGD(0.05), steps=steps, resume=first.checkpoint, callbacks=STEP_BY_STEP
        )
        torch.testing.assert_close(rest.x, slow.x, rtol=1e-12, atol=1e-15)
        assert (rest.cost, rest.nfev) == (slow.cost, slow.nfev)
        assert rest.checkpoint["value_and_grad_calls"] == slow.checkpoint["value_and_grad_calls"] == 30 + steps


@needs_fused
def test_one_kernel_call_takes_at_most_16384_steps() -> None:
    # 16386 steps: the first in Python, then 16384 in one call and the last one in another; none in Python
    estimator = SAGA(_glm(), 4)
    calls = _counting(estimator)
    sizes: list[int] = []
    kernel = estimator._compiled_steps

    def spy(stretch: Any) -> Any:
        sizes.append(len(stretch.rates))
        assert stretch.rates.dtype == np.float64
        return kernel(stretch)

    estimator._compiled_steps = spy  # type: ignore[method-assign]
    result = minimize_fused(estimator, SGD(0.05), _x0(), steps=16386, seed=2, record_every=4096)
    assert sizes == [16384, 1]
    assert calls[0] == 1
    assert [h["step"] for h in result.history] == [4096, 8192, 12288, 16384]
    assert result.nit == 16386
    assert result.nfev == 16386  # a value-and-gradient call per step, no evaluations


@needs_fused
def test_a_zero_learning_rate_is_compiled_and_freezes_the_iterate() -> None:
    # 0 is a valid rate (as torch.optim allows): the steps from 6 on stay in the kernel and leave x as it was;
    # the schedule's integer 0 reaches the kernel as float64 (the type it is compiled for)
    def rate(t: int) -> float:
        return 0.05 if t < 6 else 0

    estimator = SAGA(_glm(), 4)
    calls = _counting(estimator)
    kernel = estimator._compiled_steps

    def spy(stretch: Any) -> Any:
        assert stretch.rates.dtype == np.float64
        assert stretch.scratch.dtype == np.int64
        return kernel(stretch)

    estimator._compiled_steps = spy  # type: ignore[method-assign]
    frozen = minimize_fused(estimator, SGD(rate), _x0(), steps=40, seed=3)
    assert calls[0] == 1
    moving = minimize_fused(SAGA(_glm(), 4), SGD(rate), _x0(), steps=6, seed=3)
    assert torch.equal(frozen.x, moving.x)
    assert [h["lr"] for h in frozen.history] == [0.05] * 6 + [0] * 34
    assert frozen.cost == ng.Cost(examples=N + 40 * 4)  # the table's N at step 1, and b = 4 each step


@needs_fused
@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_a_rate_that_is_not_a_finite_number_at_least_zero_is_refused_at_its_step(bad: float) -> None:
    # the kernel would take a negative step without complaint: the schedule's values are cut before it, and the
    # loop's own check raises minimize's error at that step, on a fresh run and on a run resumed just before it
    def rate(t: int) -> float:
        return bad if t == 10 else 0.05

    with pytest.raises(ValueError, match=r"lr\(10\)") as slow:
        minimize(SAGA(_glm(), 4), SGD(rate), _x0(), steps=20, seed=1, callbacks=STEP_BY_STEP)
    with pytest.raises(ValueError, match=r"lr\(10\)") as fast:
        minimize_fused(SAGA(_glm(), 4), SGD(rate), _x0(), steps=20, seed=1)
    assert str(fast.value) == str(slow.value)
    first = minimize_fused(SAGA(_glm(), 4), SGD(rate), _x0(), steps=10, seed=1)
    with pytest.raises(ValueError, match=r"lr\(10\)"):
        minimize_fused(SAGA(_glm(), 4), SGD(rate), steps=5, resume=first.checkpoint)


@needs_fused
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_run_whose_value_overflows_reports_status_2_as_minimize() -> None:
    # lr = 10 on this least-squares problem grows the iterate by a factor of about 5 a step: after 200 steps the
    # gradient (about |x|) is still finite but the value (about |x|^2) has overflowed
    fast = minimize_fused(SAGA(_glm(), 4), SGD(10.0), _x0(), steps=200, seed=0)
    slow = minimize(SAGA(_glm(), 4), SGD(10.0), _x0(), steps=200, seed=0, callbacks=STEP_BY_STEP)
    assert slow.fun == math.inf
    assert fast.fun == math.inf
    assert (fast.status, fast.success) == (slow.status, slow.success) == (2, False)
    assert fast.message == slow.message == "the value at the returned point is inf (not finite)"
    assert bool(torch.isfinite(fast.x).all())


@needs_fused
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_start_point_with_an_infinite_value_is_refused_at_x0_as_minimize() -> None:
    # the gradient at 1e160 is finite (about 1e160), the value (about 1e320) is not: refused before any step
    x0 = torch.full((D,), 1e160, dtype=F64)
    with pytest.raises(NonFiniteGradientError) as slow:
        minimize(SAGA(_glm(), 4), SGD(0.05), x0, steps=5, seed=0, callbacks=STEP_BY_STEP)
    with pytest.raises(NonFiniteGradientError) as fast:
        minimize_fused(SAGA(_glm(), 4), SGD(0.05), x0, steps=5, seed=0)
    assert str(fast.value) == str(slow.value)
    assert "at x0" in str(fast.value)


@needs_fused
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_after_a_divergence_the_callers_generator_is_where_minimize_leaves_it(name: str) -> None:
    # the kernel's refused step drew a batch: it is replayed from the committed steps' draws, and the step-by-step
    # path draws it again before raising, so the caller's generator ends where minimize's does, bit for bit
    gens = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with pytest.raises(NonFiniteGradientError) as fast:
        minimize_fused(FACTORIES[name](_glm()), SGD(1e3), _x0(), steps=500, generator=gens[0])
    with pytest.raises(NonFiniteGradientError) as slow:
        minimize(FACTORIES[name](_glm()), SGD(1e3), _x0(), steps=500, generator=gens[1], callbacks=STEP_BY_STEP)
    assert str(fast.value) == str(slow.value)
    assert torch.equal(gens[0].get_state(), gens[1].get_state())


@needs_fused
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_a_false_alarm_is_stepped_in_python_and_the_kernel_takes_over_after_it(name: str) -> None:
    # Step 0 (lr 2.7e307) puts each of the 20 entries of x near 1e307: finite, but their sum overflows. Step 1
    # (lr 0) keeps x: the kernel's one-sum check refuses it, the step-by-step path (entry by entry) takes it.
    # From step 2 on (lr 0.5, weight decay 1) x halves each step, its sum is finite and the kernel takes over.
    gen = torch.Generator().manual_seed(2)
    glm = GLM(0.5 + 0.5 * torch.rand(40, 20, generator=gen, dtype=F64), torch.ones(40, dtype=F64), l2=0.0)

    def rate(t: int) -> float:
        return (2.7e307, 0.0)[t] if t < 2 else 0.5

    estimator = FACTORIES[name](glm)
    calls = _counting(estimator)
    x0 = torch.zeros(20, dtype=F64)
    fast = minimize_fused(estimator, SGD(rate, weight_decay=1.0), x0, steps=12, seed=0, record_every=3)
    slow = minimize(
        FACTORIES[name](glm), SGD(rate, weight_decay=1.0), x0, steps=12, seed=0, record_every=3, callbacks=STEP_BY_STEP
    )
    assert calls[0] == 2
    two = minimize_fused(FACTORIES[name](glm), SGD(rate, weight_decay=1.0), x0, steps=2, seed=0)
    assert bool(torch.isfinite(two.x).all())
    assert math.isinf(float(two.x.sum()))  # the premise: finite entries whose sum overflows
    torch.testing.assert_close(fast.x, slow.x, rtol=1e-12, atol=0.0)
    assert [h["step"] for h in fast.history] == [h["step"] for h in slow.history] == [3, 6, 9, 12]
    assert [h["examples"] for h in fast.history] == [h["examples"] for h in slow.history]
    assert torch.equal(fast.checkpoint["generator"], slow.checkpoint["generator"])  # the refused draw replayed
    assert (fast.cost, fast.nfev, fast.status) == (slow.cost, slow.nfev, slow.status)


@needs_fused
def test_the_history_records_every_step_by_default_and_keeps_the_last_history_size() -> None:
    whole = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=50, seed=4, history_size=None)
    assert [h["step"] for h in whole.history] == list(range(1, 51))
    assert whole.history[0]["examples"] == N + 4
    assert whole.history[-1]["examples"] == N + 50 * 4
    # each record (the first from the step-by-step step at x0, the rest from the kernel) is minimize's: the same
    # keys and counts exactly, the estimate's value and gradient norm to rounding
    slow = minimize(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=50, seed=4, history_size=None, callbacks=STEP_BY_STEP)
    for got, want in zip(whole.history, slow.history, strict=True):
        assert list(got) == list(want) == ["step", "value", "grad_norm", "lr", "examples", "evaluations", "shots"]
        assert [got[k] for k in ("step", "lr", "examples", "evaluations", "shots")] == [
            want[k] for k in ("step", "lr", "examples", "evaluations", "shots")
        ]
        assert got["value"] == pytest.approx(want["value"], rel=1e-12)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-12)
    last = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=50, seed=4, history_size=3)
    assert last.history == whole.history[-3:]
    tail = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=50, seed=4, history_size=30, record_every=2)
    assert tail.history == whole.history[1::2][-30:]
    # the default bound is minimize's (10000 records); a short run is all kept
    default = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=50, seed=4)
    assert default.history == whole.history


@needs_fused
def test_resume_refuses_a_generator_and_the_parts_it_cannot_run() -> None:
    first = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=5, seed=0)
    with pytest.raises(ValueError, match="leave generator out"):
        minimize_fused(SAGA(_glm(), 4), SGD(0.05), steps=5, resume=first.checkpoint, generator=torch.Generator())
    for part in ("blocking", "averaging"):
        edited = {**first.checkpoint, part: {}}
        edited["checksum"] = checkpoint_checksum(edited)
        estimator = SAGA(_glm(), 4)
        with pytest.raises(ValueError, match=rf"taken with {part}="):
            minimize_fused(estimator, SGD(0.05), steps=5, resume=edited)
        assert estimator._memory_empty()  # refused before the estimator's state was loaded


@needs_fused
def test_a_checkpoint_without_the_call_count_resumes_from_zero_calls_as_minimize() -> None:
    first = minimize_fused(SAGA(_glm(), 4), SGD(0.05), _x0(), steps=8, seed=0)
    edited = {k: v for k, v in first.checkpoint.items() if k != "value_and_grad_calls"}
    edited["checksum"] = checkpoint_checksum(edited)
    fast = minimize_fused(SAGA(_glm(), 4), SGD(0.05), steps=4, resume=edited)
    slow = minimize(SAGA(_glm(), 4), SGD(0.05), steps=4, resume=edited, callbacks=STEP_BY_STEP)
    assert fast.nfev == slow.nfev == 4
    assert fast.checkpoint["value_and_grad_calls"] == 4


@needs_fused
def test_fused_reason_refuses_n_at_the_compiled_draws_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch's randperm draws 64-bit numbers from N = MAX_N on: the limit itself is refused, one below it is not
    from noisygrad.estimators import torch_mt

    monkeypatch.setattr(torch_mt, "MAX_N", N)
    assert fused_reason(SAGA(_glm(), 4), SGD(0.1)) == f"N = {N} >= {N}: torch's randperm draws 64-bit numbers there"
    monkeypatch.setattr(torch_mt, "MAX_N", N + 1)
    assert fused_reason(SAGA(_glm(), 4), SGD(0.1)) is None
    assert fused_reason(SVRG(_glm(), 4), SGD(0.1), torch.Generator()) is None  # a CPU generator qualifies


@needs_fused
def test_the_module_constants() -> None:
    assert loop_fused._STRETCH == 16384
    dtypes = loop_fused._DTYPES
    assert dtypes == (torch.float32, torch.float64)
