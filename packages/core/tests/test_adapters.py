"""TorchOptimizer and Minimizer against torch.optim on the same problem: identical iterates."""

import numpy as np
import pytest
import torch

import noisygrad as ng


def _model_and_data(seed=0):
    torch.manual_seed(seed)  # tests may seed torch's global RNG; the library never does
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    X = torch.randn(64, 4, dtype=torch.float64)
    y = torch.sin(X.sum(1, keepdim=True))
    return model, X, y


def _train(model, opt, X, y, steps, scheduler=None, use_closure=False):
    losses = []
    for t in range(steps):
        batch = slice((8 * t) % 64, (8 * t) % 64 + 8)

        def closure(batch=batch):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X[batch]), y[batch])
            loss.backward()
            return loss

        if use_closure:
            losses.append(opt.step(closure).item())
        else:
            losses.append(closure().item())
            opt.step()
        if scheduler is not None:
            scheduler.step()
    return losses


PAIRS = [
    (lambda p: ng.TorchOptimizer(p, ng.SGD(0.1, momentum=0.9)), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (lambda p: ng.TorchOptimizer(p, ng.Adam(1e-2)), lambda p: torch.optim.Adam(p, lr=1e-2)),
]


@pytest.mark.parametrize("use_closure", [False, True])
@pytest.mark.parametrize(("make_ours", "make_torch"), PAIRS)
def test_torch_optimizer_matches_torch_optim(make_ours, make_torch, use_closure):
    model_a, X, y = _model_and_data()
    model_b, _, _ = _model_and_data()
    opt_a, opt_b = make_ours(model_a.parameters()), make_torch(model_b.parameters())
    sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=7, gamma=0.5)
    sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=7, gamma=0.5)
    losses_a = _train(model_a, opt_a, X, y, 30, sched_a, use_closure)
    losses_b = _train(model_b, opt_b, X, y, 30, sched_b, use_closure)
    assert losses_a == losses_b
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_torch_optimizer_follows_its_own_schedule():
    model, X, y = _model_and_data()
    opt = ng.TorchOptimizer(model.parameters(), ng.SGD(ng.RobbinsMonro(a=0.5, b=1.0, alpha=1.0)))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    _train(model, opt, X, y, 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / 4)


def test_torch_optimizer_state_dict_round_trip_is_bit_identical(tmp_path):
    model_full, X, y = _model_and_data()
    opt_full = ng.TorchOptimizer(model_full.parameters(), ng.Adam(1e-2))
    _train(model_full, opt_full, X, y, 20)

    model_a, _, _ = _model_and_data()
    opt_a = ng.TorchOptimizer(model_a.parameters(), ng.Adam(1e-2))
    _train(model_a, opt_a, X, y, 10)
    torch.save({"model": model_a.state_dict(), "opt": opt_a.state_dict()}, tmp_path / "ckpt.pt")

    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model_b, _, _ = _model_and_data(seed=123)  # different init: everything must come from the checkpoint
    model_b.load_state_dict(saved["model"])
    opt_b = ng.TorchOptimizer(model_b.parameters(), ng.Adam(1e-2))
    opt_b.load_state_dict(saved["opt"])
    # continue on the same batches the uninterrupted run saw at steps 10..19
    for t in range(10, 20):
        batch = slice((8 * t) % 64, (8 * t) % 64 + 8)
        opt_b.zero_grad()
        torch.nn.functional.mse_loss(model_b(X[batch]), y[batch]).backward()
        opt_b.step()
    for pa, pb in zip(model_full.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_torch_optimizer_refuses_nan_gradient_and_leaves_params():
    model, X, _ = _model_and_data()
    opt = ng.TorchOptimizer(model.parameters(), ng.SGD(0.1))
    model(X).sum().backward()
    first = next(model.parameters())
    first.grad[0, 0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ng.NonFiniteGradientError, match="gradient"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def rosenbrock(x):
    return float((1 - x[0]) ** 2 + 10 * (x[1] - x[0] ** 2) ** 2)


def rosenbrock_grad(x):
    return np.array([-2 * (1 - x[0]) - 40 * x[0] * (x[1] - x[0] ** 2), 20 * (x[1] - x[0] ** 2)])


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: ng.SGD(1e-3, momentum=0.9), lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9)),
        (lambda: ng.Adam(5e-2), lambda p: torch.optim.Adam(p, lr=5e-2)),
    ],
)
def test_minimizer_matches_torch_optim_with_jac(ours, theirs):
    x0 = np.array([-1.0, 1.5])
    result = ng.Minimizer(ours(), maxiter=200)(rosenbrock, x0, jac=rosenbrock_grad)

    param = torch.nn.Parameter(torch.tensor(x0))
    opt = theirs([param])
    for _ in range(200):
        param.grad = torch.as_tensor(rosenbrock_grad(param.detach().numpy()))
        opt.step()
    np.testing.assert_array_equal(result.x, param.detach().numpy())
    assert result.nit == 200
    assert result.njev == 201  # one per step and one for the result's jac, the gradient at x (as scipy's)
    assert result.nfev == 1  # only the final report
    assert result.fun == rosenbrock(result.x)
    np.testing.assert_array_equal(result.jac, rosenbrock_grad(result.x))
    np.testing.assert_array_equal(x0, [-1.0, 1.5])  # the caller's x0 is untouched


def test_minimizer_without_jac_counts_its_evaluations():
    result = ng.Minimizer(ng.SGD(0.2), maxiter=50)(lambda x: float(((x - 1.0) ** 2).sum()), [0.0, 0.0, 0.0])
    assert result.nfev == 50 * 2 * 3 + 1 + 2 * 3  # central differences per step, the value at x, the jac at x
    assert result.njev == 50 + 1  # gradient estimates, counted as scipy counts its finite-difference ones
    np.testing.assert_allclose(result.x, 1.0, atol=1e-6)


def test_minimizer_projects_onto_bounds():
    result = ng.Minimizer(ng.SGD(0.2), maxiter=100)(
        lambda x: float(((x - 1.0) ** 2).sum()), [0.0, 0.0], bounds=[(None, 0.5), (-1.0, None)]
    )
    np.testing.assert_allclose(result.x, [0.5, 1.0], atol=1e-6)


def test_minimizer_returns_a_scipy_optimize_result():
    import scipy.optimize as scipy_optimize

    result = ng.Minimizer(ng.Adam(0.05), maxiter=300)(
        scipy_optimize.rosen, x0=np.zeros(2), jac=scipy_optimize.rosen_der
    )
    assert isinstance(result, scipy_optimize.OptimizeResult)
    assert result.fun < scipy_optimize.rosen(np.zeros(2))
