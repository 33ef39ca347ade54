"""Reliability of the core's loop and estimators (issue #17): explicit generators, state round-trips, the Thermostat
in the checkpoint, a bounded history, and the fused GLM path behind ``ng.minimize``.

Every comparison of a resumed run with an uninterrupted one is exact (``torch.equal``): a checkpoint that continues
"to rounding" would hide a lost state. The fused path is compared with the step-by-step one to rounding
(``rtol=1e-12``), since its compiled kernels sum in another order.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import noisygrad as ng
from noisygrad.loop_checkpoint import CheckpointError, checkpoint_checksum
from noisygrad.loop_fused import fused_reason, minimize_fused
from noisygrad.noise.statistics import NoiseScaleMeter


def _data(n: int = 40, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return X, X @ torch.ones(d, dtype=torch.float64) + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)


def _glm() -> ng.GLM:
    return ng.GLM(*_data(), loss="squared", l2=1e-3)


def _finite_sum() -> ng.FiniteSum:
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), _data())


def _bowl() -> ng.NoisyBlackBox:
    return ng.NoisyBlackBox(lambda p, g: (p**2).sum(1) + 0.01 * torch.randn(p.shape[0], generator=g, dtype=p.dtype))


def _x0() -> torch.Tensor:
    return torch.zeros(3, dtype=torch.float64)


def _reload(obj: Any) -> Any:
    """``obj`` through ``torch.save`` and ``torch.load(weights_only=True)``: what a file on disk gives back."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---------------------------------------------------------------- explicit generators


ESTIMATORS_THAT_DRAW: dict[str, Callable[[], Any]] = {
    "MiniBatch": lambda: ng.MiniBatch(_glm(), 4),
    "MiniBatch-probe": lambda: ng.MiniBatch(_glm(), 4, noise_stats="probe"),
    "SPSA": lambda: ng.SPSA(_bowl()),
    "GaussianSmoothing": lambda: ng.GaussianSmoothing(_bowl()),
    "SVRG": lambda: ng.SVRG(_glm(), 4),
    "SVRG-generic": lambda: ng.SVRG(_finite_sum(), 4),
    "SAGA": lambda: ng.SAGA(_glm(), 4),
    "SAGA-generic": lambda: ng.SAGA(_finite_sum(), 4),
    "STORM": lambda: ng.STORM(_glm(), 4),
    "CentralDifference": lambda: ng.CentralDifference(_bowl(), step=1e-3),
    "Clipped": lambda: ng.Clipped(ng.SPSA(_bowl()), max_norm=1.0),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS_THAT_DRAW))
@pytest.mark.parametrize("generator", [None, 0, np.random.default_rng(0)], ids=["None", "int", "numpy"])
def test_an_estimator_refuses_anything_but_a_torch_generator_and_keeps_its_state(name: str, generator: Any) -> None:
    estimator = ESTIMATORS_THAT_DRAW[name]()
    gen = torch.Generator().manual_seed(0)
    estimator.estimate(_x0(), gen)  # fills the memory of SVRG, SAGA and STORM: the refusal must leave it
    before = _reload(estimator.state_dict())
    global_state = torch.get_rng_state()
    with pytest.raises(TypeError, match=r"\bgenerator\b.*torch\.Generator"):
        estimator.estimate(_x0(), generator)
    after = estimator.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        left, right = before[key], after[key]
        assert torch.equal(left, right) if isinstance(left, torch.Tensor) else left == right, key
    assert torch.equal(torch.get_rng_state(), global_state), "torch's global generator was drawn from"


def test_spsa_calibrate_refuses_none_for_its_generator() -> None:
    with pytest.raises(TypeError, match=r"\bgenerator\b.*global generator"):
        ng.spsa_calibrate(_bowl(), _x0(), generator=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("refresh", ["sometimes", "Epoch", ""])
def test_svrg_refuses_an_unknown_refresh_name_listing_the_choices(refresh: str) -> None:
    with pytest.raises(ValueError, match=r"refresh must be 'epoch'.*integer > 0 or None.*unknown name"):
        ng.SVRG(_glm(), 4, refresh=refresh)


def test_svrg_still_takes_epoch_an_integer_and_none() -> None:
    assert ng.SVRG(_glm(), 4).refresh == 10
    assert ng.SVRG(_glm(), 4, refresh=3).refresh == 3
    assert ng.SVRG(_glm(), 4, refresh=None).refresh is None
    with pytest.raises(TypeError, match=r"\brefresh\b"):
        ng.SVRG(_glm(), 4, refresh=2.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- every stateful object round-trips


def _thermostat_run(control: str) -> tuple[Any, Any, dict[str, Any]]:
    estimator = ng.MiniBatch(_glm(), 8, noise_stats=True)
    thermostat = ng.Thermostat(estimator, 1e-4, lr=0.05, control=control, smoothing=0.5, lr_max=0.5)
    return estimator, ng.SGD(thermostat), {"callbacks": [thermostat.observe]}


#: name -> (estimator, optimizer, extra minimize arguments), built afresh for each run: every stateful object of the
#: core (estimators with memory, optimizers with moments or a noise stream, a Thermostat) under minimize.
RUNS: dict[str, Callable[[], tuple[Any, Any, dict[str, Any]]]] = {
    "MiniBatch+SGD-momentum": lambda: (ng.MiniBatch(_glm(), 4), ng.SGD(0.05, momentum=0.9), {}),
    "MiniBatch+Adam": lambda: (ng.MiniBatch(_glm(), 4), ng.Adam(0.05), {}),
    "MiniBatch+Adam-amsgrad": lambda: (ng.MiniBatch(_glm(), 4, replace=True), ng.Adam(0.05, amsgrad=True), {}),
    "MiniBatch+SGD-nesterov": lambda: (ng.MiniBatch(_glm(), 4), ng.SGD(0.05, momentum=0.5, nesterov=True), {}),
    "MiniBatch+SGLD": lambda: (ng.MiniBatch(_glm(), 4), ng.SGLD(0.01, temperature=1e-3), {}),
    "MiniBatch+SGLD-corrected": lambda: (
        ng.MiniBatch(_glm(), 4),
        ng.SGLD(ng.RobbinsMonro(0.01, 10.0, 0.6), temperature=1e-2, noise_correction=torch.eye(3) * 0.5),
        {},
    ),
    "FullBatch+BAOAB": lambda: (ng.FullBatch(_glm()), ng.BAOAB(0.1, temperature=1e-3), {}),
    "SPSA+SGD": lambda: (ng.SPSA(_bowl(), c=0.1), ng.SGD(ng.RobbinsMonro(0.2, 5.0, 0.602)), {}),
    "GaussianSmoothing+Adam": lambda: (ng.GaussianSmoothing(_bowl(), samples=2), ng.Adam(0.05), {}),
    "SVRG-GLM+SGD(fused)": lambda: (ng.SVRG(_glm(), 4, refresh=7), ng.SGD(0.05), {}),
    "SVRG-GLM+Adam": lambda: (ng.SVRG(_glm(), 4, refresh=7), ng.Adam(0.05), {}),
    "SVRG-generic+SGD": lambda: (ng.SVRG(_finite_sum(), 4, refresh=7), ng.SGD(0.05), {}),
    "SAGA-GLM+SGD(fused)": lambda: (ng.SAGA(_glm(), 4), ng.SGD(0.05), {}),
    "SAGA-generic+Adam": lambda: (ng.SAGA(_finite_sum(), 4), ng.Adam(0.05), {}),
    "STORM+SGD": lambda: (ng.STORM(_glm(), 4, momentum=0.3), ng.SGD(0.05), {}),
    "Clipped(SVRG)+SGD": lambda: (ng.Clipped(ng.SVRG(_finite_sum(), 4, refresh=5), 0.5), ng.SGD(0.05), {}),
    "Thermostat-lr": lambda: _thermostat_run("lr"),
    "Thermostat-batch": lambda: _thermostat_run("batch"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_resumed_run_from_a_checkpoint_on_disk_continues_bit_identically(name: str) -> None:
    """n + n steps through torch.save / torch.load(weights_only=True) and fresh objects == 2 n steps in one go."""
    n = 13
    estimator, optimizer, extra = RUNS[name]()
    whole = ng.minimize(estimator, optimizer, _x0(), steps=2 * n, seed=3, **extra)
    estimator, optimizer, extra = RUNS[name]()
    first = ng.minimize(estimator, optimizer, _x0(), steps=n, seed=3, **extra)
    saved = _reload(first.checkpoint)
    estimator, optimizer, extra = RUNS[name]()  # a new process: nothing carried over but the file
    second = ng.minimize(estimator, optimizer, steps=n, resume=saved, **extra)
    assert torch.equal(second.x, whole.x)
    assert torch.equal(second.checkpoint["generator"], whole.checkpoint["generator"])
    assert second.checkpoint["checksum"] == whole.checkpoint["checksum"]  # every state entry equal, bit for bit
    assert first.history + second.history == whole.history
    assert second.cost == whole.cost


@pytest.mark.parametrize("name", sorted(RUNS))
def test_an_estimators_own_state_dict_loads_with_weights_only_and_continues_the_same(name: str) -> None:
    estimator, _, _ = RUNS[name]()
    gen = torch.Generator().manual_seed(1)
    x = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    for _ in range(4):
        estimator.estimate(x, gen)
    state = _reload(estimator.state_dict())
    twin, _, _ = RUNS[name]()
    twin.load_state_dict(state)
    twin_gen = torch.Generator()
    twin_gen.set_state(gen.get_state())
    for _ in range(5):
        a, b = estimator.estimate(x, gen), twin.estimate(x, twin_gen)
        assert torch.equal(a.grad, b.grad)
        assert (a.value, a.cost) == (b.value, b.cost)


def test_the_thermostat_and_a_stateful_meter_round_trip_on_their_own() -> None:
    estimator, optimizer, extra = _thermostat_run("batch")
    ng.minimize(estimator, optimizer, _x0(), steps=9, seed=0, **extra)
    thermostat = optimizer.lr
    state = _reload(thermostat.state_dict())
    twin = ng.Thermostat(ng.MiniBatch(_glm(), 8, noise_stats=True), 1e-4, lr=0.05, control="batch", smoothing=0.5)
    twin.load_state_dict(state)
    assert twin.state_dict() == thermostat.state_dict()
    assert twin.estimator.batch_size == estimator.batch_size
    meter = NoiseScaleMeter(4, 16, ema=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        meter.update(torch.randn(3, generator=gen), torch.randn(3, generator=gen))
    copy = NoiseScaleMeter(4, 16, ema=0.9)
    copy.load_state_dict(_reload(meter.state_dict()))
    assert copy.noise_scale == meter.noise_scale


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"trace": 1.0, "lr": 0.1}, "keys"),
        ({"trace": float("nan"), "lr": 0.1, "batch_size": 4}, r"state\['trace'\]"),
        ({"trace": 1.0, "lr": -0.1, "batch_size": 4}, r"state\['lr'\]"),
        ({"trace": 1.0, "lr": 0.1, "batch_size": 0}, r"state\['batch_size'\]"),
        ({"trace": 1.0, "lr": 0.1, "batch_size": 41}, r"state\['batch_size'\].*number of examples"),
    ],
)
def test_a_thermostat_refuses_a_bad_state_and_changes_nothing(state: dict[str, Any], match: str) -> None:
    estimator, optimizer, _ = _thermostat_run("batch")
    before = (optimizer.lr.state_dict(), estimator.batch_size)
    with pytest.raises(ValueError, match=match):
        optimizer.lr.load_state_dict(state)
    assert (optimizer.lr.state_dict(), estimator.batch_size) == before


def test_the_checkpoint_carries_the_thermostat_and_resume_refuses_a_run_without_it() -> None:
    estimator, optimizer, extra = _thermostat_run("lr")
    result = ng.minimize(estimator, optimizer, _x0(), steps=5, seed=0, **extra)
    (entry,) = result.checkpoint["companions"]
    assert entry["kind"] == "Thermostat"
    assert entry["state"] == optimizer.lr.state_dict()
    plain_estimator = ng.MiniBatch(_glm(), 8, noise_stats=True)
    with pytest.raises(CheckpointError, match=r"resume\['companions'\].*Thermostat.*none"):
        ng.minimize(plain_estimator, ng.SGD(0.05), steps=1, resume=result.checkpoint)
    plain = ng.minimize(ng.MiniBatch(_glm(), 8, noise_stats=True), ng.SGD(0.05), _x0(), steps=2)
    assert "companions" not in plain.checkpoint  # a run without companions writes the checkpoint it always did
    estimator, optimizer, extra = _thermostat_run("lr")
    with pytest.raises(CheckpointError, match=r"resume\['companions'\].*no stateful schedule.*Thermostat"):
        ng.minimize(estimator, optimizer, steps=1, resume=plain.checkpoint, **extra)


def test_a_failed_resume_leaves_the_thermostat_as_it_was() -> None:
    estimator, optimizer, extra = _thermostat_run("batch")
    result = ng.minimize(estimator, optimizer, _x0(), steps=5, seed=0, **extra)
    broken = dict(result.checkpoint)
    broken["companions"] = [{"kind": "Thermostat", "state": {"trace": 1.0, "lr": 0.1, "batch_size": 0}}]
    broken["checksum"] = checkpoint_checksum(broken)
    estimator, optimizer, extra = _thermostat_run("batch")
    before = (optimizer.lr.state_dict(), estimator.batch_size)
    with pytest.raises(CheckpointError, match=r"resume\['companions'\]\[0\].*batch_size"):
        ng.minimize(estimator, optimizer, steps=1, resume=broken, **extra)
    assert (optimizer.lr.state_dict(), estimator.batch_size) == before


# ---------------------------------------------------------------- a bounded history


def test_the_history_keeps_the_last_history_size_records() -> None:
    result = ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=25, history_size=10)
    assert [r["step"] for r in result.history] == list(range(16, 26))
    assert (result.nit, result.cost.examples) == (25, 100)  # the totals count every step
    thinned = ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=25, record_every=3, history_size=4)
    assert [r["step"] for r in thinned.history] == [15, 18, 21, 24]
    everything = ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=25, history_size=None)
    assert len(everything.history) == 25
    assert ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=25).history == everything.history


def test_the_default_history_is_bounded() -> None:
    from noisygrad.loop import HISTORY_SIZE

    assert 1_000 <= HISTORY_SIZE <= 100_000


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("9", TypeError)])
def test_a_bad_history_size_is_refused_naming_it(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"\bhistory_size\b"):
        ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=2, history_size=value)
    if fused_reason(ng.SAGA(_glm(), 4), ng.SGD(0.05)) is None:
        with pytest.raises(error, match=r"\bhistory_size\b"):
            minimize_fused(ng.SAGA(_glm(), 4), ng.SGD(0.05), _x0(), steps=2, history_size=value)


# ---------------------------------------------------------------- the fused path behind ng.minimize


def _counting(estimator: Any) -> list[int]:
    """Count the Python calls of ``estimator.estimate`` (an instance attribute wrapping the real method)."""
    calls = [0]
    method = estimator.estimate

    def estimate(params: torch.Tensor, generator: torch.Generator) -> Any:
        calls[0] += 1
        return method(params, generator)

    estimator.estimate = estimate
    return calls


FUSED = {
    "SAGA": lambda: ng.SAGA(ng.GLM(*_data(200, 5), loss="squared", l2=1e-3), 8),
    "SVRG": lambda: ng.SVRG(ng.GLM(*_data(200, 5), loss="squared", l2=1e-3), 8),
    "SAGA-logistic": lambda: ng.SAGA(
        ng.GLM(_data(200, 5)[0], torch.sign(_data(200, 5)[1]), loss="logistic", l2=1e-2), 8
    ),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_minimize_takes_the_fused_path_with_the_step_by_step_result(name: str) -> None:
    if fused_reason(FUSED[name](), ng.SGD(0.02)) is not None:
        pytest.skip(f"the fused path is not available here: {fused_reason(FUSED[name](), ng.SGD(0.02))}")
    steps, x0 = 600, torch.zeros(5, dtype=torch.float64)
    fused_estimator = FUSED[name]()
    calls = _counting(fused_estimator)
    fused = ng.minimize(fused_estimator, ng.SGD(0.02), x0, steps=steps, seed=4)
    assert calls[0] <= 2, "minimize stepped in Python: it did not hand the run to minimize_fused"
    stepwise_estimator = FUSED[name]()
    stepwise_calls = _counting(stepwise_estimator)
    stepwise = ng.minimize(stepwise_estimator, ng.SGD(0.02), x0, steps=steps, seed=4, callbacks=[lambda info: None])
    assert stepwise_calls[0] == steps  # a callback keeps the loop in Python
    torch.testing.assert_close(fused.x, stepwise.x, rtol=1e-12, atol=1e-14)
    assert torch.equal(fused.checkpoint["generator"], stepwise.checkpoint["generator"])  # the same draws
    assert (fused.cost, fused.nfev, fused.nit) == (stepwise.cost, stepwise.nfev, stepwise.nit)
    assert [r["step"] for r in fused.history] == [r["step"] for r in stepwise.history]
    np.testing.assert_allclose(
        [r["value"] for r in fused.history], [r["value"] for r in stepwise.history], rtol=1e-10, atol=1e-14
    )
    direct = minimize_fused(FUSED[name](), ng.SGD(0.02), x0, steps=steps, seed=4)
    assert torch.equal(direct.x, fused.x)


def test_minimize_stays_step_by_step_where_the_fused_path_does_not_apply() -> None:
    """Parts, callbacks, a stateful schedule or another optimizer keep the Python loop (each would be lost)."""
    cases = {
        "momentum": (ng.SGD(0.02, momentum=0.5), {}),
        "adam": (ng.Adam(0.02), {}),
        "projection": (ng.SGD(0.02), {"projection": ng.Projection(-1.0, 1.0)}),
        "averaging": (ng.SGD(0.02), {"averaging": ng.IterateAveraging(5)}),
    }
    for label, (optimizer, extra) in cases.items():
        estimator = FUSED["SAGA"]()
        calls = _counting(estimator)
        ng.minimize(estimator, optimizer, torch.zeros(5, dtype=torch.float64), steps=20, **extra)
        assert calls[0] == 20, label


def test_a_fused_checkpoint_resumes_step_by_step_and_back() -> None:
    x0 = torch.zeros(5, dtype=torch.float64)
    whole = ng.minimize(FUSED["SVRG"](), ng.SGD(0.02), x0, steps=300, seed=1, callbacks=[lambda info: None])
    first = ng.minimize(FUSED["SVRG"](), ng.SGD(0.02), x0, steps=100, seed=1)
    middle = ng.minimize(
        FUSED["SVRG"](), ng.SGD(0.02), steps=100, resume=_reload(first.checkpoint), callbacks=[lambda info: None]
    )
    last = ng.minimize(FUSED["SVRG"](), ng.SGD(0.02), steps=100, resume=_reload(middle.checkpoint))
    torch.testing.assert_close(last.x, whole.x, rtol=1e-12, atol=1e-14)
    assert torch.equal(last.checkpoint["generator"], whole.checkpoint["generator"])
    assert last.cost == whole.cost


# ---------------------------------------------------------------- schedules and NaN messages


def test_a_schedule_that_turns_nan_later_is_refused_at_that_step() -> None:
    def schedule(t: int) -> float:
        return 0.05 if t < 7 else float("nan")

    with pytest.raises(ValueError, match=r"lr\(7\)"):
        ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(schedule), _x0(), steps=20)
    if fused_reason(FUSED["SAGA"](), ng.SGD(schedule)) is None:  # the fused path refuses it at the same step
        with pytest.raises(ValueError, match=r"lr\(7\)"):
            ng.minimize(FUSED["SAGA"](), ng.SGD(schedule), torch.zeros(5, dtype=torch.float64), steps=20)


def test_nan_in_the_data_is_told_apart_from_divergence() -> None:
    X, y = _data()
    X[17, 1] = float("nan")
    objective = ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    with pytest.raises(ng.NonFiniteGradientError, match=r"data hold NaN/Inf.*not the cause") as raised:
        ng.minimize(ng.MiniBatch(objective, 2), ng.SGD(0.01), _x0(), steps=200, seed=0)
    assert "diverged" not in str(raised.value)
    with pytest.raises(ng.NonFiniteGradientError, match=r"diverged at step") as raised:
        ng.minimize(ng.FullBatch(_glm()), ng.SGD(50.0), _x0(), steps=2000)
    assert "data" not in str(raised.value).split(":")[0]


# ---------------------------------------------------------------- SAGA's table and its mean


@pytest.mark.parametrize("objective", [_glm, _finite_sum], ids=["glm", "generic"])
def test_saga_refuses_a_table_mean_that_is_not_the_mean_of_its_table(objective: Callable[[], Any]) -> None:
    saga = ng.SAGA(objective(), 4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        saga.estimate(torch.tensor([0.5, -0.5, 0.2], dtype=torch.float64), gen)
    state = saga.state_dict()
    fresh = ng.SAGA(objective(), 4)
    fresh.load_state_dict(_reload(state))  # the intact state loads
    edited = {**state, "table_mean": state["table_mean"] + 1e-3}
    with pytest.raises(ValueError, match=r"state\['table_mean'\] is not the mean of state\['table'\]"):
        ng.SAGA(objective(), 4).load_state_dict(edited)
    poisoned = {**state, "table": state["table"].clone()}
    poisoned["table"][0] = float("nan")
    with pytest.raises(ng.NonFiniteGradientError, match=r"state\['table'\]"):
        ng.SAGA(objective(), 4).load_state_dict(poisoned)
    with pytest.raises(ValueError, match="both table and table_mean"):
        ng.SAGA(objective(), 4).load_state_dict({"table": state["table"], "table_mean": None})
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="table_mean"):
        fresh.load_state_dict(edited)
    assert torch.equal(fresh.state_dict()["table_mean"], before["table_mean"])  # a refused state changes nothing


def test_a_long_saga_run_keeps_its_running_mean_within_the_tolerance() -> None:
    """The running update of ``table_mean`` drifts by rounding only: thousands of steps later the state still loads."""
    estimator = FUSED["SAGA"]()
    steps = 20_000 if fused_reason(estimator, ng.SGD(0.02)) is None else 2_000  # a few seconds either way
    ng.minimize(estimator, ng.SGD(0.02), torch.zeros(5, dtype=torch.float64), steps=steps, seed=0, history_size=1)
    ng.SAGA(estimator.objective, 8).load_state_dict(_reload(estimator.state_dict()))


class _StepCounter:
    """A stateful callback: counts the steps it saw (its state goes into the checkpoint as a companion)."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, info: Any) -> None:
        self.seen += 1

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])


def test_a_stateful_callback_is_checkpointed_and_required_on_resume_by_either_path() -> None:
    counter = _StepCounter()
    x0 = torch.zeros(5, dtype=torch.float64)
    first = ng.minimize(FUSED["SAGA"](), ng.SGD(0.02), x0, steps=30, seed=0, callbacks=[counter])
    assert first.checkpoint["companions"] == [{"kind": "_StepCounter", "state": {"seen": 30}}]
    saved = _reload(first.checkpoint)
    again = _StepCounter()
    ng.minimize(FUSED["SAGA"](), ng.SGD(0.02), steps=20, resume=saved, callbacks=[again])
    assert again.seen == 50  # it continued from the checkpoint's count
    with pytest.raises(CheckpointError, match=r"resume\['companions'\]"):  # the fused path, where numba is installed
        ng.minimize(FUSED["SAGA"](), ng.SGD(0.02), steps=20, resume=saved)
