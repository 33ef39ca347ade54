"""The GLM objective: closed-form gradients held to autograd on the same data, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisygrad import FiniteSum, MiniBatch
from noisygrad.glm import GLM

N, D, LAM = 300, 6, 0.05


def _data(loss: str, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    X = torch.randn(N, D, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 3.0, D, dtype=torch.float64)
    w_true = torch.randn(D, generator=gen, dtype=torch.float64)
    if loss == "logistic":
        y = torch.where(torch.rand(N, generator=gen, dtype=torch.float64) < torch.sigmoid(X @ w_true), 1.0, -1.0)
    else:
        y = X @ w_true + torch.randn(N, generator=gen, dtype=torch.float64)
    return X.to(dtype), y.to(dtype)


def _autograd_twin(loss: str, X: torch.Tensor, y: torch.Tensor) -> FiniteSum:
    """The same objective written as a plain FiniteSum (gradients by autograd, per-example ones by vmap)."""

    def mean_loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = X @ w
        data = F.softplus(-y * z) if loss == "logistic" else 0.5 * (z - y) ** 2
        return data.mean() + 0.5 * LAM * (w @ w)

    return FiniteSum(mean_loss, (X, y))


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_gradients_match_autograd(loss: str) -> None:
    X, y = _data(loss)
    glm, twin = GLM(X, y, loss=loss, l2=LAM), _autograd_twin(loss, X, y)  # type: ignore[arg-type]
    w = torch.randn(D, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.7
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(3))[:40]
    for indices in (None, idx):
        value, grad = glm.value_and_grad(w, indices)
        value_ref, grad_ref = twin.value_and_grad(w, indices)
        assert value == pytest.approx(value_ref, rel=1e-13)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-14)
    values, grads = glm.per_example_values_and_grads(w, idx)
    values_ref, grads_ref = twin.per_example_values_and_grads(w, idx)
    torch.testing.assert_close(values, values_ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(grads, grads_ref, rtol=1e-12, atol=1e-14)
    # the per-example losses (used by the noise probes) and their autograd gradient
    assert glm.example_losses is not None
    torch.testing.assert_close(glm.example_losses(w, X[idx], y[idx]), values_ref, rtol=1e-13, atol=0)
    # the numpy kernels of SVRG and SAGA: the same value, derivatives and data gradient
    full_value, derivatives, data_grad = glm.kernels.full(w.numpy())
    assert full_value == pytest.approx(twin.value(w), rel=1e-13)
    np.testing.assert_allclose(data_grad + LAM * w.numpy(), twin.value_and_grad(w)[1].numpy(), rtol=1e-12, atol=1e-14)
    batch_value, Xb, batch_derivatives = glm.kernels.batch(w.numpy(), idx.numpy())
    assert batch_value == pytest.approx(twin.value_and_grad(w, idx)[0], rel=1e-13)
    np.testing.assert_array_equal(Xb, X[idx].numpy())
    np.testing.assert_allclose(batch_derivatives, derivatives[idx.numpy()], rtol=1e-13, atol=1e-15)


def test_logistic_loss_is_exact_for_large_margins() -> None:
    # At the margin m = -20.5, log(1 + exp(-m)) = 20.5 + 1.25e-9, where torch's softplus (threshold 20) returns
    # 20.5. The GLM's logistic loss (a log-sigmoid) keeps the 1.25e-9.
    X = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    value = GLM(X, y, loss="logistic").value(torch.tensor([20.5], dtype=torch.float64))
    exact = (np.logaddexp(0.0, 20.5) + np.logaddexp(0.0, -20.5)) / 2
    assert value == pytest.approx(exact, rel=1e-15)


def test_float32_data_stay_float32() -> None:
    X, y = _data("logistic", torch.float32)
    glm = GLM(X, y, l2=LAM)
    _, grad = glm.value_and_grad(torch.zeros(D))
    assert grad.dtype == torch.float32
    assert glm.kernels.full(np.zeros(D, dtype=np.float32))[2].dtype == np.float32


def test_noise_statistics_on_a_glm_match_the_autograd_objective() -> None:
    # The GLM's closed-form per-example gradients feed MiniBatch's noise statistics: the same numbers as vmap.
    X, y = _data("logistic")
    w = torch.full((D,), 0.2, dtype=torch.float64)
    ours = MiniBatch(GLM(X, y, l2=LAM), 32, noise_stats=True).estimate(w, torch.Generator().manual_seed(5))
    ref = MiniBatch(_autograd_twin("logistic", X, y), 32, noise_stats=True).estimate(
        w, torch.Generator().manual_seed(5)
    )
    assert ours.stats["trace_cov"] == pytest.approx(ref.stats["trace_cov"], rel=1e-11)
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-12, atol=1e-14)


def test_inputs_are_not_modified_and_numpy_inputs_work() -> None:
    X, y = _data("squared")
    X_np, y_np = X.numpy().copy(), y.numpy().copy()
    glm = GLM(X_np, y_np, loss="squared", l2=LAM)
    w = torch.ones(D, dtype=torch.float64)
    before = w.clone()
    glm.value_and_grad(w)
    assert torch.equal(w, before)
    np.testing.assert_array_equal(X_np, X.numpy())
    np.testing.assert_array_equal(y_np, y.numpy())
    assert repr(glm) == f"GLM(N={N}, d={D}, loss='squared', l2={LAM!r})"
    X_np.flags.writeable = False  # read-only arrays are copied (torch wraps only writable ones)
    assert GLM(X_np, y_np, loss="squared").value(w) == pytest.approx(GLM(X, y, loss="squared").value(w), rel=1e-15)


def test_bad_input() -> None:
    X, y = _data("logistic")
    with pytest.raises(ValueError, match="loss must be one of 'logistic', 'squared'"):
        GLM(X, y, loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"X must have shape \(N, d\)"):
        GLM(X[:, 0], y)
    with pytest.raises(ValueError, match="one target per row"):
        GLM(X, y[:-1])
    with pytest.raises(TypeError, match="floating-point"):
        GLM(X.to(torch.int64), y)
    with pytest.raises(TypeError, match="share dtype"):
        GLM(X, y.to(torch.float32))
    with pytest.raises(TypeError, match=r"X must be a torch\.Tensor or a numpy array"):
        GLM(X.tolist(), y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels -1 or \+1"):
        GLM(X, (y + 1) / 2)
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        GLM(X, y, l2=-1.0)
    bad = X.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(FloatingPointError, match="X has 1 non-finite entry"):
        GLM(bad, y)
    glm = GLM(X, y)
    with pytest.raises(ValueError, match=r"params must have shape \(6,\)"):
        glm.value_and_grad(torch.zeros(D + 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="params must be a tensor of the data's dtype and device"):
        glm.kernels.params(torch.zeros(D, dtype=torch.float32))
