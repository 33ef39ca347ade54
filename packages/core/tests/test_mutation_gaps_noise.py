"""Noise statistics: behaviours that samples of mutation testing of ``noise/statistics.py`` found unchecked
(tools/mutation.py, issue 18). Exact checks: reproducibility from the generator and documented defaults."""

from __future__ import annotations

import math

import pytest
import torch

from noisygrad.noise.statistics import NoiseScaleMeter, monte_carlo_cosine, noise_stats_from_grads


def _grads() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(50, 4, generator=gen, dtype=torch.float64) + torch.tensor([1.0, 0.0, -0.5, 0.2])


def test_monte_carlo_cosine_draws_only_from_its_generator():
    """Batches of 5 distinct rows of 50 (the i.i.d.-with-redraw path) come from ``generator`` alone: torch's global
    seed changed between two runs from the same generator state leaves the estimate bit for bit the same."""
    grads = _grads()
    with torch.random.fork_rng():
        results = []
        for global_seed in (0, 1):
            torch.manual_seed(global_seed)
            results.append(monte_carlo_cosine(grads, 5, draws=40, generator=torch.Generator().manual_seed(7)))
    assert results[0] == results[1]
    other = monte_carlo_cosine(grads, 5, draws=40, generator=torch.Generator().manual_seed(8))
    assert other != results[0]


def test_norm_sq_relative_variance_defaults_to_batches_without_replacement():
    stats = noise_stats_from_grads(_grads())
    without = stats.norm_sq_relative_variance(10, replace=False)
    assert stats.norm_sq_relative_variance(10) == without
    assert stats.norm_sq_relative_variance(10, replace=True) != without  # a finite population: they differ


@pytest.mark.parametrize("ema", [None, 0.75])
def test_noise_scale_meter_averages_numerators_and_denominators_as_documented(ema):
    """Three pairs of batch gradients: the per-pair estimates ``tr = (|g_s|^2 - |g_b|^2) / (1/b_s - 1/b_b)`` and
    ``|g|^2 = (b_b |g_b|^2 - b_s |g_s|^2) / (b_b - b_s)`` averaged plainly, or as a moving average
    ``m <- ema m + (1 - ema) x`` from 0 debiased by ``1 - ema^count`` (exact to rounding)."""
    meter = NoiseScaleMeter(2, 8, ema=ema)
    pairs = [([3.0, 4.0], [1.0, 2.0]), ([2.0, 0.0], [1.0, 1.0]), ([0.0, 5.0], [2.0, 2.0])]
    traces, norms = [], []
    for small, big in pairs:
        meter.update(torch.tensor(small), torch.tensor(big))
        s, b = sum(v * v for v in small), sum(v * v for v in big)
        traces.append((s - b) / (1 / 2 - 1 / 8))
        norms.append((8 * b - 2 * s) / (8 - 2))
    if ema is None:
        trace, norm = sum(traces) / 3, sum(norms) / 3
    else:
        trace = norm = 0.0
        for t, g in zip(traces, norms, strict=True):
            trace, norm = ema * trace + (1 - ema) * t, ema * norm + (1 - ema) * g
        trace, norm = trace / (1 - ema**3), norm / (1 - ema**3)
    assert meter.count == 3
    assert meter.trace_cov == pytest.approx(trace, rel=1e-14)
    assert meter.grad_norm_sq == pytest.approx(norm, rel=1e-14)
    assert meter.noise_scale == pytest.approx(trace / norm, rel=1e-14)


def test_effective_dim_of_small_and_of_no_noise() -> None:
    # four examples 0.01 apart around (0.1, 0): tr(S) = 4/3 1e-4, tr(S^2) = 2 (2/3 1e-4)^2: two equal directions,
    # effective dimension 2 even though tr(S^2) is far below 1; identical examples have no noise: dimension 0
    g = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64) * 0.01
    small = noise_stats_from_grads(g + torch.tensor([0.1, 0.0], dtype=torch.float64))
    assert small.trace_cov_sq < 1e-8
    assert small.effective_dim == pytest.approx(2.0, rel=1e-12)
    assert noise_stats_from_grads(torch.ones(5, 3, dtype=torch.float64)).effective_dim == 0.0


def test_cosine_formula_reliability_is_without_replacement_by_default() -> None:
    # 38 of 40 examples: without replacement |g_b|^2 barely varies (relative variance 0.013), with it 0.20
    stats = noise_stats_from_grads(
        torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.3
    )
    assert stats.cosine_formula_reliable(38)
    assert not stats.cosine_formula_reliable(38, replace=True)


def test_monte_carlo_cosine_with_replacement_draws_from_the_generator_only() -> None:
    grads = torch.randn(30, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)  # the global generator is not the run's
        runs.append(monte_carlo_cosine(grads, 5, draws=20, replace=True, generator=torch.Generator().manual_seed(7)))
    assert runs[0] == runs[1]


def test_monte_carlo_cosine_without_replacement_draws_from_the_generator_only() -> None:
    # 15 of 30 examples: k (k - 1) = 210 > 4 N, the random-keys branch of the uniform subsets
    grads = torch.randn(30, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.5
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        runs.append(monte_carlo_cosine(grads, 15, draws=20, generator=torch.Generator().manual_seed(7)))
    assert runs[0] == runs[1]


def test_zero_gradients_give_no_relative_variance_and_an_infinite_noise_scale() -> None:
    zero = noise_stats_from_grads(torch.zeros(6, 3, dtype=torch.float64))
    assert zero.norm_sq_relative_variance(2) == 0.0  # E|g_b|^2 = 0: nothing to be relative to
    meter = NoiseScaleMeter(2, 4)
    meter.update(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    assert meter.grad_norm_sq == 0.0
    assert meter.noise_scale == math.inf


def test_norm_sq_relative_variance_of_one_example_is_exact() -> None:
    # b = 1 with replacement: g_b is one example z_i drawn uniformly, so v = Var_i |z_i|^2 / (mean_i |z_i|^2)^2
    # exactly; the third-moment term 4 E[(g.xi)|xi|^2] is not small here (the examples are skewed)
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) ** 2 + 0.2
    sq = (z * z).sum(1)
    exact = float(sq.var(unbiased=False) / sq.mean() ** 2)
    assert noise_stats_from_grads(z).norm_sq_relative_variance(1, replace=True) == pytest.approx(exact, rel=1e-12)
