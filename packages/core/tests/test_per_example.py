"""Within-batch noise by exact per-example norms and by the random-sign probe, held against the vmap truth.

The exact paths agree with ``torch.func.vmap`` to rounding. The probe is checked for unbiasedness and for the
variance the module docstring states, each within 4 standard errors of the draws themselves (stated beside
each check).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import noisygrad as ng
from noisygrad.noise.per_example import PerExampleNoise, batch_noise

F64 = torch.float64


def _half_squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out.reshape(out.shape[0], -1).mean(1) - y) ** 2


def module_objective(
    module: nn.Module, x_shape: tuple[int, ...], n: int = 96, seed: int = 0, dtype: torch.dtype = F64
) -> tuple[ng.FiniteSum, torch.Tensor]:
    """``module`` as a FiniteSum over ``n`` random examples, and random parameters (all from one generator)."""
    gen = torch.Generator().manual_seed(seed)
    module = module.to(dtype)
    X = torch.randn(n, *x_shape, generator=gen, dtype=dtype)
    y = torch.randn(n, generator=gen, dtype=dtype)
    n_params = sum(p.numel() for p in module.parameters())
    params = 0.5 * torch.randn(n_params, generator=gen, dtype=dtype)
    return ng.FiniteSum.from_module(module, _half_squared_error, (X, y)), params


def mlp() -> nn.Module:
    """Linear layers with and without bias, a smooth and a kinked activation between them."""
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 7, bias=False), nn.ReLU(), nn.Linear(7, 2))


class SequenceModel(nn.Module):
    """Linear layers applied at every position of a (B, T, 4) input; the output is averaged over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 6)
        self.outer = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.tanh(self.inner(x))).mean(1)


def vmap_truth(objective: ng.FiniteSum, params: torch.Tensor, idx: torch.Tensor) -> tuple[float, float]:
    """``tr(S_b)`` from all per-example gradients, and the probe's one-draw variance ``2 sum_{i!=j} M_ij^2/(B-1)^2``."""
    grads = objective.per_example_grads(params, idx).reshape(len(idx), -1)
    centred = grads - grads.mean(0)
    gram = centred @ centred.T
    b = len(idx)
    variance = 2 * float(gram.square().sum() - gram.diagonal().square().sum()) / (b - 1) ** 2
    return float(gram.trace()) / (b - 1), variance


@pytest.mark.parametrize(
    ("make", "x_shape"),
    [(mlp, (5,)), (SequenceModel, (3, 4)), (SequenceModel, (10, 4))],  # T = 3: Gram branch; T = 10: outer products
    ids=["mlp", "sequence-gram", "sequence-outer"],
)
def test_norms_equal_the_vmap_statistics(make, x_shape):
    objective, params = module_objective(make(), x_shape)
    idx = torch.randperm(objective.n_examples, generator=torch.Generator().manual_seed(1))[:40]
    exact = batch_noise(objective, params, idx, method="vmap")
    norms = batch_noise(objective, params, idx, method="norms")
    assert norms.trace_cov == pytest.approx(exact.trace_cov, rel=1e-10)
    torch.testing.assert_close(norms.grad, exact.grad, rtol=1e-12, atol=1e-14)
    assert norms.value == pytest.approx(exact.value, rel=1e-13)
    assert exact.trace_cov == pytest.approx(vmap_truth(objective, params, idx)[0], rel=1e-12)


def test_norms_in_float32_are_exact_to_its_rounding():
    objective, params = module_objective(mlp(), (5,), dtype=torch.float32)
    idx = torch.arange(64)
    exact = batch_noise(objective, params, idx, method="vmap")
    norms = batch_noise(objective, params, idx, method="norms")
    # sum_i |g_i|^2 - B |g_b|^2 loses about eps / rho relatively (eps ~ 1.2e-7); rho is of order 1 here
    rho = exact.trace_cov / float(exact.grad.square().sum())
    assert rho > 0.1
    assert norms.trace_cov == pytest.approx(exact.trace_cov, rel=1e-5)


@pytest.mark.parametrize("probes", [1, 4])
def test_probe_is_unbiased_with_the_stated_variance(probes):
    objective, params = module_objective(mlp(), (5,))
    idx = torch.arange(32)
    truth, one_draw_variance = vmap_truth(objective, params, idx)
    meter = PerExampleNoise(objective, "probe", probes=probes)
    gen = torch.Generator().manual_seed(2)
    draws = 1000 // probes
    traces = torch.tensor([meter(params, idx, gen).trace_cov for _ in range(draws)], dtype=F64)
    stated = one_draw_variance / probes
    # unbiased: the mean is within 4 standard errors (from the stated variance) of the exact trace
    assert abs(float(traces.mean()) - truth) < 4 * math.sqrt(stated / draws)
    # the variance is the stated one: the sample variance's s.e. comes from the draws' fourth moment
    centred = traces - traces.mean()
    sample_var = float(centred.square().mean())
    var_se = math.sqrt(float(centred.pow(4).mean() - sample_var**2) / draws)
    assert abs(sample_var - stated) < 4 * var_se
    # and the stated bound: relative s.d. <= sqrt(2 / (k d_b)), d_b the batch's effective noise dimension
    grads = objective.per_example_grads(params, idx).reshape(len(idx), -1)
    cov = torch.cov(grads.T)
    d_b = float(cov.trace()) ** 2 / float((cov @ cov).trace())
    assert math.sqrt(stated) / truth <= math.sqrt(2 / (probes * d_b))


def test_probe_reads_the_same_per_example_losses_from_every_kind_of_objective():
    module_obj, params = module_objective(mlp(), (5,))
    loss_fn = module_obj.loss
    X, y = module_obj.data
    flat = ng.FiniteSum(lambda w, X, y: loss_fn(w, X, y), (X, y))  # a mean loss: per-example losses by vmap
    known = ng.FiniteSum.from_example_losses(lambda w, X, y: loss_fn.example_losses(w, X, y), (X, y))
    idx = torch.arange(50)
    results = [
        batch_noise(obj, params, idx, method="probe", generator=torch.Generator().manual_seed(5), probes=3)
        for obj in (module_obj, flat, known)
    ]
    exact = batch_noise(flat, params, idx, method="vmap")
    for r in results:  # same signs from the same seed: the same numbers, and the exact mean gradient
        assert r.trace_cov == pytest.approx(results[0].trace_cov, rel=1e-12)
        torch.testing.assert_close(r.grad, exact.grad, rtol=1e-12, atol=1e-14)
        assert r.value == pytest.approx(exact.value, rel=1e-13)


def test_minibatch_methods_agree_and_are_reproducible():
    objective, params = module_objective(mlp(), (5,))
    default = ng.MiniBatch(objective, 16, noise_stats=True)
    assert default.noise_method == "vmap"
    estimates = {
        m: ng.MiniBatch(objective, 16, noise_stats=m).estimate(params, torch.Generator().manual_seed(3))
        for m in ("vmap", "norms", "probe")
    }
    vmap, norms, probe = estimates["vmap"], estimates["norms"], estimates["probe"]
    assert default.estimate(params, torch.Generator().manual_seed(3)).stats == vmap.stats
    for key in ("trace_cov", "grad_variance"):
        assert norms.stats[key] == pytest.approx(vmap.stats[key], rel=1e-10)
    torch.testing.assert_close(probe.grad, vmap.grad, rtol=1e-12, atol=1e-14)  # the same batch
    again = ng.MiniBatch(objective, 16, noise_stats="probe").estimate(params, torch.Generator().manual_seed(3))
    assert again.stats == probe.stats
    assert probe.cost == vmap.cost == ng.Cost(examples=16)


@pytest.mark.parametrize("method", ["norms", "probe"])
def test_cheap_methods_report_an_honest_grad_variance(method):
    objective, params = module_objective(mlp(), (5,), n=120)
    true_grad = ng.FullBatch(objective).estimate(params, torch.Generator()).grad
    estimator = ng.MiniBatch(objective, 10, noise_stats=method)
    gen = torch.Generator().manual_seed(4)
    draws = 800
    estimates = [estimator.estimate(params, gen) for _ in range(draws)]
    sq_err = torch.stack([(e.grad - true_grad).square().sum() for e in estimates])
    reported = torch.tensor([e.stats["grad_variance"] for e in estimates], dtype=F64)
    # unbiased for E|g_b - g|^2 over batches (and probes): means within 4 combined standard errors
    combined_se = math.sqrt(float(reported.var() + sq_err.var()) / draws)
    assert abs(float(reported.mean() - sq_err.mean())) < 4 * combined_se


def test_nothing_passed_in_is_changed_and_no_hook_is_left():
    module = mlp()
    objective, params = module_objective(module, (5,))
    before_module = [p.detach().clone() for p in module.parameters()]
    before_params = params.clone()
    for method in ("norms", "probe", "vmap"):
        batch_noise(objective, params, torch.arange(8), method=method, generator=torch.Generator())
    assert torch.equal(params, before_params)
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), before_module, strict=True))
    assert all(not m._forward_hooks for m in module.modules())


class SharedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.fc(x)))


class WeightsOutsideForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.fc.weight, self.fc.bias)


def test_norms_refuse_what_they_cannot_see():
    flat = ng.FiniteSum(lambda w, X: (X @ w).square().mean(), torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"FiniteSum\.from_module"):
        ng.MiniBatch(flat, 4, noise_stats="norms")
    layer_norm, _ = module_objective(nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 1)), (5,))
    with pytest.raises(ValueError, match=r"parameter '1.weight' belongs to a LayerNorm"):
        ng.MiniBatch(layer_norm, 4, noise_stats="norms")
    first = nn.Linear(5, 5)
    tied = nn.Sequential(first, nn.Tanh(), nn.Linear(5, 5))
    tied[2].weight = first.weight
    tied_obj, _ = module_objective(tied, (5,))
    with pytest.raises(ValueError, match="shared by the linear layers"):
        ng.MiniBatch(tied_obj, 4, noise_stats="norms")
    for module, match in [
        (SharedLayer(), "ran more than once"),
        (nn.Sequential(nn.Linear(5, 4), nn.ReLU(inplace=True), nn.Linear(4, 1)), "modified in place"),
        (WeightsOutsideForward(), "never ran"),
    ]:
        objective, params = module_objective(module, (5,))
        estimator = ng.MiniBatch(objective, 4, noise_stats="norms")
        with pytest.raises(ValueError, match=match):
            estimator.estimate(params, torch.Generator())
        # the probe has no such assumptions and stays unbiased there
        ng.MiniBatch(objective, 4, noise_stats="probe").estimate(params, torch.Generator())


def test_bad_input_is_refused_with_clear_errors():
    objective, params = module_objective(mlp(), (5,))
    with pytest.raises(ValueError, match=r"noise_stats must be False, True \(= 'vmap'\) or one of"):
        ng.MiniBatch(objective, 4, noise_stats="exact")
    with pytest.raises(ValueError, match="noise_stats must be"):
        ng.MiniBatch(objective, 4, noise_stats=1)
    with pytest.raises(ValueError, match="probes applies to noise_stats='probe' only"):
        ng.MiniBatch(objective, 4, noise_stats="norms", probes=4)
    with pytest.raises(ValueError, match="probes must be an integer > 0"):
        ng.MiniBatch(objective, 4, noise_stats="probe", probes=0)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        ng.MiniBatch(objective, 1, noise_stats="probe")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        batch_noise(objective, params, torch.arange(4), method="probe")
    with pytest.raises(ValueError, match="at least 2 examples"):
        batch_noise(objective, params, torch.arange(1))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        batch_noise(objective, params, torch.ones(4))
    with pytest.raises(ValueError, match="method must be one of"):
        batch_noise(objective, params, torch.arange(4), method="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"flat vector of the module's {params.numel()} parameters"):
        objective.value(params[:-1])
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        ng.FiniteSum.from_module(lambda x: x, _half_squared_error, objective.data)
    with pytest.raises(ValueError, match="no parameters"):
        ng.FiniteSum.from_module(nn.Tanh(), _half_squared_error, objective.data)
    scalar = ng.FiniteSum.from_module(mlp().double(), lambda out, y: (out - y[:, None]).square().mean(), objective.data)
    with pytest.raises(ValueError, match=r"example_loss must return one loss per example, shape \(4,\); got \(\)"):
        batch_noise(scalar, params, torch.arange(4), method="norms")
    X, y = objective.data
    summed = ng.FiniteSum.from_example_losses(lambda w, X, y: X.sum() * w.sum() - y.sum(), (X, y))
    with pytest.raises(ValueError, match="example_losses must return one loss per example"):
        batch_noise(summed, torch.zeros(3, dtype=F64), torch.arange(4), method="probe", generator=torch.Generator())
