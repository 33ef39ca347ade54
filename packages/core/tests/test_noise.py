"""Noise statistics: the cosine law with its finite-population factor, the two-batch noise scale, temperature.

Monte-Carlo checks use fixed seeds; each tolerance is stated beside it in terms of the Monte-Carlo standard
error (s.e.) the check itself measures.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

from noisygrad import SGD, FiniteSum, MiniBatch, minimize
from noisygrad.noise.statistics import (
    NoiseScaleMeter,
    NoiseStats,
    TemperatureMeter,
    effective_temperature,
    gradient_noise,
    monte_carlo_cosine,
    noise_stats_from_grads,
    predicted_cosine,
)

N, D = 2000, 100


@pytest.fixture(scope="module")
def least_squares() -> tuple[FiniteSum, dict[str, torch.Tensor]]:
    """d = 100 least squares, N = 2000; a point far from the optimum (w = 0) and one near it."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N, D, generator=gen, dtype=torch.float64)
    y = X @ torch.randn(D, generator=gen, dtype=torch.float64) + 0.5 * torch.randn(
        N, generator=gen, dtype=torch.float64
    )
    objective = FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    u = torch.randn(D, generator=gen, dtype=torch.float64)
    return objective, {"far": torch.zeros(D, dtype=torch.float64), "near": w_star + 0.3 * u / u.norm()}


def test_stats_match_direct_covariance(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]]) -> None:
    objective, points = least_squares
    w = points["far"]
    stats = gradient_noise(objective, w, chunk_size=700)  # chunked vmap gives the same statistics
    grads = objective.per_example_grads(w, torch.arange(N))
    cov = torch.cov(grads.T)  # (N-1)-normalised
    assert torch.allclose(stats.grad, objective.value_and_grad(w)[1], rtol=0, atol=1e-10)
    assert stats.trace_cov == pytest.approx(float(cov.trace()), rel=1e-10)
    assert stats.trace_cov_sq == pytest.approx(float((cov @ cov).trace()), rel=1e-10)
    assert stats.rho == pytest.approx(stats.trace_cov / float(stats.grad @ stats.grad))
    centred = grads - grads.mean(0)
    assert stats.grad_cov_grad == pytest.approx(float(stats.grad @ cov @ stats.grad), rel=1e-10)
    assert stats.third_moment == pytest.approx(
        float(((centred @ stats.grad) * centred.pow(2).sum(1)).mean()), rel=1e-10
    )
    assert stats.fourth_moment == pytest.approx(float(centred.pow(2).sum(1).pow(2).mean()), rel=1e-10)
    assert stats.effective_dim > 50  # isotropic features: the noise spreads over most of the 100 directions
    # one direction of noise: effective dimension 1
    line = torch.randn(50, 1, dtype=torch.float64) * torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64)
    assert noise_stats_from_grads(line).effective_dim == pytest.approx(1.0)


def _exact_batch_moments(grads: torch.Tensor, batches: torch.Tensor) -> tuple[float, float, float, float]:
    """E|xi|^2, E(g.xi)^2, E[(g.xi)|xi|^2], Var|xi|^2 averaged over the listed (equally likely) batches."""
    g = grads.mean(0)
    xi = grads[batches].mean(1) - g
    sq, along = xi.pow(2).sum(1), xi @ g
    return float(sq.mean()), float(along.pow(2).mean()), float((along * sq).mean()), float(sq.var(unbiased=False))


def test_batch_noise_moments_match_enumeration() -> None:
    # every batch enumerated: the finite-population factors of the third and fourth moments are exact
    gen = torch.Generator().manual_seed(11)
    grads = torch.randn(7, 3, generator=gen, dtype=torch.float64).exp() + torch.tensor([0.5, 0.0, -1.0])  # skewed
    stats = noise_stats_from_grads(grads)
    for b in range(1, 8):
        batches = torch.tensor(list(itertools.combinations(range(7), b)))
        expected = _exact_batch_moments(grads, batches)
        assert stats.batch_noise_moments(b) == pytest.approx(expected, rel=1e-9, abs=1e-12), b
        assert stats.batch_grad_variance(b) == pytest.approx(expected[0], rel=1e-12, abs=1e-14)
    small = noise_stats_from_grads(grads[:5])
    for b in range(1, 4):  # with replacement: all 5^b ordered draws
        batches = torch.tensor(list(itertools.product(range(5), repeat=b)))
        expected = _exact_batch_moments(grads[:5], batches)
        assert small.batch_noise_moments(b, replace=True) == pytest.approx(expected, rel=1e-9, abs=1e-12), b
    assert stats.predicted_cosine(7, order=2) == pytest.approx(1.0)  # b = N: no noise left


def test_monte_carlo_cosine_matches_enumeration() -> None:
    # E[cos] over all C(20, b) subsets, against 20,000 draws (rejection sampler at b = 3 and 17, random keys at
    # b = 10); the s.e. is 0.2-0.3% of the mean, the check is 4 s.e.
    gen = torch.Generator().manual_seed(12)
    grads = torch.randn(20, 3, generator=gen, dtype=torch.float64) + torch.tensor([0.7, 0.0, 0.0])
    unit = grads.mean(0) / grads.mean(0).norm()
    for b in (3, 10, 17):
        batch = grads[torch.tensor(list(itertools.combinations(range(20), b)))].mean(1)
        exact = float(((batch @ unit) / batch.norm(dim=1)).mean())
        measured, se = monte_carlo_cosine(grads, b, draws=20_000, generator=gen, chunk=3000)
        assert abs(measured - exact) <= 4 * se, (b, measured, exact, se)
    assert monte_carlo_cosine(grads, 20, draws=10, generator=gen)[0] == pytest.approx(1.0, abs=1e-12)  # b = N


def _check_cosine(
    objective: FiniteSum, w: torch.Tensor, cases: dict[int, tuple[int, float, int]], seed: int
) -> dict[int, tuple[float, float, float, bool]]:
    """For each ``b: (order, formula tolerance, draws)``: assert the prediction of that order; return, per ``b``,
    the relative errors of both orders, the relative s.e. and whether the first-order law is flagged reliable."""
    stats = gradient_noise(objective, w)
    grads = objective.per_example_grads(w, torch.arange(N))
    gen = torch.Generator().manual_seed(seed)
    errors = {}
    for b, (order, tolerance, draws) in cases.items():
        measured, se = monte_carlo_cosine(grads, b, draws=draws, generator=gen)
        predicted = stats.predicted_cosine(b, order=order)
        # formula tolerance (acceptance) plus 4 Monte-Carlo s.e. of the measurement
        assert abs(predicted - measured) <= tolerance * measured + 4 * se, (b, order, predicted, measured, se)
        first, second = stats.predicted_cosine(b), stats.predicted_cosine(b, order=2)
        errors[b] = (first / measured - 1, second / measured - 1, se / measured, stats.cosine_formula_reliable(b))
    return errors


def test_predicted_cosine_quick(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]]) -> None:
    objective, points = least_squares
    # far: 30,000 draws at b = 16 give a relative s.e. of about 0.1%, so a first-order miss like the +2% near
    # the optimum would fail the 1% + 4 s.e. check
    _check_cosine(objective, points["far"], {16: (1, 0.01, 30_000), 64: (1, 0.005, 3000)}, seed=1)
    # near the optimum at b = 16 the first-order law is +1.9% high; the second-order one holds. 100,000 draws
    # give a relative s.e. of 0.15%: the first-order law misses the 1% acceptance by 6 s.e., and the second-order
    # check (0.5% + 4 s.e.) would exclude it.
    errors = _check_cosine(objective, points["near"], {16: (2, 0.005, 100_000), 256: (1, 0.005, 3000)}, seed=2)
    first_error, _, _, reliable = errors[16]
    assert first_error > 0.01
    assert not reliable


@pytest.mark.slow
@pytest.mark.parametrize("where", ["far", "near"])
def test_predicted_cosine_acceptance(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]], where: str) -> None:
    # Acceptance: within 1% for b >= 16 (0.5% for b >= 64), near and far, each prediction plus 4 s.e. of its
    # Monte-Carlo mean. The draws per b give a relative s.e. of 0.10% (near, b = 16) and <= 0.07% elsewhere.
    # Measured here (relative error of the first-order law / of the second-order prediction; s.e.):
    #   far:  b=16 +0.59% / +0.14% (0.04%)   b=32 -0.12% / +0.07%   b=64 -0.33% / +0.05%   b=256 -0.23% / +0.00%
    #   near: b=16 +2.05% / +0.10% (0.10%)   b=32 +0.94% / +0.03%   b=64 +0.29% / -0.08%   b=256 -0.17% / -0.09%
    #   b = 1024, 1900: |first| <= 0.08%, |second| <= 0.004%
    # The second-order prediction meets the acceptance at every b >= 16; the first-order law wherever
    # cosine_formula_reliable says so (every b here far from the optimum, b >= 64 near it). Near the optimum at
    # b = 16 and 32 it is flagged, and its miss (+2.0%, +0.9%) is real: many s.e.
    objective, points = least_squares
    draws = {16: 200_000, 32: 200_000, 64: 100_000, 256: 20_000, 1024: 20_000, 1900: 20_000}
    cases = {b: (2, 0.01 if b < 64 else 0.005, n) for b, n in draws.items()}
    errors = _check_cosine(objective, points[where], cases, seed=3)
    for b, (first_error, _, se, reliable) in errors.items():
        assert reliable == (where == "far" or b >= 64), (b, first_error)
        if reliable:
            assert abs(first_error) <= (0.01 if b < 64 else 0.005) + 4 * se, (b, first_error, se)
        else:  # the flagged miss is real, not Monte-Carlo noise
            assert first_error > 4 * se, (b, first_error, se)


def test_formula_fails_at_small_batch_and_without_the_finite_population_factor(
    least_squares: tuple[FiniteSum, dict[str, torch.Tensor]],
) -> None:
    objective, points = least_squares
    gen = torch.Generator().manual_seed(4)
    for where, no_fpc_error in (("far", -0.02), ("near", -0.06)):
        w = points[where]
        stats = gradient_noise(objective, w)
        grads = objective.per_example_grads(w, torch.arange(N))
        # b = 1: the first-order formula over-predicts by about 25% (Jensen gap) and the second-order one is off
        # too (far -3%, near -13%: |g_b|^2 has relative variance ~2, far outside the expansion); both flagged.
        # s.e. ~1% relative.
        measured, se = monte_carlo_cosine(grads, 1, draws=3000, generator=gen)
        assert stats.predicted_cosine(1) / measured - 1 > 0.15
        assert stats.norm_sq_relative_variance(1) > 1
        assert not stats.cosine_formula_reliable(1)
        assert not stats.cosine_formula_reliable(1, order=2)
        assert stats.cosine_formula_reliable(64)
        # b = 1900 of N = 2000: with the (1 - b/N) factor both orders hold to 0.05%; without it the first-order
        # law is off by -2.3% (far) and -7% (near), and so is the second-order one with i.i.d. (with-replacement)
        # moments. s.e. here is ~1e-5 relative.
        measured, se = monte_carlo_cosine(grads, 1900, draws=400, generator=gen)
        for order in (1, 2):
            assert abs(stats.predicted_cosine(1900, order=order) / measured - 1) < 5e-4 + 4 * se
        assert predicted_cosine(stats.rho, 1900) / measured - 1 < no_fpc_error
        assert stats.predicted_cosine(1900, order=2, replace=True) / measured - 1 < no_fpc_error


def test_with_replacement_prediction(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]]) -> None:
    objective, points = least_squares
    w = points["near"]
    stats = gradient_noise(objective, w)
    grads = objective.per_example_grads(w, torch.arange(N))
    measured, se = monte_carlo_cosine(grads, 512, draws=2000, generator=torch.Generator().manual_seed(5), replace=True)
    assert abs(stats.predicted_cosine(512, replace=True) - measured) <= 0.005 * measured + 4 * se
    assert stats.batch_grad_variance(512, replace=True) == pytest.approx(stats.trace_cov * (N - 1) / (N * 512))
    # b = 16 i.i.d. examples: first order +2.2%, second order within 0.5% + 4 s.e. (s.e. 0.15% relative)
    measured, se = monte_carlo_cosine(
        grads, 16, draws=100_000, generator=torch.Generator().manual_seed(5), replace=True
    )
    assert abs(stats.predicted_cosine(16, replace=True, order=2) - measured) <= 0.005 * measured + 4 * se
    assert stats.predicted_cosine(16, replace=True) / measured - 1 > 0.01 + 4 * se / measured


def test_two_batch_noise_scale_within_5_percent(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]]) -> None:
    # Acceptance: B_simple from the two-batch estimator within 5% of the per-example truth. Near the optimum
    # (|g|^2 small, the hard case), 2000 draws of nested batches 32 / 512 without replacement; the estimator's
    # own s.e. is about 1% for each of tr(S) and |g|^2 here (measured spread of the draws).
    objective, points = least_squares
    w = points["near"]
    truth = gradient_noise(objective, w)
    grads = objective.per_example_grads(w, torch.arange(N))
    gen = torch.Generator().manual_seed(6)
    corrected = NoiseScaleMeter(32, 512, n_examples=N)
    naive = NoiseScaleMeter(32, 512)
    for _ in range(8):  # 8 x 250 draws, each a uniform 512-subset whose first 32 form the nested small batch
        idx = torch.rand(250, N, generator=gen).topk(512, dim=1, largest=False).indices
        idx = idx[:, torch.randperm(512, generator=gen)]
        for small, big in zip(grads[idx[:, :32]].mean(1), grads[idx].mean(1), strict=True):
            corrected.update(small, big)
            naive.update(small, big)
    assert corrected.trace_cov == pytest.approx(truth.trace_cov, rel=0.05)
    assert corrected.grad_norm_sq == pytest.approx(truth.grad_norm_sq, rel=0.05)
    assert corrected.noise_scale == pytest.approx(truth.rho, rel=0.05)
    # without the +tr(S)/N correction |g|^2 is biased low by tr(S)/N = 16% here, inflating B_simple by ~20%
    assert naive.noise_scale / truth.rho - 1 > 0.1
    restored = NoiseScaleMeter(32, 512, n_examples=N)
    restored.load_state_dict(corrected.state_dict())
    assert restored.noise_scale == corrected.noise_scale


def test_effective_temperature_of_a_run(least_squares: tuple[FiniteSum, dict[str, torch.Tensor]]) -> None:
    """The meter's per-step temperature is unbiased for lr tr(S)(1/b - 1/N) / 2d at the point of each step.

    The exact value at every visited point comes from all N per-example gradients there. Given the point, each
    step's reading has an independent error (a fresh batch), so the mean difference over the steps has s.e.
    sd(differences) / sqrt(steps); held to 4 s.e. The s.e. is also checked to be small (< 3% of the mean).
    """
    objective, points = least_squares
    meter, exact = TemperatureMeter(), []

    def exact_temperature(info: Any) -> None:
        stats = noise_stats_from_grads(objective.per_example_grads(info.x, torch.arange(N)))
        exact.append(effective_temperature(info.lr, stats.batch_grad_variance(20), D))

    estimator = MiniBatch(objective, 20, noise_stats=True)
    minimize(estimator, SGD(0.01), points["near"], steps=200, callbacks=[meter, exact_temperature])
    differences = np.array(meter.temperatures) - np.array(exact)
    se = differences.std(ddof=1) / math.sqrt(len(differences))
    assert len(meter.temperatures) == 200
    assert se < 0.03 * np.mean(exact)
    assert abs(meter.mean - np.mean(exact)) <= 4 * se
    assert effective_temperature(0.1, 2.0, 4) == pytest.approx(0.025)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="rho"):
        predicted_cosine(-1.0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        predicted_cosine(1.0, 10, 5)
    with pytest.raises(ValueError, match="b_big"):
        NoiseScaleMeter(8, 8)
    with pytest.raises(ValueError, match="at least 2 rows"):
        noise_stats_from_grads(torch.ones(1, 3))
    with pytest.raises(ValueError, match="lr"):
        effective_temperature(0.0, 1.0, 2)
    with pytest.raises(RuntimeError, match="no updates"):
        _ = NoiseScaleMeter(1, 2).noise_scale
    meter = TemperatureMeter()
    obj = FiniteSum(lambda w, x: (w * x).sum(1).mean(), torch.ones(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="noise_stats=True"):
        minimize(MiniBatch(obj, 2), SGD(0.1), torch.zeros(2, dtype=torch.float64), steps=1, callbacks=[meter])
    stationary = noise_stats_from_grads(torch.tensor([[1.0], [-1.0]], dtype=torch.float64))
    assert math.isinf(stationary.rho)
    with pytest.raises(ValueError, match="mean gradient is zero"):
        stationary.predicted_cosine(1, order=2)
    stats = noise_stats_from_grads(torch.tensor([[1.0], [3.0]], dtype=torch.float64))
    for order in (0, 3, True):
        with pytest.raises(ValueError, match="order must be 1"):
            stats.predicted_cosine(1, order=order)
    with pytest.raises(ValueError, match="batch_size"):
        stats.batch_noise_moments(3)
    assert isinstance(stats, NoiseStats)


def test_low_noise_dimension_is_flagged_and_the_formula_misses_there() -> None:
    # d = 2 least squares (rho ~ 8, effective noise dimension ~2): the first-order law under-predicts by 6-7% at
    # b = 8 and 16 and 3% at b = 64 (research: -8% at b = 8). The second-order one is +9% and +2.5% at b = 8, 16,
    # where |g_b|^2 has relative variance 1.5 and 0.9 (flagged), and within 0.03% at b = 64 (variance 0.25).
    # With 20,000 draws the relative s.e. is 0.34%, 0.16% and 0.03%, so the misses are resolved (> 4 s.e.).
    gen = torch.Generator().manual_seed(7)
    X = torch.randn(N, 2, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -1.0], dtype=torch.float64) + torch.randn(N, generator=gen, dtype=torch.float64)
    objective = FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    w = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1) + torch.tensor([0.5, 0.4], dtype=torch.float64)
    stats = gradient_noise(objective, w)
    assert stats.effective_dim < 2.5
    assert not stats.cosine_formula_reliable(64)
    assert stats.cosine_formula_reliable(64, order=2)
    grads = objective.per_example_grads(w, torch.arange(N))
    for b in (8, 16, 64):
        measured, se = monte_carlo_cosine(grads, b, draws=20_000, generator=gen)
        error = stats.predicted_cosine(b) / measured - 1
        assert error < -0.025, (b, error)
        assert abs(error) > 4 * se / measured
        second = stats.predicted_cosine(b, order=2)
        if b < 64:
            assert not stats.cosine_formula_reliable(b, order=2)
            assert second / measured - 1 > 4 * se / measured, (b, second / measured - 1)
        else:
            assert abs(second - measured) <= 0.01 * measured + 4 * se
