"""Energy natural gradient (Gauss-Newton with Levenberg-Marquardt damping) on least-squares problems with known
answers. Deterministic (float64, fixed-seed construction); iteration bounds sit about 1.5x above the counts
measured here (given per test)."""

from __future__ import annotations

import io

import pytest
import torch

from noisygrad.checks import NonFiniteGradientError
from noisygrad.optim.natural_gradient import EnergyNaturalGradient, gauss_newton_direction
from noisygrad.optim.quasi_newton import PrecisionWarning


def _rosenbrock_residuals(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def _run(opt: EnergyNaturalGradient, closure, x: torch.Tensor, target: torch.Tensor, tol: float, cap: int) -> int:
    for it in range(1, cap + 1):
        opt.step(closure)
        if float((x.detach() - target).abs().max()) <= tol:
            return it
    return cap + 1


def test_rosenbrock_as_least_squares_to_1e12() -> None:
    # measured: 18 iterations (2 rejected trial steps) from (-1.2, 1)
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = EnergyNaturalGradient([x])
    its = _run(opt, lambda: _rosenbrock_residuals(x), x, torch.ones(2, dtype=torch.float64), 1e-12, 100)
    assert its <= 27


def test_ill_conditioned_linear_least_squares_in_a_few_steps() -> None:
    # A with column scales 1 .. 1e-4 (kappa(A^T A) ~ 1e8): Gauss-Newton is exact on a linear model, so only the
    # damping slows it; measured 18 iterations to 1e-10 relative error, none rejected
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(200, 50, generator=gen, dtype=torch.float64) * torch.logspace(0, -4, 50, dtype=torch.float64)
    x_star = torch.randn(50, generator=gen, dtype=torch.float64)
    b = a @ x_star
    w = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    opt = EnergyNaturalGradient([w])
    its = 101
    for it in range(1, 101):
        opt.step(lambda: a @ w - b)
        if float((w.detach() - x_star).norm() / x_star.norm()) <= 1e-10:
            its = it
            break
    assert its <= 27
    assert opt.report()["rejected"] == 0


def test_both_sides_of_the_solve_give_the_damped_gauss_newton_step() -> None:
    # -(J^T J + mu I)^-1 J^T r solved on the parameter side (m > n) and on the residual side (m < n)
    gen = torch.Generator().manual_seed(1)
    for m, n in ((30, 8), (8, 30)):
        j = torch.randn(m, n, generator=gen, dtype=torch.float64)
        r = torch.randn(m, generator=gen, dtype=torch.float64)
        mu = 0.3
        reference = -torch.linalg.solve(j.T @ j + mu * torch.eye(n, dtype=torch.float64), j.T @ r)
        d = gauss_newton_direction(j, r, mu)
        assert d is not None
        torch.testing.assert_close(d, reference, rtol=1e-10, atol=1e-12)


def test_the_default_jacobian_is_the_residuals_jacobian() -> None:
    x = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[2.0]], dtype=torch.float64, requires_grad=True)  # a second tensor, flattened after x
    opt = EnergyNaturalGradient([x, y], jacobian_chunk=2)  # two chunks for four residuals

    def residuals() -> torch.Tensor:
        return torch.stack([x[0] * x[1], torch.sin(x[2]), x.sum() * y[0, 0], y[0, 0] ** 2])

    r, jac = opt.residuals_and_jacobian(residuals)
    flat = torch.cat([x.detach(), y.detach().reshape(-1)])

    def of_flat(z: torch.Tensor) -> torch.Tensor:
        return torch.stack([z[0] * z[1], torch.sin(z[2]), z[:3].sum() * z[3], z[3] ** 2])

    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(of_flat, flat), rtol=0, atol=1e-15)
    torch.testing.assert_close(r, of_flat(flat))


def test_state_dict_round_trip_continues_bit_for_bit() -> None:
    def run(split: bool) -> torch.Tensor:
        x = torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=torch.float64, requires_grad=True)
        opt = EnergyNaturalGradient([x], max_iter=3)
        opt.step(lambda: _rosenbrock_residuals(x))
        if split:
            buffer = io.BytesIO()
            torch.save({"x": x.detach().clone(), "opt": opt.state_dict()}, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
            x = saved["x"].clone().requires_grad_(True)
            opt = EnergyNaturalGradient([x], max_iter=3)
            opt.load_state_dict(saved["opt"])
        for _ in range(3):
            opt.step(lambda: _rosenbrock_residuals(x))
        return x.detach()

    assert torch.equal(run(False), run(True))


def test_nan_residuals_at_the_start_are_refused_and_nan_trials_rejected() -> None:
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = EnergyNaturalGradient([x])
    with pytest.raises(NonFiniteGradientError, match="residuals"):
        opt.step(lambda: x * float("nan"))
    assert x.detach().tolist() == [1.0, 2.0]

    # r = atan(z) from z = 1.5: the Gauss-Newton step overshoots to -1.69, where the residual is NaN (|z| >= 1.6);
    # the trial is rejected, the damping grows, and the run converges to the root 0
    z = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    guarded = EnergyNaturalGradient([z], max_iter=40)

    def residuals() -> torch.Tensor:
        r = torch.atan(z)
        return r if float(z.detach().abs().max()) < 1.6 else r * float("nan")

    guarded.step(residuals)
    assert abs(float(z.detach())) < 1e-12
    assert guarded.report()["rejected"] >= 1


def test_guard_rails() -> None:
    with pytest.warns(PrecisionWarning, match="float32"):
        EnergyNaturalGradient([torch.zeros(2, dtype=torch.float32, requires_grad=True)])
    with pytest.raises(TypeError, match="bfloat16"):
        EnergyNaturalGradient([torch.zeros(2, dtype=torch.bfloat16, requires_grad=True)])
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="damping"):
        EnergyNaturalGradient([x], damping=0.0)
    opt = EnergyNaturalGradient([x])
    with pytest.raises(ValueError, match="residual vector"):
        opt.step(lambda: (x**2).sum())
    with pytest.raises(TypeError, match="tensor"):
        opt.step(lambda: [1.0, 2.0])
    with pytest.raises(ValueError, match="needs a closure"):
        opt.step()
