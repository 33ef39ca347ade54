"""Exact tests that close the mutation-testing gaps of ``glm.py``, ``estimators/variance_reduction.py``,
``estimators/glm_epochs.py`` and ``estimators/torch_mt.py`` (issue 18).

Every check is exact or to float64 rounding (``rtol`` 1e-12 or tighter, a few ulps over a handful of operations):
the GLM's values and gradients against closed forms written out by hand on tiny data, the GLM kernels on both
backends, the SVRG / SAGA / STORM estimates against their formulas on the same batch (drawn again from a copy of the
generator), their costs, memory, checkpoints and refusals, the compiled SAGA and SVRG steps against a plain numpy
reference that draws its batches with ``torch.randperm``, and the compiled Mersenne Twister's constants and state
layout. SAGA's state-consistency tolerance is checked at its exact boundary (the gap equal to it passes, the next
float refused). No statistical claim is made, so there is no Monte-Carlo tolerance. The kernel tests pass compiled and
with ``NUMBA_DISABLE_JIT=1`` (how the mutation runs of ``glm_epochs`` and ``torch_mt`` execute them: numba's disk cache
would otherwise serve the unmutated kernels).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.special import expit

from noisygrad import Energy, FiniteSum, NonFiniteGradientError
from noisygrad.estimators import glm_epochs, torch_mt
from noisygrad.estimators.base import Cost
from noisygrad.estimators.variance_reduction import SAGA, STORM, SVRG
from noisygrad.glm import GLM, GLMKernels
from noisygrad.objectives import BatchingNotAllowedError

F64 = torch.float64

# ------------------------------------------------------------------------------------------------------ glm

# four examples, two features; labels +-1 (a valid logistic problem; the squared loss takes them as targets)
X4 = torch.tensor([[1.0, 2.0], [-0.5, 1.0], [2.0, -1.0], [0.25, 0.5]], dtype=F64)
Y4 = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=F64)
W = torch.tensor([0.3, -0.7], dtype=F64)


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-13) -> None:
    assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), (actual, expected)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=1e-15)


def _by_hand(loss: str, w: torch.Tensor, rows: list[int], l2: float) -> tuple[list[float], list[torch.Tensor]]:
    """Each example's loss and gradient written out with math.*: ``l(z, y) + (l2/2)|w|^2``, ``l'(z, y) x + l2 w``."""
    values, grads = [], []
    for i in rows:
        x, y = X4[i], float(Y4[i])
        z = float(x @ w)
        if loss == "logistic":
            value, slope = math.log1p(math.exp(-y * z)), -y / (1.0 + math.exp(y * z))
        else:
            value, slope = 0.5 * (z - y) ** 2, z - y
        values.append(value + 0.5 * l2 * float(w @ w))
        grads.append(slope * x + l2 * w)
    return values, grads


@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_glm_values_and_gradients_are_the_closed_forms(loss: str, l2: float) -> None:
    glm = GLM(X4, Y4, loss=loss, l2=l2)  # type: ignore[arg-type]
    values, grads = _by_hand(loss, W, [0, 1, 2, 3], l2)
    value, grad = glm.value_and_grad(W)
    assert value == pytest.approx(sum(values) / 4, rel=1e-14)
    _close(grad, torch.stack(grads).mean(0))
    assert glm.value(W) == pytest.approx(sum(values) / 4, rel=1e-14)  # through the FiniteSum's loss
    idx = torch.tensor([2, 0, 3])
    value_b, grad_b = glm.value_and_grad(W, idx)
    assert value_b == pytest.approx((values[2] + values[0] + values[3]) / 3, rel=1e-14)
    _close(grad_b, (grads[2] + grads[0] + grads[3]) / 3)
    per_values, per_grads = glm.per_example_values_and_grads(W, idx)
    _close(per_values, torch.tensor([values[2], values[0], values[3]], dtype=F64))
    _close(per_grads, torch.stack([grads[2], grads[0], grads[3]]))
    assert glm.example_losses is not None
    _close(glm.example_losses(W, X4[idx], Y4[idx]), per_values)
    # the numpy kernels and the torch kernels: the objective, the data term's derivatives and gradient
    for kernels in (glm.kernels, GLMKernels(X4, Y4, loss, l2, backend="torch")):
        w = kernels.params(W)
        full_value, derivatives, data_grad = kernels.full(w)
        assert full_value == pytest.approx(sum(values) / 4, rel=1e-14)
        slopes = [float((g - l2 * W)[0] / X4[i, 0]) for i, g in enumerate(grads)]
        np.testing.assert_allclose(np.asarray(derivatives), slopes, rtol=1e-13)
        np.testing.assert_allclose(np.asarray(data_grad), (torch.stack(grads).mean(0) - l2 * W).numpy(), rtol=1e-13)
        batch_value, Xb, batch_derivatives = kernels.batch(w, kernels.view(idx))
        assert batch_value == pytest.approx((values[2] + values[0] + values[3]) / 3, rel=1e-14)
        np.testing.assert_array_equal(np.asarray(Xb), X4[idx].numpy())
        np.testing.assert_allclose(np.asarray(batch_derivatives), [slopes[2], slopes[0], slopes[3]], rtol=1e-13)


def test_glm_defaults_repr_and_backends() -> None:
    glm = GLM(X4, Y4)  # documented defaults: the logistic loss, no penalty
    assert (glm.loss_name, glm.l2, glm.n_features, glm.n_examples) == ("logistic", 0.0, 2, 4)
    assert glm.value(torch.zeros(2, dtype=F64)) == pytest.approx(math.log(2.0), rel=1e-15)
    assert repr(glm) == "GLM(N=4, d=2, loss='logistic', l2=0.0)"
    with pytest.raises(ValueError, match=r"labels -1 or \+1"):  # the default loss checks the labels
        GLM(X4, Y4 * 2.0)
    assert GLM(X4, Y4 * 2.0, loss="squared").value(torch.zeros(2, dtype=F64)) == pytest.approx(2.0, rel=1e-15)
    assert GLM(X4, torch.ones(4, dtype=F64)).n_examples == 4  # one class only is allowed
    kernels = glm.kernels  # data on the CPU: numpy views, never copies of the data
    assert (kernels.on_cpu, kernels.loss, kernels.dtype, kernels.device) == (True, "logistic", F64, torch.device("cpu"))
    assert isinstance(kernels.X, np.ndarray)
    assert np.shares_memory(kernels.X, X4.numpy())
    assert isinstance(kernels.y, np.ndarray)
    assert np.shares_memory(kernels.y, Y4.numpy())
    on_tensors = GLMKernels(X4, Y4, "logistic", 0.0, backend="torch")
    assert not on_tensors.on_cpu
    assert on_tensors.X is X4
    assert on_tensors.y is Y4
    assert GLMKernels(X4, Y4, "logistic", 0.0, backend="numpy").on_cpu
    with pytest.raises(ValueError, match="contiguous"):
        on_tensors.contiguous()
    with pytest.raises(ValueError, match="backend"):
        GLMKernels(X4, Y4, "logistic", 0.0, backend="numpy ")
    with pytest.raises(ValueError, match="backend"):
        GLMKernels(X4.to("meta"), Y4.to("meta"), "logistic", 0.0, backend="numpy")
    # contiguous(): views of C-contiguous data, made once; a column-major X is copied once and kept
    Xc, _ = kernels.contiguous()
    assert np.shares_memory(Xc, X4.numpy())
    assert kernels.contiguous()[0] is Xc
    strided = GLM(X4.T.contiguous().T, Y4).kernels
    Xs, _ = strided.contiguous()
    assert Xs.flags.c_contiguous
    assert not np.shares_memory(Xs, strided.X)
    assert strided.contiguous()[0] is Xs
    np.testing.assert_array_equal(Xs, X4.numpy())


def test_glm_params_gradient_and_bad_input() -> None:
    glm = GLM(X4, Y4, l2=0.1)
    w = glm.kernels.params(W.clone().requires_grad_(True))  # a leaf with requires_grad is read, detached
    assert isinstance(w, np.ndarray)
    np.testing.assert_array_equal(w, W.numpy())
    with pytest.raises(TypeError, match="dtype and device"):
        glm.kernels.params(W.to("meta"))  # the right dtype on another device
    with pytest.raises(TypeError, match="dtype and device"):
        glm.kernels.params(W.float())
    with pytest.raises(ValueError, match=r"params must have shape \(2,\)"):
        glm.kernels.params(torch.zeros(3, dtype=F64))
    with pytest.raises(NonFiniteGradientError, match="params"):
        glm.kernels.params(torch.tensor([0.0, math.inf], dtype=F64))
    vector = np.array([1.0, -2.0])
    grad = glm.kernels.gradient(vector)
    assert np.shares_memory(grad.numpy(), vector)
    assert grad.tolist() == [1.0, -2.0]
    with pytest.raises(NonFiniteGradientError, match="gradient has 1 non-finite entry"):
        glm.kernels.gradient(np.array([1.0, math.nan]))
    # the data: shapes with no example or no feature, 2-D targets, non-float, mixed dtypes, wrong types
    for X, y, match in [
        (torch.zeros(0, 2, dtype=F64), torch.zeros(0, dtype=F64), r"^X must have shape \(N, d\)"),
        (torch.zeros(4, 0, dtype=F64), Y4, r"^X must have shape \(N, d\)"),
        (X4, torch.zeros(0, dtype=F64), r"^y must have shape \(N,\)"),
        (X4, Y4[:, None], r"^y must have shape \(N,\)"),
        (X4[None], Y4, r"^X must have shape \(N, d\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            GLM(X, y, loss="squared")
    with pytest.raises(TypeError, match="floating-point"):
        GLM(X4, Y4.to(torch.int64), loss="squared")
    with pytest.raises(TypeError, match=r"^y must be a torch\.Tensor or a numpy array"):
        GLM(X4, [1.0, -1.0, -1.0, 1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"one target per row of X \(4\), got 3"):
        GLM(X4, Y4[:3])
    with pytest.raises(TypeError, match="share dtype and device"):
        GLM(X4.float(), Y4)
    with pytest.raises(ValueError, match=r"labels -1 or \+1.*found \[-1\.0, 0\.0, 1\.0\]"):
        GLM(X4, torch.tensor([1.0, -1.0, 0.0, 1.0], dtype=F64))
    with pytest.raises(ValueError, match=r"labels -1 or \+1"):
        GLM(X4, torch.tensor([1.0, -1.0, 1.0, -2.0], dtype=F64))


def test_glm_wraps_writable_numpy_data_and_copies_read_only_data() -> None:
    X_np, y_np = X4.numpy().copy(), Y4.numpy().copy()
    glm = GLM(X_np, y_np)
    assert np.shares_memory(glm.X.numpy(), X_np)
    assert np.shares_memory(glm.y.numpy(), y_np)
    X_np.flags.writeable = False
    frozen = GLM(X_np, y_np)
    assert not np.shares_memory(frozen.X.numpy(), X_np)
    assert torch.equal(frozen.X, X4)


# ---------------------------------------------------------------------------------------------- glm_epochs

# six examples, three features: small enough that the kernels' loops are cheap even uncompiled
X6 = np.array(
    [[1.0, 0.5, -1.0], [-0.5, 1.5, 0.25], [2.0, -1.0, 0.5], [0.25, 0.5, 1.0], [-1.0, -0.75, 2.0], [0.5, 2.0, -0.5]]
)
Y6 = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])


def _loss_and_slope(logistic: bool, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The losses and their derivatives, written independently of the kernels (numpy/scipy)."""
    if logistic:
        return np.logaddexp(0.0, -y * z), -y * expit(-y * z)
    return 0.5 * (z - y) ** 2, z - y


def _run_kernel(name: str, logistic: bool, l2: float, wd: float, lrs: list[float], seed: int, **memory: object):
    """The kernel ``name`` run on copies; returns its result and every buffer it wrote."""
    generator = torch.Generator().manual_seed(seed)
    words, counters = torch_mt.read_state(generator)
    out = {
        "w": np.array([0.2, -0.1, 0.3]),
        "words": words,
        "counters": counters,
        "values": np.full(len(lrs), -1.0),
        "grad_norms": np.full(len(lrs), -1.0),
        **{k: np.array(v, dtype=np.float64) for k, v in memory.items()},
    }
    record = np.array([t % 3 != 1 for t in range(len(lrs))])  # some steps unrecorded: their slots stay -1
    common = (np.ascontiguousarray(X6), Y6.copy(), logistic, l2, 2, out["w"])
    tail = (np.array(lrs), wd, words, counters, np.arange(6, dtype=np.int64), record, out["values"], out["grad_norms"])
    if name == "saga":
        done = glm_epochs.saga_steps(*common, out["table"], out["table_mean"], *tail)
    else:
        out["snapshots"] = np.zeros(len(lrs), dtype=np.bool_)
        done = glm_epochs.svrg_steps(
            *common, out["anchor"], out["anchor_grad"], out["derivatives"], memory["calls"], memory["refresh"], *tail,
            out["snapshots"],
        )  # fmt: skip
    out["record"] = record
    return done, out


def _reference(name: str, logistic: bool, l2: float, wd: float, lrs: list[float], seed: int, **memory: object):
    """The same steps in plain numpy, batches from ``torch.randperm(6, generator)[:2]``."""
    generator = torch.Generator().manual_seed(seed)
    w = np.array([0.2, -0.1, 0.3])
    mem = {k: np.array(v, dtype=np.float64) for k, v in memory.items()}
    values, norms, snapshots = np.full(len(lrs), -1.0), np.full(len(lrs), -1.0), []
    for t, lr in enumerate(lrs):
        snapshot = name == "svrg" and memory["refresh"] > 0 and (memory["calls"] + t) % memory["refresh"] == 0
        snapshots.append(snapshot)
        if snapshot:
            rows = np.arange(6)
            losses, slopes = _loss_and_slope(logistic, X6 @ w, Y6)
            grad = slopes @ X6 / 6 + l2 * w
        else:
            rows = torch.randperm(6, generator=generator)[:2].numpy()
            losses, slopes = _loss_and_slope(logistic, X6[rows] @ w, Y6[rows])
            if name == "saga":
                change = (slopes - mem["table"][rows]) @ X6[rows]
                grad = change / 2 + mem["table_mean"] + l2 * w
            else:
                change = (slopes - mem["derivatives"][rows]) @ X6[rows]
                grad = change / 2 + mem["anchor_grad"] + l2 * (w - mem["anchor"])
        candidate = w - lr * (grad + wd * w)
        if not (np.isfinite(grad).all() and np.isfinite(candidate).all()):
            return t, w, mem, values, norms, snapshots, generator
        if t % 3 != 1:
            values[t], norms[t] = losses.mean() + 0.5 * l2 * (w @ w), np.linalg.norm(grad)
        if name == "saga":
            mem["table"][rows] = slopes
            mem["table_mean"] += change / 6
        elif snapshot:
            mem["anchor"], mem["anchor_grad"], mem["derivatives"] = w.copy(), grad.copy(), slopes.copy()
        w = candidate
    return len(lrs), w, mem, values, norms, snapshots, generator


def _saga_memory(logistic: bool) -> dict[str, object]:
    table = _loss_and_slope(logistic, X6 @ np.array([0.1, 0.2, -0.3]), Y6)[1]
    return {"table": table, "table_mean": table @ X6 / 6}


def _svrg_memory(logistic: bool, calls: int, refresh: int) -> dict[str, object]:
    anchor = np.array([0.1, 0.2, -0.3])
    derivatives = _loss_and_slope(logistic, X6 @ anchor, Y6)[1]
    return {
        "anchor": anchor,
        "anchor_grad": derivatives @ X6 / 6 + 0.25 * anchor,
        "derivatives": derivatives,
        "calls": calls,
        "refresh": refresh,
    }


LRS = [0.3, 0.2, 0.25, 0.1, 0.15, 0.05, 0.2]


def _assert_same(name: str, got: tuple, want: tuple) -> None:
    done, out = got
    n_ref, w_ref, mem_ref, values_ref, norms_ref, snapshots_ref, generator = want
    assert done == n_ref
    np.testing.assert_allclose(out["w"], w_ref, rtol=1e-12, atol=1e-15)
    for key, value in mem_ref.items():
        if isinstance(value, np.ndarray) and value.ndim:
            np.testing.assert_allclose(out[key], value, rtol=1e-12, atol=1e-15, err_msg=key)
    np.testing.assert_allclose(out["values"], values_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["grad_norms"], norms_ref, rtol=1e-12, atol=1e-15)
    if name == "svrg":
        assert out["snapshots"][:done].tolist() == snapshots_ref[:done]
    words, counters = torch_mt.read_state(generator)  # the same number of draws: the generator's state is torch's
    assert np.array_equal(out["words"], words)
    assert out["counters"].tolist() == counters.tolist()


@pytest.mark.parametrize("logistic", [True, False])
def test_compiled_saga_steps_are_the_numpy_reference(logistic: bool) -> None:
    # weight_decay = 1.0 is applied as SGD applies it (g + wd w); l2 = 0.25 enters the gradient
    args = ("saga", logistic, 0.25, 1.0, LRS, 5)
    _assert_same("saga", _run_kernel(*args, **_saga_memory(logistic)), _reference(*args, **_saga_memory(logistic)))


@pytest.mark.parametrize("logistic", [True, False])
@pytest.mark.parametrize(("calls", "refresh", "wd"), [(1, 3, 0.0), (0, 2, 1.0), (4, 0, 0.5), (2, 1, 0.0)])
def test_compiled_svrg_steps_are_the_numpy_reference(logistic: bool, calls: int, refresh: int, wd: float) -> None:
    # refresh = 3 from call 1: snapshots at steps 2 and 5 (no draw there); refresh = 0: a fixed anchor; refresh = 1:
    # a snapshot at every step (full-gradient descent)
    args = ("svrg", logistic, 0.25, wd, LRS, 7)
    memory = _svrg_memory(logistic, calls, refresh)
    got, want = _run_kernel(*args, **memory), _reference(*args, **memory)
    _assert_same("svrg", got, want)
    assert got[1]["snapshots"].tolist() == [(calls + t) % refresh == 0 if refresh else False for t in range(7)]


@pytest.mark.parametrize("name", ["saga", "svrg"])
def test_compiled_steps_stop_before_a_non_finite_step(name: str) -> None:
    # an infinite rate at step 3 (finite gradient, infinite candidate) and a NaN rate: three steps are committed
    # and the memory and iterate are those after three steps
    for bad in (math.inf, math.nan):
        lrs = [0.3, 0.2, 0.25, bad, 0.1]
        memory = _saga_memory(True) if name == "saga" else _svrg_memory(True, 1, 3)
        with np.errstate(over="ignore", invalid="ignore"):  # uncompiled (NUMBA_DISABLE_JIT) numpy scalars warn
            got = _run_kernel(name, True, 0.25, 0.0, lrs, 3, **memory)
            want = _reference(name, True, 0.25, 0.0, lrs, 3, **memory)
        assert got[0] == 3
        _assert_same(name, got, want)
    # a gradient that overflows to Inf at step 0 (squared loss, huge features): nothing is committed
    memory = _saga_memory(False) if name == "saga" else _svrg_memory(False, 1, 3)
    before = {k: np.array(v, dtype=np.float64) for k, v in memory.items() if k not in ("calls", "refresh")}
    huge = np.ascontiguousarray(X6 * 1e200)
    generator = torch.Generator().manual_seed(1)
    words, counters = torch_mt.read_state(generator)
    w = np.array([1e200, 1e200, 1e200])
    values, norms = np.zeros(1), np.zeros(1)
    tail = (np.array([0.1]), 0.0, words, counters, np.arange(6, dtype=np.int64), np.ones(1, np.bool_), values, norms)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "saga":
            done = glm_epochs.saga_steps(huge, Y6, False, 0.0, 2, w, before["table"], before["table_mean"], *tail)
        else:
            done = glm_epochs.svrg_steps(
                huge, Y6, False, 0.0, 2, w, before["anchor"], before["anchor_grad"], before["derivatives"], 1, 3,
                *tail, np.zeros(1, np.bool_),
            )  # fmt: skip
    assert done == 0
    assert w.tolist() == [1e200] * 3
    assert values.tolist() == [0.0]
    assert norms.tolist() == [0.0]
    for key, value in before.items():
        np.testing.assert_array_equal(value, np.array(memory[key], dtype=np.float64), err_msg=key)


@pytest.mark.parametrize("name", ["saga", "svrg"])
def test_float32_steps_whose_iterate_overflows_are_refused(name: str) -> None:
    # float32 data: the candidate iterate 3e38 - 1.0 * (-1e38) = 4e38 is finite in float64 but Inf in float32 (the
    # iterate's dtype), so the step is refused and nothing is committed; X's first column is 0, so the margins and
    # the gradient stay finite
    f32 = np.float32
    X = np.ascontiguousarray(np.concatenate([np.zeros((6, 1)), X6[:, 1:]], axis=1), dtype=f32)
    y, w = Y6.astype(f32), np.array([3e38, 0.1, 0.2], dtype=f32)
    memory = np.zeros(6, dtype=f32)
    first = np.array([-1e38, 0.0, 0.0], dtype=f32)  # table_mean (SAGA) or anchor_grad (SVRG): the gradient's part
    words, counters = torch_mt.read_state(torch.Generator().manual_seed(2))
    values, norms = np.zeros(1), np.zeros(1)
    tail = (np.ones(1), 0.0, words, counters, np.arange(6, dtype=np.int64), np.ones(1, np.bool_), values, norms)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "saga":
            done = glm_epochs.saga_steps(X, y, False, 0.0, 2, w, memory, first, *tail)
        else:
            anchor = np.array([3e38, 0.1, 0.2], dtype=f32)
            done = glm_epochs.svrg_steps(X, y, False, 0.0, 2, w, anchor, first, memory, 1, 0, *tail, np.zeros(1, bool))
    assert done == 0
    assert w.tolist() == np.array([3e38, 0.1, 0.2], dtype=f32).tolist()
    assert values.tolist() == [0.0]


def test_a_stretch_is_frozen() -> None:
    # what a kernel call is handed cannot be rebound afterwards (the arrays themselves are the kernels' buffers)
    arrays = {name: np.zeros(1) for name in ("w", "rates", "words", "counters", "scratch", "record", "values")}
    stretch = glm_epochs.Stretch(weight_decay=0.0, grad_norms=np.zeros(1), **arrays)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stretch.weight_decay = 1.0  # type: ignore[misc]


def test_compiled_losses_and_derivatives_are_scipys() -> None:
    # the scalar helpers at margins where a naive log(1 + exp(.)) or 1 / (1 + exp(.)) would lose digits
    for z in (-40.0, -3.0, -0.5, 0.0, 0.7, 25.0, 600.0):
        for y in (1.0, -1.0):
            assert glm_epochs._loss(True, z, y) == pytest.approx(float(np.logaddexp(0.0, -y * z)), rel=1e-15)
            assert glm_epochs._derivative(True, z, y) == pytest.approx(float(-y * expit(-y * z)), rel=1e-14, abs=0)
        assert glm_epochs._loss(False, z, 0.5) == 0.5 * (z - 0.5) ** 2
        assert glm_epochs._derivative(False, z, 0.5) == z - 0.5


# ------------------------------------------------------------------------------------------------ torch_mt


def test_torch_mt_constants_and_the_state_layout() -> None:
    # MAX_N: randperm draws 32-bit numbers for n below (2**32 - 1) // 20 (documented, used by fused_reason)
    assert torch_mt.MAX_N == 214748364
    assert (torch_mt.WORDS, torch_mt._SHIFT, torch_mt._STATE_BYTES) == (624, 397, 5056)
    generator = torch.Generator().manual_seed(5)
    torch.randperm(10, generator=generator)  # 9 draws: the first twists (left = 624, next = 0), then 8 more
    words, counters = torch_mt.read_state(generator)
    assert counters.dtype == np.int64
    assert counters.tolist() == [616, 9]
    raw = generator.get_state().numpy()
    assert np.array_equal(words, raw[24 : 24 + 8 * 624].view(np.uint64).astype(np.uint32))
    # write_state moves words and both counters back; its seed is kept
    other = torch.Generator().manual_seed(6)
    torch_mt.write_state(other, words, np.array([100, 524]))
    got_words, got_counters = torch_mt.read_state(other)
    assert np.array_equal(got_words, words)
    assert got_counters.tolist() == [100, 524]
    assert other.initial_seed() == 6
    with pytest.raises(ValueError, match="5056 bytes"):
        torch_mt.read_state(_FakeGenerator())  # type: ignore[arg-type]


class _FakeGenerator:
    """A generator-like object whose state has the wrong size (not a CPU torch.Generator)."""

    def get_state(self) -> torch.Tensor:
        return torch.zeros(5057, dtype=torch.uint8)


def test_draws_past_several_twists_match_torch() -> None:
    # draw_subset and skip across twist boundaries from every phase of the counters, against torch itself
    for first in (0, 1, 622, 623, 624, 1247):
        generator = torch.Generator().manual_seed(first + 3)
        torch.randperm(first + 1, generator=generator)
        words, counters = torch_mt.read_state(generator)
        for n, b in ((2, 1), (2, 2), (3, 3), (625, 2), (1250, 5)):
            out, scratch = np.empty(b, dtype=np.int64), np.arange(n, dtype=np.int64)
            torch_mt.draw_subset(words, counters, n, out, scratch)
            assert out.tolist() == torch.randperm(n, generator=generator)[:b].tolist()
            assert np.array_equal(scratch, np.arange(n))
        torch_words, torch_counters = torch_mt.read_state(generator)
        assert np.array_equal(words, torch_words)
        assert counters.tolist() == torch_counters.tolist()


def test_the_layout_check_turns_the_compiled_path_off_on_any_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    # layout_matches (uncached: __wrapped__) against draws, counters and states that differ from torch's
    check = torch_mt.layout_matches.__wrapped__
    assert check() is True
    draw = torch_mt.draw_subset

    def wrong_draws(words: np.ndarray, counters: np.ndarray, n: int, out: np.ndarray, scratch: np.ndarray) -> None:
        draw(words, counters, n, out, scratch)
        out[:] = out[::-1] if len(out) > 1 else out + 1

    def wrong_counters(words: np.ndarray, counters: np.ndarray, n: int, out: np.ndarray, scratch: np.ndarray) -> None:
        draw(words, counters, n, out, scratch)
        counters[0] += 0 if n > 1 else 1  # the words and the draws stay right; the counter `left` is off by one

    def unreadable(generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise ValueError("not a CPU generator")

    for name, replacement in [
        ("draw_subset", wrong_draws),
        ("draw_subset", wrong_counters),
        ("read_state", unreadable),
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(torch_mt, name, replacement)
            assert check() is False, name


# ---------------------------------------------------------------------------------------- variance_reduction


def _autograd_sum() -> FiniteSum:
    """The squared-loss problem on X4, Y4 with penalty 0.3, written as a plain FiniteSum (autograd and vmap)."""

    def loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (0.5 * (X @ w - y) ** 2).mean() + 0.15 * (w @ w)

    return FiniteSum(loss, (X4, Y4))


def _twin(generator: torch.Generator) -> torch.Generator:
    """A second generator in the same state: it draws the batch the estimator is about to draw."""
    return torch.Generator().set_state(generator.get_state())


OBJECTIVES = {"generic": _autograd_sum, "glm": lambda: GLM(X4, Y4, loss="squared", l2=0.3)}


@pytest.mark.parametrize("path", ["generic", "glm"])
def test_svrg_estimates_are_the_control_variate_formula(path: str) -> None:
    objective, reference = OBJECTIVES[path](), GLM(X4, Y4, loss="squared", l2=0.3)
    svrg, generator = SVRG(objective, 2, refresh=3), torch.Generator().manual_seed(8)
    assert svrg.calls == 0
    assert svrg.state_dict()["anchor"] is None
    anchor: torch.Tensor | None = None
    inner = 2 if path == "glm" else 4  # the GLM path keeps the anchor's derivatives: b examples, not 2 b
    for call in range(7):
        x = torch.tensor([0.1 * call - 0.2, 0.3 - 0.05 * call], dtype=F64)
        twin = _twin(generator)
        est = svrg.estimate(x, generator)
        if call % 3 == 0:  # a snapshot: the full value and gradient, N examples, no draw
            anchor = x.clone()
            value, grad = reference.value_and_grad(x)
            assert est.cost.examples == 4
            assert torch.equal(generator.get_state(), twin.get_state())
        else:
            assert anchor is not None
            idx = torch.randperm(4, generator=twin)[:2]
            value, grad_here = reference.value_and_grad(x, idx)
            grad = grad_here - reference.value_and_grad(anchor, idx)[1] + reference.value_and_grad(anchor)[1]
            assert est.cost.examples == inner
            assert torch.equal(generator.get_state(), twin.get_state())
        assert est.value == pytest.approx(value, rel=1e-13)
        _close(est.grad, grad, rtol=1e-12)
        state = svrg.state_dict()
        assert state["calls"] == call + 1
        assert torch.equal(state["anchor"], anchor)
        _close(state["anchor_grad"], reference.value_and_grad(anchor)[1], rtol=1e-12)
        if path == "glm":
            _close(state["anchor_derivatives"], X4 @ anchor - Y4)
        x.fill_(7.0)  # the anchor was a copy of the caller's parameters
        assert torch.equal(svrg.state_dict()["anchor"], anchor)


def test_svrg_refresh_rules_and_fixed_anchor() -> None:
    glm = GLM(X4, Y4, loss="squared", l2=0.3)
    assert SVRG(glm, 1).refresh == 4
    assert SVRG(glm, 3).refresh == 1
    assert SVRG(glm, 4).refresh == 1
    assert SVRG(glm, 2, refresh="epoch").refresh == 2
    assert SVRG(glm, 2, refresh=5).refresh == 5
    assert SVRG(glm, 4).batch_size == 4  # b = N is allowed
    with pytest.raises(ValueError, match="refresh must be 'epoch'"):
        SVRG(glm, 2, refresh="epochs")
    # refresh=None without an anchor: a fixed anchor taken at the first call, never refreshed
    svrg, generator = SVRG(glm, 2, refresh=None), torch.Generator().manual_seed(1)
    costs = [svrg.estimate(torch.full((2,), 0.1 * k, dtype=F64), generator).cost.examples for k in range(6)]
    assert costs == [4, 2, 2, 2, 2, 2]
    assert torch.equal(svrg.state_dict()["anchor"], torch.zeros(2, dtype=F64))
    # a given anchor: its full gradient is paid with the first call, which is a corrected step
    start = torch.tensor([0.5, -0.5], dtype=F64)
    fixed = SVRG(glm, 2, refresh=None, anchor=start)
    start.fill_(3.0)  # the anchor is the estimator's own copy
    x = torch.tensor([0.2, 0.1], dtype=F64)
    twin = _twin(generator)
    est = fixed.estimate(x, generator)
    idx = torch.randperm(4, generator=twin)[:2]
    anchor = torch.tensor([0.5, -0.5], dtype=F64)
    expected = glm.value_and_grad(x, idx)[1] - glm.value_and_grad(anchor, idx)[1] + glm.value_and_grad(anchor)[1]
    _close(est.grad, expected, rtol=1e-12)
    assert est.cost.examples == 4 + 2
    assert fixed.estimate(x, generator).cost.examples == 2
    with pytest.raises(ValueError, match="refresh=None"):
        SVRG(glm, 2, anchor=anchor)  # the default refresh is "epoch"


@pytest.mark.parametrize("path", ["generic", "glm"])
def test_svrg_state_round_trip_and_refusals(path: str) -> None:
    objective, generator = OBJECTIVES[path](), torch.Generator().manual_seed(3)
    svrg = SVRG(objective, 2, refresh=3)
    for k in range(4):
        svrg.estimate(torch.full((2,), 0.1 * k, dtype=F64), generator)
    state = svrg.state_dict()
    keys = {"anchor", "anchor_grad", "calls"} | ({"anchor_derivatives"} if path == "glm" else set())
    assert set(state) == keys
    assert state["calls"] == 4
    copy = SVRG(objective, 2, refresh=3, anchor=None)
    copy.load_state_dict(state)
    for value in state.values():
        if isinstance(value, torch.Tensor):
            value.fill_(9.0)  # the loaded memory is the estimator's own copy
    assert not torch.equal(svrg.state_dict()["anchor"], state["anchor"])  # state_dict() hands out copies
    x, twin = torch.tensor([0.4, -0.2], dtype=F64), _twin(generator)
    mine, theirs = svrg.estimate(x, generator), copy.estimate(x, twin)
    assert torch.equal(mine.grad, theirs.grad)
    assert mine.cost == theirs.cost
    assert copy.state_dict()["calls"] == 5
    # an empty memory loads as one: the next call takes a snapshot (and pays N, no pending anchor cost)
    empty = SVRG(objective, 2, refresh=None, anchor=torch.zeros(2, dtype=F64))
    empty.load_state_dict({k: (0 if k == "calls" else None) for k in keys})
    assert empty.estimate(x, generator).cost.examples == 4
    assert empty.state_dict()["calls"] == 1
    anchored = SVRG(objective, 2, refresh=None, anchor=torch.zeros(2, dtype=F64))
    anchored.load_state_dict(svrg.state_dict())  # a loaded memory replaces the pending anchor cost
    assert anchored.estimate(x, generator).cost.examples == (2 if path == "glm" else 4)
    with pytest.raises(ValueError, match="SVRG state must have keys"):
        svrg.load_state_dict({**svrg.state_dict(), "extra": 0})
    with pytest.raises(ValueError, match="calls"):
        svrg.load_state_dict({**svrg.state_dict(), "calls": -1})


def test_svrg_glm_state_is_checked_and_owned() -> None:
    glm = GLM(X4, Y4, loss="squared", l2=0.3)
    svrg = SVRG(glm, 2)
    svrg.estimate(torch.zeros(2, dtype=F64), torch.Generator())
    good = svrg.state_dict()
    for key, bad in [
        ("anchor", torch.zeros(3, dtype=F64)),
        ("anchor_grad", torch.zeros(2, dtype=torch.float32)),
        ("anchor_derivatives", torch.zeros(5, dtype=F64)),
        ("anchor", [0.0, 0.0]),
    ]:
        with pytest.raises(ValueError, match=rf"state\['{key}'\] must be a tensor of shape"):
            svrg.load_state_dict({**good, key: bad})
    state = {**good, "anchor": torch.tensor([1.0, 2.0], dtype=F64)}
    svrg.load_state_dict(state)
    state["anchor"].fill_(5.0)
    assert svrg.state_dict()["anchor"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("path", ["generic", "glm"])
def test_saga_estimates_follow_the_table(path: str) -> None:
    objective, reference = OBJECTIVES[path](), GLM(X4, Y4, loss="squared", l2=0.3)
    saga, generator = SAGA(objective, 2), torch.Generator().manual_seed(12)
    assert saga.state_dict() == {"table": None, "table_mean": None}
    x0 = torch.tensor([0.25, -0.5], dtype=F64)
    # the table: the per-example gradients at x0 (generic) or the data term's derivatives (GLM)
    table = (X4 @ x0 - Y4).clone() if path == "glm" else reference.per_example_values_and_grads(x0, torch.arange(4))[1]
    for step in range(5):
        x = x0 if step == 0 else torch.tensor([0.25 - 0.1 * step, -0.5 + 0.05 * step], dtype=F64)
        twin = _twin(generator)
        est = saga.estimate(x, generator)
        idx = torch.randperm(4, generator=twin)[:2]
        values, fresh = reference.per_example_values_and_grads(x, idx)
        assert est.value == pytest.approx(float(values.mean()), rel=1e-13)
        if path == "glm":
            slopes = X4[idx] @ x - Y4[idx]
            grad = (slopes - table[idx]) @ X4[idx] / 2 + (table @ X4) / 4 + 0.3 * x
            table[idx] = slopes
            mean = table @ X4 / 4
        else:
            grad = (fresh - table[idx]).mean(0) + table.mean(0)
            table[idx] = fresh
            mean = table.mean(0)
        _close(est.grad, grad, rtol=1e-12)
        assert est.cost.examples == (4 + 2 if step == 0 else 2)
        state = saga.state_dict()
        _close(state["table"], table, rtol=1e-12)
        _close(state["table_mean"], mean, rtol=1e-12)


@pytest.mark.parametrize("path", ["generic", "glm"])
def test_saga_state_round_trip_and_the_consistency_check(path: str) -> None:
    objective, generator = OBJECTIVES[path](), torch.Generator().manual_seed(2)
    saga = SAGA(objective, 2)
    for k in range(3):
        saga.estimate(torch.full((2,), 0.2 * k, dtype=F64), generator)
    state = saga.state_dict()
    copy = SAGA(objective, 2)
    copy.load_state_dict(state)
    state["table"].fill_(4.0)  # loaded as a copy
    x, twin = torch.tensor([0.3, 0.1], dtype=F64), _twin(generator)
    mine, theirs = saga.estimate(x, generator), copy.estimate(x, twin)
    assert torch.equal(mine.grad, theirs.grad)
    assert mine.cost == theirs.cost == Cost(examples=2)
    empty = SAGA(objective, 2)
    empty.load_state_dict({"table": None, "table_mean": None})
    assert empty.estimate(x, generator).cost.examples == 4 + 2  # an empty memory fills its table again
    good = saga.state_dict()
    with pytest.raises(ValueError, match="both table and table_mean, or neither"):
        saga.load_state_dict({"table": good["table"], "table_mean": None})
    with pytest.raises(ValueError, match="both table and table_mean, or neither"):
        saga.load_state_dict({"table": None, "table_mean": good["table_mean"]})
    with pytest.raises(ValueError, match="keys table, table_mean"):
        saga.load_state_dict({"table": None, "table_mean": None, "calls": 0})
    bad_table = good["table"].clone()
    bad_table[1] = math.nan
    with pytest.raises(NonFiniteGradientError, match=r"state\['table'\]"):
        saga.load_state_dict({"table": bad_table, "table_mean": good["table_mean"]})
    with pytest.raises(NonFiniteGradientError, match=r"state\['table_mean'\]"):
        saga.load_state_dict({"table": good["table"], "table_mean": good["table_mean"] * math.inf})
    with pytest.raises(ValueError, match="not the mean of state"):
        saga.load_state_dict({"table": good["table"], "table_mean": good["table_mean"] + 1e-3})
    if path == "generic":
        for table, mean in [(good["table"][:3], good["table_mean"]), (good["table"], good["table_mean"][:1])]:
            with pytest.raises(ValueError, match=r"must have shape \(N=4, d\)"):
                saga.load_state_dict({"table": table, "table_mean": mean})
        with pytest.raises(ValueError, match=r"must have shape \(N=4, d\)"):
            saga.load_state_dict({"table": good["table"].reshape(-1), "table_mean": good["table_mean"]})
    saga.load_state_dict(good)  # an intact state loads
    assert torch.equal(saga.state_dict()["table"], good["table"])


def _tolerance(scale: torch.Tensor) -> torch.Tensor:
    """The documented tolerance of SAGA's check: ``100 sqrt(eps) (scale + 1e-6 max(scale) + 1e-300)``."""
    return 100.0 * float(torch.finfo(scale.dtype).eps) ** 0.5 * (scale + float(scale.max()) * 1e-6 + 1e-300)


def test_saga_consistency_tolerance_at_its_boundary() -> None:
    # generic table: feature 0 has mean 0 and mean |.| 1, feature 1 mean 0 and mean |.| 3: the gap exactly at the
    # tolerance is accepted, the next float above it refused
    objective = FiniteSum(lambda w, X: (X @ w).mean(), (torch.zeros(2, 2, dtype=F64),))
    table = torch.tensor([[1.0, 3.0], [-1.0, -3.0]], dtype=F64)
    edge = _tolerance(torch.tensor([1.0, 3.0], dtype=F64))
    saga = SAGA(objective, 1)
    saga.load_state_dict({"table": table, "table_mean": torch.tensor([float(edge[0]), 0.0], dtype=F64)})
    above = math.nextafter(float(edge[0]), math.inf)
    with pytest.raises(ValueError, match="not the mean"):
        saga.load_state_dict({"table": table, "table_mean": torch.tensor([above, 0.0], dtype=F64)})
    saga.load_state_dict({"table": table, "table_mean": torch.tensor([0.0, -float(edge[1])], dtype=F64)})
    with pytest.raises(ValueError, match="not the mean"):
        saga.load_state_dict({"table": table, "table_mean": torch.tensor([0.0, -1.0001 * float(edge[1])], dtype=F64)})
    # an all-zero table (scale 0 everywhere) with a zero mean is consistent: the gap 0 is within the 1e-300 floor
    saga.load_state_dict({"table": torch.zeros(2, 2, dtype=F64), "table_mean": torch.zeros(2, dtype=F64)})
    assert torch.equal(saga.state_dict()["table"], torch.zeros(2, 2, dtype=F64))
    # GLM table (derivatives): expected X^T t / N, scale |X|^T |t| / N; half the tolerance passes, twice it fails
    glm = GLM(X4, Y4, loss="squared")
    derivatives = torch.tensor([0.5, -1.0, 0.25, 2.0], dtype=F64)
    expected, edge = X4.T @ derivatives / 4, _tolerance(X4.abs().T @ derivatives.abs() / 4)
    glm_saga = SAGA(glm, 2)
    glm_saga.load_state_dict({"table": derivatives, "table_mean": expected + 0.5 * edge})
    with pytest.raises(ValueError, match="not the mean"):
        glm_saga.load_state_dict({"table": derivatives, "table_mean": expected - 2.0 * edge})
    with pytest.raises(ValueError, match=r"state\['table'\] must be a tensor of shape \(4,\)"):
        glm_saga.load_state_dict({"table": derivatives[:3], "table_mean": expected})
    with pytest.raises(ValueError, match=r"state\['table_mean'\] must be a tensor of shape \(2,\)"):
        glm_saga.load_state_dict({"table": derivatives, "table_mean": expected.float()})


@pytest.mark.parametrize("momentum", [None, 1.0, 0.4])
def test_storm_estimates_are_the_recursive_momentum(momentum: float | None) -> None:
    objective, reference = _autograd_sum(), GLM(X4, Y4, loss="squared", l2=0.3)
    storm = STORM(objective, 2) if momentum is None else STORM(objective, 2, momentum=momentum)
    a = 0.1 if momentum is None else momentum  # the documented default a = 0.1
    assert storm.momentum == a
    generator = torch.Generator().manual_seed(6)
    previous = direction = None
    for step in range(4):
        x = torch.tensor([0.2 - 0.1 * step, 0.1 * step], dtype=F64)
        twin = _twin(generator)
        est = storm.estimate(x, generator)
        idx = torch.randperm(4, generator=twin)[:2]
        value, grad = reference.value_and_grad(x, idx)
        if direction is not None:
            grad = grad + (1.0 - a) * (direction - reference.value_and_grad(previous, idx)[1])
        assert est.value == pytest.approx(value, rel=1e-13)
        _close(est.grad, grad, rtol=1e-12)
        assert est.cost.examples == (2 if step == 0 else 4)
        assert torch.equal(generator.get_state(), twin.get_state())
        previous, direction = x.clone(), grad
        x.fill_(5.0)  # the remembered point is a copy
        state = storm.state_dict()
        assert torch.equal(state["previous"], previous)
        _close(state["direction"], direction, rtol=1e-12)


def test_storm_state_and_bad_input() -> None:
    objective = _autograd_sum()
    storm, generator = STORM(objective, 2), torch.Generator().manual_seed(1)
    storm.estimate(torch.zeros(2, dtype=F64), generator)
    state = storm.state_dict()
    copy = STORM(objective, 2)
    copy.load_state_dict(state)
    state["direction"].fill_(3.0)
    x, twin = torch.tensor([0.1, 0.2], dtype=F64), _twin(generator)
    assert torch.equal(storm.estimate(x, generator).grad, copy.estimate(x, twin).grad)
    # a memory without its previous point is a first call: one batch at one point
    lone = STORM(objective, 2)
    lone.load_state_dict({"previous": None, "direction": torch.ones(2, dtype=F64)})
    assert lone.estimate(x, generator).cost.examples == 2
    with pytest.raises(ValueError, match="STORM state must have keys"):
        storm.load_state_dict({"previous": None})
    assert STORM(objective, 2, momentum=1.0).momentum == 1.0  # (0, 1]: a = 1 is plain mini-batch SGD
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="momentum must lie in"):
            STORM(objective, 2, momentum=bad)


def test_finite_sum_checks_and_generators() -> None:
    glm = GLM(X4, Y4, loss="squared")
    for make in (lambda o, b: SVRG(o, b), lambda o, b: SAGA(o, b), lambda o, b: STORM(o, b)):
        with pytest.raises(BatchingNotAllowedError, match="needs a FiniteSum"):
            make(Energy(lambda x: (x**2).sum()), 1)
        with pytest.raises(TypeError, match="needs an objective of kind finite sum"):
            make(object(), 1)
        with pytest.raises(ValueError, match=r"batch_size must be <= the number of examples \(4\), got 5"):
            make(glm, 5)
        with pytest.raises(ValueError, match="batch_size"):
            make(glm, 0)
        estimator = make(glm, 4)  # b = N: every example once
        with pytest.raises(TypeError, match="generator"):
            estimator.estimate(torch.zeros(2, dtype=F64), None)
        with pytest.raises(NonFiniteGradientError, match="params has 1 non-finite entry"):
            estimator.estimate(torch.tensor([0.0, math.nan], dtype=F64), torch.Generator())
        # the same seed draws the same batches: the same estimates; another seed other batches
        x = torch.tensor([0.3, -0.2], dtype=F64)
        runs = []
        for seed in (4, 4, 5):
            e, g = make(glm, 2), torch.Generator().manual_seed(seed)
            runs.append(torch.stack([e.estimate(x * k, g).grad for k in range(1, 5)]))
        assert torch.equal(runs[0], runs[1])
        assert not torch.equal(runs[0], runs[2])


def test_memory_empty_tells_the_fused_loop_when_to_step_alone() -> None:
    # the compiled loop (noisygrad.loop_fused) takes a step by itself while the memory is empty: SVRG before its
    # first snapshot or while an anchor's cost is pending, SAGA before its table is filled or after an empty load
    glm, generator = GLM(X4, Y4, loss="squared", l2=0.3), torch.Generator().manual_seed(0)
    x = torch.tensor([0.1, 0.2], dtype=F64)
    svrg = SVRG(glm, 2, refresh=3)
    assert svrg._memory_empty()
    svrg.estimate(x, generator)
    assert not svrg._memory_empty()
    fixed = SVRG(glm, 2, refresh=None, anchor=x)
    assert fixed._memory_empty()  # anchored, but its N examples are still to be paid with the first call
    fixed.estimate(x, generator)
    assert not fixed._memory_empty()
    saga = SAGA(glm, 2)
    assert saga._memory_empty()
    saga.estimate(x, generator)
    assert not saga._memory_empty()
    saga.load_state_dict({"table": None, "table_mean": None})
    assert saga._memory_empty()


def _stretch(steps: int, generator: torch.Generator) -> glm_epochs.Stretch:
    words, counters = torch_mt.read_state(generator)
    return glm_epochs.Stretch(
        w=np.array([0.1, 0.2]),
        rates=np.full(steps, 0.1),
        weight_decay=0.0,
        words=words,
        counters=counters,
        scratch=np.arange(4, dtype=np.int64),
        record=np.zeros(steps, dtype=np.bool_),
        values=np.empty(steps),
        grad_norms=np.empty(steps),
    )


def test_compiled_steps_report_steps_examples_and_draws() -> None:
    # SVRG with refresh 3, one call made: snapshots at the stretch's steps 2 and 5 (N = 4 examples, no draw)
    glm, generator = GLM(X4, Y4, loss="squared", l2=0.3), torch.Generator().manual_seed(0)
    svrg = SVRG(glm, 2, refresh=3)
    svrg.estimate(torch.zeros(2, dtype=F64), generator)
    done, examples, batches = svrg._compiled_steps(_stretch(7, generator))
    assert (done, examples.tolist(), batches) == (7, [2, 2, 4, 2, 2, 4, 2], 5)
    assert examples.dtype == np.int64
    assert svrg.calls == 8
    fixed = SVRG(glm, 2, refresh=None, anchor=torch.zeros(2, dtype=F64))
    fixed.estimate(torch.zeros(2, dtype=F64), generator)
    done, examples, batches = fixed._compiled_steps(_stretch(4, generator))
    assert (done, examples.tolist(), batches) == (4, [2, 2, 2, 2], 4)  # a fixed anchor: never a snapshot
    saga = SAGA(glm, 2)
    saga.estimate(torch.zeros(2, dtype=F64), generator)
    done, examples, batches = saga._compiled_steps(_stretch(3, generator))
    assert (done, examples.tolist(), batches) == (3, [2, 2, 2], 3)


def test_sgd_candidate_refuses_non_finite_entries_and_sums_past_the_float_range() -> None:
    """The step's finiteness check sums the gradient and the candidate: a NaN or Inf entry fails it, and so do
    finite entries whose sum overflows (two entries of 1e308), in the gradient or in the candidate."""
    big = np.array([1e308, 1e308])
    for w, grad, expected in [
        (np.array([1.0, 2.0]), np.array([0.5, -0.5]), True),
        (np.array([1.0, 2.0]), np.array([np.nan, 0.0]), False),
        (np.array([1.0, 2.0]), np.array([0.0, -np.inf]), False),
        (np.zeros(2), big, False),  # lr = 0: the candidate is 0, the gradient's sum overflows
        (big, np.zeros(2), False),  # the candidate's sum overflows
        (np.array([1e308, -1e308]), np.array([1e308, -1e308]), True),  # large, but the sums stay finite
    ]:
        candidate = np.empty(2)
        with np.errstate(over="ignore", invalid="ignore"):  # 0 * inf is NaN (uncompiled numpy scalars warn)
            assert glm_epochs._sgd_candidate(w, grad, 0.0, 0.0, candidate) is expected
            np.testing.assert_array_equal(candidate, w - 0.0 * grad)  # w - lr (grad + 0 w)
