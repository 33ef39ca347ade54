"""SPSA, Gaussian smoothing and calibration held to their closed forms.

Statistical checks use fixed seeds and tolerances of 4 Monte-Carlo standard errors computed from the
draws themselves (a correct implementation fails about 1 run in 15,000 per check).
"""

from __future__ import annotations

import math

import pytest
import torch

import noisygrad
from noisygrad import SGD, Energy, NoisyBlackBox, RobbinsMonro, minimize
from noisygrad.estimators.zeroth_order import SPSA, GaussianSmoothing, evaluate_points, spsa_calibrate

Z = 4.0


def _quadratic(d: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return q @ q.T / d + torch.eye(d, dtype=torch.float64), torch.randn(d, generator=generator, dtype=torch.float64)


def _noisy_quadratic(A: torch.Tensor, b: torch.Tensor, sigma: float, calls: list[int] | None = None) -> NoisyBlackBox:
    def fn(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if calls is not None:
            calls.append(points.shape[0])
        # broadcast products, not matmul: tiny BLAS calls are slow with several threads on a loaded machine
        clean = 0.5 * ((points.unsqueeze(2) * A).sum(1) * points).sum(1) + (points * b).sum(1)
        return clean + sigma * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)

    return NoisyBlackBox(fn, cost_per_evaluation=100, cost_unit="shots")


def _mean_and_se(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])


def test_spsa_is_exported_and_two_evaluations_per_estimate_whatever_d() -> None:
    assert noisygrad.SPSA is SPSA
    assert noisygrad.GaussianSmoothing is GaussianSmoothing
    gen = torch.Generator().manual_seed(0)
    for d in (1, 7, 300):
        calls: list[int] = []
        A, b = torch.eye(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
        est = SPSA(_noisy_quadratic(A, b, 0.1, calls)).estimate(torch.zeros(d, dtype=torch.float64), gen)
        assert calls == [2]  # one call holding both points
        assert est.cost == noisygrad.Cost(evaluations=2, shots=200)
        assert est.grad.shape == (d,)
    calls = []
    A, b = torch.eye(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    est = SPSA(_noisy_quadratic(A, b, 0.1, calls), resamplings=6).estimate(torch.zeros(5, dtype=torch.float64), gen)
    assert calls == [12]
    assert est.cost.evaluations == 12
    assert est.cost.shots == 1200
    assert "grad_variance" in est.stats
    assert est.stats["c_k"] == pytest.approx(0.1)


def test_spsa_bias_is_c_squared_over_three_on_a_cubic() -> None:
    # f = sum x_i^3 / 3: (f(x + cD) - f(x - cD)) / 2c = x^2 . D + (c^2/3) sum D_j^3, so E[g_i] = x_i^2 + c^2/3
    # exactly for Rademacher D. 200,000 perturbations in one estimate; tolerance 4 s.e. of that mean.
    gen = torch.Generator().manual_seed(1)
    x = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    cubic = NoisyBlackBox(lambda points, generator: (points**3).sum(1) / 3)  # batched, noise-free
    for c in (0.5, 1.0):
        est = SPSA(cubic, c=c, gamma=0.0, resamplings=200_000).estimate(x, gen)
        se = math.sqrt(est.stats["grad_variance"])  # bounds each component's s.e. (it is the trace)
        assert torch.allclose(est.grad, x**2 + c**2 / 3, rtol=0.0, atol=Z * se), (est.grad, x**2 + c**2 / 3)
        assert not torch.allclose(est.grad, x**2, rtol=0.0, atol=Z * se)  # the bias is resolved
    # shrinking c removes the bias: c_k = c / (k + 1)^gamma
    spsa = SPSA(Energy(lambda p: (p**3).sum() / 3), c=1.0, gamma=0.5)
    assert spsa.perturbation_size(3) == pytest.approx(0.5)


def test_spsa_unbiased_with_variance_from_theory_on_noisy_quadratic() -> None:
    # Per component, per perturbation: Var(g_i) = sum_{j != i} g_j^2 + sigma^2 / (2 c^2); mean of S draws.
    gen = torch.Generator().manual_seed(2)
    d, sigma, c, s, draws = 6, 0.05, 0.1, 4, 6000
    A, b = _quadratic(d, gen)
    x = torch.randn(d, generator=gen, dtype=torch.float64)
    g = A @ x + b
    spsa = SPSA(_noisy_quadratic(A, b, sigma), c=c, gamma=0.0, resamplings=s)
    grads = torch.stack([spsa.estimate(x, gen).grad for _ in range(draws)])
    mean, se = _mean_and_se(grads)
    assert torch.all((mean - g).abs() <= Z * se), (mean, g, se)
    predicted = ((g**2).sum() - g**2 + sigma**2 / (2 * c**2)) / s
    sq = (grads - g) ** 2  # the true mean is known, so E[sq] is the variance
    var, var_se = _mean_and_se(sq)
    assert torch.all((var - predicted).abs() <= Z * var_se), (var, predicted, var_se)
    assert spsa.k == draws


def test_spsa_rho_is_d_minus_one_without_evaluation_noise() -> None:
    # tr Cov(g) / |g|^2 = d - 1 for one Rademacher perturbation of a quadratic (exact central difference).
    gen = torch.Generator().manual_seed(3)
    d = 20
    A, b = _quadratic(d, gen)
    x = torch.randn(d, generator=gen, dtype=torch.float64)
    g = A @ x + b
    est = SPSA(_noisy_quadratic(A, b, 0.0), resamplings=40_000).estimate(x, gen)
    # an Energy gives the same estimate as the equivalent black box (evaluated point by point, no autograd)
    energy_est = SPSA(Energy(lambda p: 0.5 * p @ A @ p + b @ p)).estimate(x, torch.Generator().manual_seed(9))
    box_est = SPSA(_noisy_quadratic(A, b, 0.0)).estimate(x, torch.Generator().manual_seed(9))
    assert torch.allclose(energy_est.grad, box_est.grad)
    assert energy_est.cost == noisygrad.Cost(evaluations=2)
    rho = est.stats["trace_cov"] / float(g @ g)
    # the sample variance's s.e. from the draws' fourth moments is about 1% here; allow 4x that
    assert rho == pytest.approx(d - 1, rel=0.04)


def test_gaussian_smoothing_unbiased_on_quadratic_with_rho_d_plus_one() -> None:
    gen = torch.Generator().manual_seed(4)
    d = 10
    A, b = _quadratic(d, gen)
    x = torch.randn(d, generator=gen, dtype=torch.float64)
    g = A @ x + b
    calls: list[int] = []
    est = GaussianSmoothing(_noisy_quadratic(A, b, 0.0, calls), sigma=0.3, samples=50_000).estimate(x, gen)
    assert calls == [100_000]
    se = math.sqrt(est.stats["grad_variance"])  # the trace bounds each component's variance
    assert torch.all((est.grad - g).abs() <= Z * se)
    assert est.stats["trace_cov"] / float(g @ g) == pytest.approx(d + 1, rel=0.05)


def test_calibration_sets_the_first_step() -> None:
    gen = torch.Generator().manual_seed(5)
    slope = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
    energy = Energy(lambda p: slope @ p)
    cal = spsa_calibrate(energy, torch.zeros(3, dtype=torch.float64), generator=gen, samples=40, stability=9.0)
    assert cal.evaluations == 80
    assert isinstance(cal.learning_rate, RobbinsMonro)
    assert cal.learning_rate.alpha == 0.602
    # first gain times the mean |g_i| is the target step
    assert cal.learning_rate(0) * cal.mean_magnitude == pytest.approx(2 * math.pi / 10)
    # |g_i| = |slope . D| takes the values 1.5, 2.5, 3.5, 4.5 here: its mean lies between them
    assert 1.5 <= cal.mean_magnitude <= 4.5
    with pytest.raises(ValueError, match="zero change"):
        spsa_calibrate(Energy(lambda p: p.sum() * 0), torch.zeros(3, dtype=torch.float64), generator=gen)


def test_spsa_minimizes_and_resumes_bit_identically() -> None:
    gen = torch.Generator().manual_seed(6)
    d = 8
    A, b = _quadratic(d, gen)
    objective = _noisy_quadratic(A, b, 0.01)
    x_star = torch.linalg.solve(A, -b)
    cal = spsa_calibrate(objective, torch.zeros(d, dtype=torch.float64), generator=gen, target_step=0.1, stability=20)
    full = minimize(SPSA(objective), SGD(cal.learning_rate), torch.zeros(d, dtype=torch.float64), steps=600, seed=7)
    assert float((full.x - x_star).norm()) < 0.05 * float(x_star.norm())
    assert full.cost.evaluations == 1200
    assert full.cost.shots == 120_000
    first = minimize(SPSA(objective), SGD(cal.learning_rate), torch.zeros(d, dtype=torch.float64), steps=250, seed=7)
    resumed_estimator = SPSA(objective)
    rest = minimize(resumed_estimator, SGD(cal.learning_rate), steps=350, resume=first.checkpoint)
    assert torch.equal(rest.x, full.x)
    assert resumed_estimator.k == 600


def test_bad_input_is_rejected_with_the_argument_named() -> None:
    energy = Energy(lambda p: p.sum())
    with pytest.raises(ValueError, match="c must be"):
        SPSA(energy, c=0.0)
    with pytest.raises(ValueError, match="gamma"):
        SPSA(energy, gamma=1.5)
    with pytest.raises(ValueError, match="resamplings"):
        SPSA(energy, resamplings=0)
    with pytest.raises(ValueError, match="perturbation"):
        SPSA(energy, perturbation="gaussian")
    with pytest.raises(ValueError, match="sigma"):
        GaussianSmoothing(energy, sigma=-1.0)
    with pytest.raises(TypeError, match="SPSA needs an objective"):
        SPSA(noisygrad.FiniteSum(lambda w, x: (w * x).mean(), torch.ones(3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state"):
        SPSA(energy).load_state_dict({"k": 1, "extra": 2})
    with pytest.raises(TypeError, match="generator"):
        spsa_calibrate(energy, torch.zeros(2), generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        spsa_calibrate(energy, torch.zeros(2), generator=torch.Generator(), alpha=0.4)
    with pytest.raises(ValueError, match="points"):
        evaluate_points(energy, torch.zeros(3), torch.Generator())
