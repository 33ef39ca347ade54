"""Stationary covariance of constant-step SGD (discrete / continuous Lyapunov, multiplicative noise) and the
thermostat, held against long vectorised simulations.

Simulations run many independent chains side by side; each chain's time-average of ``x x^T`` is one i.i.d.
draw, so the standard error (s.e.) of the Monte-Carlo covariance is the spread of those averages over
``sqrt(chains)``. Tolerances are 4 s.e. (stated at each check), next to the acceptance bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad import SGD, FiniteSum, MiniBatch, minimize
from noisygrad.noise import TemperatureMeter, gradient_noise
from noisygrad.theory import (
    langevin_stationary_covariance,
    least_squares_stationary_covariance,
    noise_ball,
    sgd_stationary_covariance,
)
from noisygrad.thermostat import Thermostat

A = np.array([[1.0, 0.3], [0.3, 0.2]])  # eigenvalues 0.1 and 1.1
C = np.array([[1.0, -0.2], [-0.2, 0.5]])


def _stationary_moments(step, x0: torch.Tensor, *, burn_in: int, samples: int, every: int):  # type: ignore[no-untyped-def]
    """Run ``step(x)`` on all chains; return the MC covariance and its entrywise s.e. (from chain averages)."""
    x = x0
    for _ in range(burn_in):
        x = step(x)
    acc = torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=torch.float64)
    for _ in range(samples):
        for _ in range(every):
            x = step(x)
        acc += x.unsqueeze(2) * x.unsqueeze(1)
    per_chain = acc / samples
    mc = per_chain.mean(0).numpy()
    se = (per_chain.std(0) / math.sqrt(x.shape[0])).numpy()
    return mc, se


def _rel_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("lr", "batch"), [(0.3, 1), (0.3, 8), (0.05, 1)])
def test_discrete_lyapunov_matches_long_run_sgd(lr: float, batch: int) -> None:
    # Acceptance: discrete Lyapunov within 2% (Frobenius) of long-run SGD, including lr * lambda_max = 0.33.
    gen = torch.Generator().manual_seed(10)
    chains = 4000
    a, chol = torch.tensor(A), torch.linalg.cholesky(torch.tensor(C))
    tau = int(1 / (lr * 0.1))  # relaxation time of the slow direction, in steps

    def step(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float64) @ chol.T / math.sqrt(batch)
        return x - lr * (x @ a + noise)

    mc, se = _stationary_moments(
        step, torch.zeros(chains, 2, dtype=torch.float64), burn_in=8 * tau, samples=40, every=tau // 2
    )
    theory = sgd_stationary_covariance(A, C, lr, batch)
    assert np.all(np.abs(mc - theory) <= 4 * se), (mc, theory, se)  # 4 s.e. entrywise
    assert _rel_frobenius(mc, theory) < 0.02
    mandt = sgd_stationary_covariance(A, C, lr, batch, method="continuous")
    if lr == 0.3:
        # the continuous form is off by O(lr lambda): 2.7% Frobenius, -8.5% on the xx entry at 0.33
        assert _rel_frobenius(mandt, theory) > 0.02
        assert mandt[0, 0] / theory[0, 0] - 1 < -0.07
    else:
        assert _rel_frobenius(mandt, theory) < 0.01


def test_isotropic_noise_gives_a_boltzmann_law_with_kT() -> None:
    # C = sigma^2 I: Mandt's Sigma = kT A^-1 with kT = lr sigma^2 / (2B), to rounding.
    lr, sigma2, b = 0.02, 0.8, 4
    sigma = sgd_stationary_covariance(A, sigma2 * np.eye(2), lr, b, method="continuous")
    np.testing.assert_allclose(sigma, lr * sigma2 / (2 * b) * np.linalg.inv(A), rtol=1e-12)
    # C = A (Fisher = Hessian): the law is isotropic, lr / (2B) I, not a tempered A^-1
    np.testing.assert_allclose(
        sgd_stationary_covariance(A, A, lr, b, method="continuous"), lr / (2 * b) * np.eye(2), atol=1e-15
    )


def test_least_squares_multiplicative_noise_matches_real_minibatch_sgd() -> None:
    # Real mini-batch SGD (i.i.d. batches with replacement) on 2-D least squares: the exact formula with the
    # multiplicative term within 4 s.e. and 1%; the additive-only discrete form is off by tens of %.
    gen = torch.Generator().manual_seed(11)
    n, lr, batch, chains = 1000, 0.2, 1, 4000
    X = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.3, 0.35], dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    r = X @ w_star - y
    hess = (X.T @ X / n).numpy()
    tau = int(1 / (lr * float(np.linalg.eigvalsh(hess)[0])))

    def step(delta: torch.Tensor) -> torch.Tensor:  # delta = w - w*, one batch per chain
        idx = torch.randint(n, (delta.shape[0], batch), generator=gen)
        xb = X[idx]
        per_example = xb * ((xb @ delta.unsqueeze(2)).squeeze(2) + r[idx]).unsqueeze(2)
        return delta - lr * per_example.mean(1)

    mc, se = _stationary_moments(
        step, torch.zeros(chains, 2, dtype=torch.float64), burn_in=8 * tau, samples=30, every=tau // 2
    )
    exact = least_squares_stationary_covariance(X, r, lr, batch)
    assert np.all(np.abs(mc - exact) <= 4 * se), (mc, exact, se)
    assert _rel_frobenius(mc, exact) < 0.01 + 4 * float(np.linalg.norm(se) / np.linalg.norm(exact))
    additive = sgd_stationary_covariance(hess, np.cov((X * r[:, None]).T.numpy(), bias=True), lr, batch)
    assert _rel_frobenius(additive, exact) > 0.2


def test_langevin_and_noise_ball_closed_forms() -> None:
    h, t = 0.1, 0.5
    lam = np.linalg.eigvalsh(A)
    sigma = langevin_stationary_covariance(A, h, t)
    np.testing.assert_allclose(np.linalg.eigvalsh(sigma), np.sort(t / (lam * (1 - h * lam / 2))), rtol=1e-10)
    ball = noise_ball(A, C, 0.001, 4)
    assert ball.excess_loss == pytest.approx(0.001 * np.trace(C) / (4 * 4), rel=1e-3)  # small-step limit
    assert ball.radius == pytest.approx(math.sqrt(np.trace(ball.covariance)))


def _regression(seed: int) -> tuple[FiniteSum, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(2000, 10, generator=gen, dtype=torch.float64)
    y = X @ torch.randn(10, generator=gen, dtype=torch.float64) + torch.randn(2000, generator=gen, dtype=torch.float64)
    return FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y)), torch.zeros(10, dtype=torch.float64)


@pytest.mark.parametrize("control", ["lr", "batch"])
def test_thermostat_holds_the_temperature(control: str) -> None:
    objective, x0 = _regression(12)
    target = 2e-4
    estimator = MiniBatch(objective, 32, noise_stats=True)
    thermostat = Thermostat(estimator, target, lr=0.05, control=control, smoothing=0.8)
    meter = TemperatureMeter()
    minimize(estimator, SGD(thermostat), x0, steps=300, callbacks=[thermostat.observe, meter])
    # after the approach, the per-step temperatures (each a noisy single-batch reading) average to the target;
    # the readings scatter by ~25% per step, so the mean of 200 is good to a few %; allow 15%
    settled = meter.temperatures[100:]
    assert sum(settled) / len(settled) == pytest.approx(target, rel=0.15)
    # a fixed lr drifts: its temperature falls by more than 2x from the start to the noise ball
    fixed = TemperatureMeter()
    minimize(MiniBatch(objective, 32, noise_stats=True), SGD(0.05), x0, steps=300, callbacks=[fixed])
    assert sum(fixed.temperatures[:5]) > 2 * sum(fixed.temperatures[-5:])
    if control == "batch":
        assert estimator.batch_size != 32
    assert gradient_noise(objective, x0).rho > 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unstable"):
        sgd_stationary_covariance(A, C, 2.5)
    with pytest.raises(ValueError, match="symmetric"):
        sgd_stationary_covariance([[1.0, 2.0], [0.0, 1.0]], C, 0.1)
    with pytest.raises(ValueError, match="method"):
        sgd_stationary_covariance(A, C, 0.1, method="exact")
    with pytest.raises(ValueError, match="noise_cov"):
        sgd_stationary_covariance(A, np.eye(3), 0.1)
    with pytest.raises(ValueError, match="residuals"):
        least_squares_stationary_covariance(np.ones((5, 2)), np.ones(4), 0.1)
    objective, _ = _regression(0)
    with pytest.raises(ValueError, match="noise_stats=True"):
        Thermostat(MiniBatch(objective, 8), 1e-3, lr=0.1)
    with pytest.raises(ValueError, match="control"):
        Thermostat(MiniBatch(objective, 8, noise_stats=True), 1e-3, lr=0.1, control="eta")
