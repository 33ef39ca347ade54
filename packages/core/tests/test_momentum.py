"""SGD with momentum's stationary covariance and Adam's mean step against closed forms and long simulations.

Simulations run many independent chains (or coordinates) side by side; each chain's time average is one i.i.d.
draw, so the standard error (s.e.) of a Monte-Carlo mean is the spread of those averages over ``sqrt(chains)``.
Simulation tolerances are 4 s.e. (stated at each check); closed forms are checked to rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch

from noisygrad import SGD, Adam
from noisygrad.noise.momentum import adam_expected_step, heavy_ball_stationary_covariance
from noisygrad.noise.theory import sgd_stationary_covariance
from noisygrad.tour.experiments.momentum import adam_snr, momentum

H = np.array([[1.0, 0.3], [0.3, 0.2]])  # eigenvalues 0.1 and 1.1, axes tilted from C's
C = np.array([[1.0, -0.2], [-0.2, 0.5]])
F64 = torch.float64


def _pair_law(hessian: np.ndarray, noise: np.ndarray, lr: float, beta: float, dampening: float = 0.0) -> np.ndarray:
    """The heavy ball's ball in H's eigenbasis (eigenvalues l, noise c there, a = lr (1 - d), lr_eff = a / (1 - b)):
    lr_eff c_ij / (l_i + l_j - a l_i l_j / (1 + b) + lr_eff b (l_i - l_j)^2 / (1 - b^2))."""
    lam, u = np.linalg.eigh(hessian)
    c = u.T @ noise @ u
    alpha = lr * (1 - dampening)
    eff = alpha / (1 - beta)
    li, lj = lam[:, None], lam[None, :]
    denom = li + lj - alpha * li * lj / (1 + beta) + eff * beta * (li - lj) ** 2 / (1 - beta**2)
    return np.asarray(u @ (eff * c / denom) @ u.T)


# --- heavy ball: closed forms ---------------------------------------------------------------------------------


def test_zero_momentum_is_plain_sgd() -> None:
    np.testing.assert_allclose(
        heavy_ball_stationary_covariance(H, C, 0.3, 0.0, 4), sgd_stationary_covariance(H, C, 0.3, 4), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("lr", "beta", "dampening"), [(0.3, 0.9, 0.0), (0.05, 0.5, 0.0), (1.0, 0.8, 0.3), (3.0, 0.95, 0.0)]
)
def test_heavy_ball_matches_its_exact_eigenbasis_law(lr: float, beta: float, dampening: float) -> None:
    # the pair law (derived from the 2 x 2 Lyapunov equation of each pair of eigen-directions) is exact
    got = heavy_ball_stationary_covariance(H, C, lr, beta, dampening=dampening)
    np.testing.assert_allclose(got, _pair_law(H, C, lr, beta, dampening), rtol=1e-10, atol=1e-14)


def test_scalar_heavy_ball_is_polyaks_closed_form() -> None:
    # x' = x - alpha g + beta (x - x_prev) has Var x = alpha c (1 + beta) / (l (1 - beta) (2 (1 + beta) - alpha l))
    lam, c, lr, beta = 2.0, 0.7, 0.3, 0.6
    expected = lr * c * (1 + beta) / (lam * (1 - beta) * (2 * (1 + beta) - lr * lam))
    assert heavy_ball_stationary_covariance([[lam]], [[c]], lr, beta)[0, 0] == pytest.approx(expected, rel=1e-12)


def test_small_step_limit_is_sgd_at_the_effective_step() -> None:
    # derived in the docstring: H S + S H = lr C / (1 - beta), i.e. lr C / (2 (1 - beta) H) when C commutes with H
    lam, c = np.diag([1.0, 0.1]), np.diag([0.8, 0.3])
    lr, beta = 1e-3, 0.9
    continuous = heavy_ball_stationary_covariance(lam, c, lr, beta, method="continuous")
    np.testing.assert_allclose(continuous, lr * c / (2 * (1 - beta) * lam.diagonal()), rtol=1e-12)
    # per direction the exact ball is 1 / (1 - alpha l / (2 (1 + beta))) times the limit
    exact = heavy_ball_stationary_covariance(lam, c, lr, beta)
    ratio = exact.diagonal() / continuous.diagonal()
    np.testing.assert_allclose(ratio, 1 / (1 - lr * lam.diagonal() / (2 * (1 + beta))), rtol=1e-10)
    # a general (non-commuting) C reaches the limit too as lr -> 0 at fixed beta: error O(lr / (1 - beta)^2)
    errors = []
    for step in (1e-3, 1e-4, 1e-5):
        exact = heavy_ball_stationary_covariance(H, C, step, beta)
        limit = heavy_ball_stationary_covariance(H, C, step, beta, method="continuous")
        errors.append(float(np.linalg.norm(exact - limit) / np.linalg.norm(limit)))
    assert errors[2] < 1e-3
    assert errors[0] / errors[1] == pytest.approx(10, rel=0.1)  # first order in lr


def test_cross_covariance_dephases_as_beta_grows_at_a_fixed_effective_step() -> None:
    lam, c = np.diag([1.0, 0.1]), np.array([[1.0, 0.5], [0.5, 1.0]])
    eff = 0.1
    limit = heavy_ball_stationary_covariance(lam, c, eff * 0.1, 0.9, method="continuous")
    cross = [heavy_ball_stationary_covariance(lam, c, eff * (1 - b), b)[0, 1] / limit[0, 1] for b in (0.5, 0.9, 0.99)]
    assert cross == pytest.approx([0.9560, 0.7417, 0.2144], abs=1e-4)  # the documented 26% and 79% shortfalls


def test_nesterov_small_step_limit_and_stability_bound() -> None:
    lr, beta = 1e-5, 0.9
    exact = heavy_ball_stationary_covariance(H, C, lr, beta, nesterov=True)
    limit = heavy_ball_stationary_covariance(H, C, lr, beta, nesterov=True, method="continuous")
    assert np.linalg.norm(exact - limit) / np.linalg.norm(limit) < 1e-3
    bound = 2 * (1 + beta) / (1 + 2 * beta) / 1.1  # lambda_max(H) = 1.1
    heavy_ball_stationary_covariance(H, C, 0.99 * bound, beta, nesterov=True)
    with pytest.raises(ValueError, match="unstable"):
        heavy_ball_stationary_covariance(H, C, 1.01 * bound, beta, nesterov=True)


def test_heavy_ball_is_stable_up_to_2_1_plus_beta_over_lambda() -> None:
    beta = 0.9
    bound = 2 * (1 + beta) / 1.1
    assert np.all(np.linalg.eigvalsh(heavy_ball_stationary_covariance(H, C, 0.99 * bound, beta)) > 0)
    with pytest.raises(ValueError, match=r"unstable.*2 \(1 \+ beta\)"):
        heavy_ball_stationary_covariance(H, C, 1.01 * bound, beta)
    with pytest.raises(ValueError, match="unstable"):  # plain SGD at the same effective step diverges long before
        sgd_stationary_covariance(H, C, 0.5 * bound / (1 - beta))


def test_augmented_covariance_holds_the_buffer() -> None:
    full = heavy_ball_stationary_covariance(H, C, 0.3, 0.9, augmented=True)
    assert full.shape == (4, 4)
    np.testing.assert_allclose(full[:2, :2], heavy_ball_stationary_covariance(H, C, 0.3, 0.9), rtol=1e-12)
    # x_prev = x + lr b with (x, b) the state after a step; Cov(x_prev) = Cov(x) at stationarity gives
    # lr^2 Cov(b) = -lr (Cov(x, b) + Cov(b, x))
    cov_xb, cov_bb = full[:2, 2:], full[2:, 2:]
    np.testing.assert_allclose(0.3**2 * cov_bb, -0.3 * (cov_xb + cov_xb.T), rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"momentum": -0.1}, ValueError, "momentum"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"dampening": 1.0}, ValueError, "dampening"),
        ({"nesterov": True, "dampening": 0.1}, ValueError, "nesterov"),
        ({"nesterov": True, "momentum": 0.0}, ValueError, "nesterov"),
        ({"method": "euler"}, ValueError, "method"),
        ({"method": "continuous", "augmented": True}, ValueError, "augmented"),
        ({"noise_cov": np.eye(3)}, ValueError, "noise_cov"),
        ({"hessian": [[1.0, 2.0], [0.0, 1.0]]}, ValueError, "hessian must be symmetric"),
        ({"hessian": "H"}, TypeError, "hessian"),
    ],
)
def test_heavy_ball_refuses_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"hessian": H, "noise_cov": C, "lr": 0.1, "momentum": 0.9, **kwargs}
    with pytest.raises(error, match=match):
        heavy_ball_stationary_covariance(**args)  # type: ignore[arg-type]


# --- heavy ball: long simulations of noisygrad.SGD ------------------------------------------------------------


def _simulate(optimizer: SGD, chains: int, steps: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo covariance of (x, b) and its entrywise s.e.: ``steps`` = (burn-in, samples, spacing)."""
    gen = torch.Generator().manual_seed(seed)
    a, chol = torch.tensor(H), torch.linalg.cholesky(torch.tensor(C))
    x = torch.zeros(chains, 2, dtype=F64)
    state = optimizer.init(x)
    burn, samples, every = steps
    acc = torch.zeros(chains, 4, 4, dtype=F64)
    for t in range(burn + samples * every):
        grad = x @ a + torch.randn(chains, 2, generator=gen, dtype=F64) @ chol.T
        x, state = optimizer.update(x, grad, state)
        if t >= burn and (t - burn) % every == every - 1:
            z = torch.cat([x, state["momentum_buffer"]], 1)
            acc += z.unsqueeze(2) * z.unsqueeze(1)
    per_chain = acc / samples
    return per_chain.mean(0).numpy(), (per_chain.std(0) / math.sqrt(chains)).numpy()


@pytest.mark.parametrize(
    ("lr", "beta", "extra"),
    [
        (0.3, 0.9, {}),  # lr lambda_max = 0.33, lr_eff lambda_max = 3.3: plain SGD at lr_eff would diverge
        (0.2, 0.7, {"dampening": 0.3}),
        (0.3, 0.8, {"nesterov": True}),  # the heavy-ball law would miss these chains by 23%
    ],
)
def test_sgd_with_momentum_has_the_predicted_stationary_covariance(
    lr: float, beta: float, extra: dict[str, Any]
) -> None:
    # the (x, b) covariance within 4 s.e. in the Frobenius norm (the project's rule for a matrix claim)
    chains = 3000
    alpha = lr * (1 - extra.get("dampening", 0.0))
    tau = int((1 - beta) / (alpha * 0.1)) + int(2 / (1 - beta))  # the flat direction's relaxation plus the buffer's
    measured, se = _simulate(SGD(lr, momentum=beta, **extra), chains, (8 * tau, 40, max(tau // 2, 1)), seed=3)
    predicted = heavy_ball_stationary_covariance(H, C, lr, beta, augmented=True, **extra)
    error = np.linalg.norm(measured - predicted) / np.linalg.norm(predicted)
    assert error < 4 * np.linalg.norm(se) / np.linalg.norm(predicted), (error, measured, predicted)


# --- Adam's mean step -----------------------------------------------------------------------------------------

SNR = np.array([-2.0, 0.0, 0.1, 0.3, 1.0, 3.0, 10.0])


def test_first_adam_step_is_lr_sign_g() -> None:
    # t = 1: m_hat = g, v_hat = g^2, the step is lr sign(g): its mean is lr (2 Phi(snr) - 1) = lr erf(snr / sqrt 2)
    got = adam_expected_step(SNR, 0.01, (0.9, 0.999), step=1)
    np.testing.assert_allclose(got, 0.01 * scipy.special.erf(SNR / math.sqrt(2)), rtol=1e-10, atol=1e-15)


def test_exact_mean_step_against_direct_quadrature() -> None:
    # an independent evaluation of (2 / sqrt pi) int_0^inf E[m exp(-w^2 v)] dw with scipy's adaptive quadrature
    beta1, beta2, snr = 0.9, 0.95, 0.5
    k = np.arange(900)
    a, b = (1 - beta1) * beta1**k, (1 - beta2) * beta2**k

    def integrand(w: float) -> float:
        x = 2 * w * w * b
        log_norm = -0.5 * np.log1p(x).sum() - w * w * snr**2 * (b / (1 + x)).sum()
        return float(snr * math.exp(log_norm) * (a / (1 + x)).sum())

    value, _ = scipy.integrate.quad(integrand, 0, np.inf, epsabs=1e-13, epsrel=1e-12, limit=500)
    assert adam_expected_step(snr, 1.0, (beta1, beta2)) == pytest.approx(2 / math.sqrt(math.pi) * value, rel=1e-9)


def test_adam_step_law_and_its_finite_beta_correction() -> None:
    law = SNR / np.sqrt(1 + SNR**2)
    np.testing.assert_allclose(adam_expected_step(SNR, 1.0, order=1), law, rtol=1e-15)
    exact = np.asarray(adam_expected_step(SNR, 1.0, (0.9, 0.999)))
    second = np.asarray(adam_expected_step(SNR, 1.0, (0.9, 0.999), order=2))
    nonzero = SNR != 0
    # the default betas: the law within 0.061%, the second-order form within 2e-6 (its error is O((1 - beta2)^2))
    assert np.max(np.abs(law[nonzero] / exact[nonzero] - 1)) < 6.1e-4
    assert np.max(np.abs(second[nonzero] / exact[nonzero] - 1)) < 2e-6
    # (0.9, 0.95): the step falls 1.4% short of the law at low SNR; the second-order form keeps 0.06%
    short = np.asarray(adam_expected_step(SNR, 1.0, (0.9, 0.95)))
    assert short[2] / law[2] - 1 == pytest.approx(-0.01435, abs=1e-4)
    second = np.asarray(adam_expected_step(SNR, 1.0, (0.9, 0.95), order=2))
    assert np.max(np.abs(second[nonzero] / short[nonzero] - 1)) < 6e-4
    # stationary second-order sums in closed form: sum a b = (1-b1)(1-b2)/(1-b1 b2), sum b^2 = (1-b2)/(1+b2)
    b1, b2, s = 0.9, 0.95, 0.3
    v = 1 + s * s
    closed = s / math.sqrt(v) * (1 - (0.1 * 0.05 / (1 - b1 * b2)) / v + 0.375 * (0.05 / 1.95) * (4 * s * s + 2) / v**2)
    assert adam_expected_step(s, 1.0, (b1, b2), order=2) == pytest.approx(closed, rel=1e-12)


def test_adam_step_shapes_symmetry_and_limits() -> None:
    assert isinstance(adam_expected_step(0.5), float)
    assert adam_expected_step(0.0) == 0.0
    assert adam_expected_step(-0.5) == pytest.approx(-adam_expected_step(0.5), rel=1e-14)
    assert np.asarray(adam_expected_step([[0.1, 1.0], [2.0, 3.0]])).shape == (2, 2)
    assert adam_expected_step(1.0, 0.02) == pytest.approx(20 * adam_expected_step(1.0, 1e-3), rel=1e-14)
    # a late step is the stationary one; an early one is not
    assert adam_expected_step(0.2, step=100_000) == pytest.approx(adam_expected_step(0.2), rel=1e-12)
    assert adam_expected_step(0.2, step=100) != pytest.approx(adam_expected_step(0.2), rel=1e-3)
    # betas of 0: m = g, v = g^2 every step, the step is lr sign(g); and beta1 = 0 at any beta2 > 0 is finite
    assert adam_expected_step(1.0, 1.0, (0.0, 0.0)) == pytest.approx(math.erf(1 / math.sqrt(2)), rel=1e-10)
    assert 0 < adam_expected_step(1.0, 1.0, (0.0, 0.5)) < 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"snr": float("nan")}, "snr"),
        ({"snr": "high"}, "snr"),
        ({"lr": -1.0}, "lr"),
        ({"betas": (0.9,)}, "betas"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
        ({"step": 0}, "step"),
        ({"order": 3}, "order"),
        ({"betas": 0.9}, "betas"),
        ({"betas": (0.9, 0.0)}, "no finite mean"),
    ],
)
def test_adam_step_refuses_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"snr": 0.5, **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        adam_expected_step(**args)  # type: ignore[arg-type]


def test_noisygrad_adam_mean_step_is_the_exact_gaussian_mean() -> None:
    # betas (0.5, 0.9), where the law is 4.5% off at low SNR: 20,000 coordinates per SNR, the step at t = 60
    # (bias corrections still 0.2% from 1), with the control variate -(m_hat - mu) / sqrt(mu^2 + sigma^2) (mean 0);
    # the mean within 4 s.e. of the exact form, and the first-order law rejected at low SNR
    betas, t, lr, n = (0.5, 0.9), 60, 1e-2, 20_000
    snr = torch.tensor([0.1, 0.5, 2.0], dtype=F64)[:, None]
    gen = torch.Generator().manual_seed(7)
    sigma = torch.full((3, n), 3.0, dtype=F64)
    mu = snr * sigma
    adam, x = Adam(lr, betas=betas), torch.zeros(3, n, dtype=F64)
    state = adam.init(x)
    for _ in range(t):
        moved, state = adam.update(x, mu + sigma * torch.randn(3, n, generator=gen, dtype=F64), state)
    y = (x - moved) / lr - (state["exp_avg"] / (1 - betas[0] ** t) - mu) / torch.sqrt(mu**2 + sigma**2)
    measured, se = y.mean(1).numpy(), (y.std(1) / math.sqrt(n)).numpy()
    exact = np.asarray(adam_expected_step(snr.squeeze(1).numpy(), 1.0, betas, step=t))
    assert np.all(np.abs(measured - exact) < 4 * se), (measured, exact, se)
    law = np.asarray(adam_expected_step(snr.squeeze(1).numpy(), 1.0, order=1))
    assert abs(measured[0] - law[0]) > 4 * se[0]


# --- the experiments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("experiment", [momentum, adam_snr])
def test_experiments_pass_at_seed_0(experiment) -> None:  # type: ignore[no-untyped-def]
    findings = experiment(seed=0)
    assert len(findings) >= 2
    for finding in findings:
        assert finding.passed, finding


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("experiment", [momentum, adam_snr])
def test_experiments_pass_for_every_seed(experiment, seed: int) -> None:  # type: ignore[no-untyped-def]
    for finding in experiment(seed=seed):
        assert finding.passed, finding
