"""SAGA and SVRG on a GLM in compiled stretches (``minimize_fused``) against the step-by-step ``minimize``.

The compiled steps must be the step-by-step path's: the same batches (the generator's state compared bit for
bit), the same costs and history keys, and iterates, estimator memory, recorded values and gradient norms equal
to rounding. The tolerances (relative 1e-10 after several epochs in float64) are rounding, not statistics: the
two paths sum in different orders (numpy's BLAS against reassociated compiled loops), and on these strongly
convex problems the differences stay within a few hundred ulps. No Monte-Carlo error enters: same seeds, same
draws. That the estimates' noise statistics are unchanged follows from the same batches and the same arithmetic;
the recorded per-step values and gradient norms are compared as well.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch

from noisygrad import SGD, Adam, FiniteSum, MiniBatch, NonFiniteGradientError, minimize
from noisygrad.estimators.variance_reduction import SAGA, SVRG
from noisygrad.glm import GLM, GLMKernels
from noisygrad.loop_fused import fused_reason, minimize_fused

N, D, LAM = 600, 8, 1.0 / 600
Factory = Callable[[GLM], Any]


def _observe(info: Any) -> None:
    """A callback that does nothing: a run with a callback stays in the step-by-step loop."""


STEP_BY_STEP = [_observe]


def _data(loss: str, dtype: torch.dtype = torch.float64) -> GLM:
    gen = torch.Generator().manual_seed(11)
    X = torch.randn(N, D, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 2.0, D, dtype=torch.float64)
    truth = torch.randn(D, generator=gen, dtype=torch.float64)
    if loss == "logistic":
        y = torch.where(torch.rand(N, generator=gen, dtype=torch.float64) < torch.sigmoid(X @ truth), 1.0, -1.0)
    else:
        y = X @ truth + 0.3 * torch.randn(N, generator=gen, dtype=torch.float64)
    return GLM(X.to(dtype), y.to(torch.float64).to(dtype), loss=loss, l2=LAM)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["logistic", "squared"])
def glm(request: pytest.FixtureRequest) -> GLM:
    return _data(request.param)


ESTIMATORS: dict[str, Factory] = {
    "saga": lambda o: SAGA(o, 16),
    "svrg": lambda o: SVRG(o, 16),  # a snapshot every N // b = 37 calls
    "svrg-refresh-7": lambda o: SVRG(o, 16, refresh=7),
    "svrg-fixed-anchor": lambda o: SVRG(o, 16, refresh=None, anchor=torch.full((D,), 0.05, dtype=torch.float64)),
}
LR = {"logistic": 0.5, "squared": 0.05}


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_iterates_are_the_step_by_step_iterates(glm: GLM, name: str, seed: int) -> None:
    # Six epochs (N // b = 37 steps each), compared at the end of every epoch; the compiled run goes one epoch
    # per call (each call resumes the last one's checkpoint), the step-by-step run is one minimize call.
    factory, lr, per, epochs = ESTIMATORS[name], LR[glm.loss_name], N // 16, 6
    x0 = torch.zeros(D, dtype=torch.float64)
    slow_iterates: list[torch.Tensor] = []

    def keep(info: Any) -> None:
        if info.step % per == 0:
            slow_iterates.append(info.x)

    slow_estimator = factory(glm)
    slow = minimize(slow_estimator, SGD(lr), x0, steps=epochs * per, seed=seed, callbacks=[keep], record_every=5)
    fast_estimator = factory(glm)
    fast = minimize_fused(fast_estimator, SGD(lr), x0, steps=per, seed=seed, record_every=5)
    fast_iterates, history = [fast.x], list(fast.history)
    for _ in range(epochs - 1):
        fast = minimize_fused(fast_estimator, SGD(lr), steps=per, resume=fast.checkpoint, record_every=5)
        fast_iterates.append(fast.x)
        history += fast.history
    torch.testing.assert_close(torch.stack(fast_iterates), torch.stack(slow_iterates), rtol=1e-10, atol=1e-13)
    assert fast.nit == slow.nit == epochs * per
    assert fast.cost == slow.cost
    assert fast.nfev == slow.nfev
    assert torch.equal(fast.checkpoint["generator"], slow.checkpoint["generator"])  # the same batches were drawn
    assert fast.checkpoint["optimizer"] == slow.checkpoint["optimizer"]
    assert fast.checkpoint["value_and_grad_calls"] == slow.checkpoint["value_and_grad_calls"]
    fast_memory, slow_memory = fast.checkpoint["estimator"], slow.checkpoint["estimator"]
    assert fast_memory.keys() == slow_memory.keys()
    for key, value in slow_memory.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(fast_memory[key], value, rtol=1e-10, atol=1e-13)
        else:
            assert fast_memory[key] == value
    assert fast.fun is not None
    assert slow.fun is not None
    assert fast.fun == pytest.approx(slow.fun, rel=1e-12)
    # the history: the same steps, rates and costs; the estimates' values and gradient norms to rounding
    assert [h["step"] for h in history] == [h["step"] for h in slow.history]
    for got, want in zip(history, slow.history, strict=True):
        assert got.keys() == want.keys()
        assert (got["lr"], got["examples"], got["evaluations"], got["shots"]) == (
            want["lr"],
            want["examples"],
            want["evaluations"],
            want["shots"],
        )
        assert got["value"] == pytest.approx(want["value"], rel=1e-10, abs=1e-13)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-9, abs=1e-13)


@pytest.mark.parametrize("name", ["saga", "svrg-refresh-7"])
def test_checkpoints_resume_bit_identically_and_cross_paths(name: str) -> None:
    glm, factory = _data("logistic"), ESTIMATORS[name]
    x0 = torch.zeros(D, dtype=torch.float64)
    whole = minimize_fused(factory(glm), SGD(0.4), x0, steps=200, seed=3)
    first = minimize_fused(factory(glm), SGD(0.4), x0, steps=77, seed=3)
    buffer = io.BytesIO()
    torch.save(first.checkpoint, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    rest = minimize_fused(factory(glm), SGD(0.4), steps=123, resume=checkpoint)
    assert torch.equal(rest.x, whole.x)  # bit for bit
    assert rest.cost == whole.cost
    assert torch.equal(rest.checkpoint["generator"], whole.checkpoint["generator"])
    assert [h["value"] for h in first.history + rest.history] == [h["value"] for h in whole.history]
    # a compiled checkpoint resumes step by step, and a step-by-step one compiled: the same run to rounding
    slow_rest = minimize(factory(glm), SGD(0.4), steps=123, resume=first.checkpoint, callbacks=STEP_BY_STEP)
    torch.testing.assert_close(slow_rest.x, whole.x, rtol=1e-11, atol=1e-14)
    assert torch.equal(slow_rest.checkpoint["generator"], whole.checkpoint["generator"])
    slow_first = minimize(factory(glm), SGD(0.4), x0, steps=77, seed=3, callbacks=STEP_BY_STEP)
    fast_rest = minimize_fused(factory(glm), SGD(0.4), steps=123, resume=slow_first.checkpoint)
    torch.testing.assert_close(fast_rest.x, whole.x, rtol=1e-11, atol=1e-14)
    assert fast_rest.cost == whole.cost
    # the first run's estimator kept working on its own buffers: its checkpoint was a copy
    assert torch.equal(first.checkpoint["x"], minimize_fused(factory(glm), SGD(0.4), x0, steps=77, seed=3).x)


def test_weight_decay_a_schedule_and_a_caller_generator() -> None:
    glm = _data("logistic")
    x0 = torch.zeros(D, dtype=torch.float64)

    def rate(t: int) -> float:
        return 0.8 / (1.0 + t / 50.0)

    for factory in (ESTIMATORS["saga"], ESTIMATORS["svrg"]):
        gens = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
        fast = minimize_fused(factory(glm), SGD(rate, weight_decay=0.01), x0, steps=150, generator=gens[0])
        slow = minimize(
            factory(glm), SGD(rate, weight_decay=0.01), x0, steps=150, generator=gens[1], callbacks=STEP_BY_STEP
        )
        torch.testing.assert_close(fast.x, slow.x, rtol=1e-11, atol=1e-14)
        assert [h["lr"] for h in fast.history] == [h["lr"] for h in slow.history]
        assert torch.equal(gens[0].get_state(), gens[1].get_state())  # the caller's generator advanced alike


def test_float32_data_follow_the_step_by_step_path_to_float32_rounding() -> None:
    # float32: numpy computes in float32, the compiled loops accumulate in float64; 2e-5 relative is a few
    # float32 ulps grown over 200 steps
    glm = _data("logistic", torch.float32)
    x0 = torch.zeros(D, dtype=torch.float32)
    for factory in (ESTIMATORS["saga"], ESTIMATORS["svrg"]):
        fast = minimize_fused(factory(glm), SGD(0.5), x0, steps=200, seed=4)
        slow = minimize(factory(glm), SGD(0.5), x0, steps=200, seed=4, callbacks=STEP_BY_STEP)
        assert fast.x.dtype == torch.float32
        torch.testing.assert_close(fast.x, slow.x, rtol=2e-5, atol=1e-6)
        assert torch.equal(fast.checkpoint["generator"], slow.checkpoint["generator"])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("name", ["saga", "svrg"])
def test_divergence_raises_the_error_minimize_raises(name: str) -> None:
    # lr = 1e3 on the squared loss diverges within a few steps: the compiled path refuses the step and hands it
    # to the loop's checks, which raise the step-by-step path's error at the same step
    glm, factory = _data("squared"), ESTIMATORS[name]
    x0 = torch.zeros(D, dtype=torch.float64)
    with pytest.raises(NonFiniteGradientError) as slow:
        minimize(factory(glm), SGD(1e3), x0, steps=500, seed=0, callbacks=STEP_BY_STEP)
    with pytest.raises(NonFiniteGradientError) as fast:
        minimize_fused(factory(glm), SGD(1e3), x0, steps=500, seed=0)
    assert str(fast.value) == str(slow.value)
    assert "diverged at step" in str(fast.value)


def test_a_schedule_that_turns_nan_raises_at_its_step() -> None:
    glm = _data("logistic")

    def rate(t: int) -> float:
        return 0.5 if t < 40 else float("nan")

    x0 = torch.zeros(D, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lr\(40\)") as slow:
        minimize(SAGA(glm, 16), SGD(rate), x0, steps=60, callbacks=STEP_BY_STEP)
    with pytest.raises(ValueError, match=r"lr\(40\)") as fast:
        minimize_fused(SAGA(glm, 16), SGD(rate), x0, steps=60)
    assert str(fast.value) == str(slow.value)


def test_what_qualifies_and_bad_input() -> None:
    glm = _data("logistic")
    assert fused_reason(SAGA(glm, 8), SGD(0.1)) is None
    assert fused_reason(SVRG(glm, 8), SGD(0.1, weight_decay=0.1)) is None
    assert "not SAGA or SVRG" in str(fused_reason(MiniBatch(glm, 8), SGD(0.1)))
    assert "not SGD without momentum" in str(fused_reason(SAGA(glm, 8), SGD(0.1, momentum=0.9)))
    assert "not SGD without momentum" in str(fused_reason(SAGA(glm, 8), Adam(0.1)))
    X, y = glm.X, glm.y
    autograd = FiniteSum(lambda w, X, y: torch.nn.functional.softplus(-y * (X @ w)).mean(), (X, y))
    assert fused_reason(SAGA(autograd, 8), SGD(0.1)) == "the objective is not a GLM"
    on_tensors = GLM(X, y, l2=LAM)
    on_tensors.kernels = GLMKernels(X, y, "logistic", LAM, backend="torch")
    assert "on cpu" in str(fused_reason(SAGA(on_tensors, 8), SGD(0.1)))
    x0 = torch.zeros(D, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"minimize_fused runs SAGA or SVRG on a GLM.*not SGD without momentum"):
        minimize_fused(SAGA(glm, 8), Adam(0.1), x0, steps=5)
    with pytest.raises(ValueError, match="steps"):
        minimize_fused(SAGA(glm, 8), SGD(0.1), x0, steps=0)
    with pytest.raises(ValueError, match="x0 is required"):
        minimize_fused(SAGA(glm, 8), SGD(0.1), steps=5)
    with pytest.raises(TypeError, match=r"x0 must be torch\.float64"):
        minimize_fused(SAGA(glm, 8), SGD(0.1), x0.float(), steps=5)
    done = minimize_fused(SAGA(glm, 8), SGD(0.1), x0, steps=5)
    with pytest.raises(ValueError, match="not both"):
        minimize_fused(SAGA(glm, 8), SGD(0.1), x0, steps=5, resume=done.checkpoint)
    with pytest.raises(ValueError, match="not both"):
        minimize_fused(SAGA(glm, 8), SGD(0.1), x0, steps=5, seed=1, generator=torch.Generator())
    assert torch.equal(x0, torch.zeros(D, dtype=torch.float64))  # the caller's start point is never written


def test_non_contiguous_data_are_copied_once_not_modified() -> None:
    glm = _data("logistic")
    X = glm.X.T.contiguous().T  # the same values, column-major
    strided = GLM(X, glm.y, l2=LAM)
    x0 = torch.zeros(D, dtype=torch.float64)
    fast = minimize_fused(SAGA(strided, 16), SGD(0.5), x0, steps=100, seed=2)
    slow = minimize(SAGA(glm, 16), SGD(0.5), x0, steps=100, seed=2, callbacks=STEP_BY_STEP)
    torch.testing.assert_close(fast.x, slow.x, rtol=1e-11, atol=1e-14)
    assert torch.equal(strided.X, glm.X)
    assert not strided.X.is_contiguous()


def test_long_runs_go_in_bounded_stretches_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel call takes at most _STRETCH steps (its per-step buffers stay small); cut at 10 steps a call, the
    # run is the same bit for bit, history included
    import noisygrad.loop_fused as loop_fused

    glm = _data("logistic")
    x0 = torch.zeros(D, dtype=torch.float64)
    for factory in (ESTIMATORS["saga"], ESTIMATORS["svrg-refresh-7"]):
        whole = minimize_fused(factory(glm), SGD(0.4), x0, steps=95, seed=6, record_every=4)
        monkeypatch.setattr(loop_fused, "_STRETCH", 10)
        cut = minimize_fused(factory(glm), SGD(0.4), x0, steps=95, seed=6, record_every=4)
        monkeypatch.undo()
        assert torch.equal(cut.x, whole.x)
        assert cut.history == whole.history
        assert cut.cost == whole.cost
        assert torch.equal(cut.checkpoint["generator"], whole.checkpoint["generator"])
