"""The core on CUDA tensors: the same run on the GPU as on the CPU, to float64 rounding.

Runs only where torch sees a CUDA GPU (skipped elsewhere, as in CI). Each case runs one seeded workflow with the
parameters and data on the CPU and again on ``cuda``: random choices come from CPU generators and are the same on
both, so the results must agree to rounding (1e-10 relative); every result must stay on the parameters' device.
"""

import pytest
import torch

import noisygrad as ng

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def _least_squares(device: str) -> tuple[ng.FiniteSum, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400, 6, dtype=torch.float64, generator=gen)
    y = X @ torch.linspace(-1, 1, 6, dtype=torch.float64) + 0.1 * torch.randn(400, dtype=torch.float64, generator=gen)
    objective = ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X.to(device), y.to(device)))
    return objective, torch.zeros(6, dtype=torch.float64, device=device)


def _mlp(device: str) -> tuple[ng.FiniteSum, torch.Tensor]:
    torch.manual_seed(0)  # a test is a run entry: the module's initial weights
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double().to(device)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(256, 4, dtype=torch.float64, generator=gen).to(device)
    y = torch.sin(X.sum(1))
    objective = ng.FiniteSum.from_module(net, lambda out, y: 0.5 * (out.squeeze(-1) - y) ** 2, (X, y))
    return objective, torch.nn.utils.parameters_to_vector(net.parameters()).detach()


def _run(case: str, device: str) -> torch.Tensor:
    if case in ("sgd", "sgld", "svrg", "spsa"):
        objective, x0 = _least_squares(device)
    else:
        objective, x0 = _mlp(device)
    if case == "sgd":
        result = ng.minimize(ng.MiniBatch(objective, 16, noise_stats=True), ng.SGD(0.05, momentum=0.9), x0, steps=200)
    elif case == "sgld":
        result = ng.minimize(ng.FullBatch(objective), ng.SGLD(0.01, temperature=0.01), x0, steps=200, seed=3)
    elif case == "svrg":
        result = ng.minimize(ng.SVRG(objective, batch_size=8), ng.SGD(0.05), x0, steps=200, seed=2)
    elif case == "spsa":
        X, y = objective.data

        def noisy_loss(points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            noise = 0.01 * torch.randn(len(points), generator=gen, dtype=points.dtype).to(points.device)
            return 0.5 * ((points @ X.T - y) ** 2).mean(1) + noise

        result = ng.minimize(ng.SPSA(ng.NoisyBlackBox(noisy_loss)), ng.SGD(0.05), x0, steps=100, seed=4)
    else:
        estimator = ng.MiniBatch(objective, 32, noise_stats=case)
        result = ng.minimize(estimator, ng.Adam(lr=1e-2), x0, steps=100, seed=5)
    assert result.x.device == x0.device
    return result.x.cpu()


@pytest.mark.parametrize("case", ["sgd", "sgld", "svrg", "spsa", "norms", "probe", "vmap"])
def test_a_run_on_cuda_matches_the_cpu_run(case):
    torch.testing.assert_close(_run(case, "cuda"), _run(case, "cpu"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch_size", [16, 1500])  # summed by embedding_bag, and through a selection matrix
def test_monte_carlo_cosine_on_cuda_matches_the_cpu(batch_size):
    grads = torch.randn(2000, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.3
    on = {
        device: ng.monte_carlo_cosine(
            grads.to(device), batch_size, draws=500, generator=torch.Generator().manual_seed(1)
        )
        for device in ("cpu", "cuda")
    }
    assert on["cuda"] == pytest.approx(on["cpu"], rel=1e-10)
