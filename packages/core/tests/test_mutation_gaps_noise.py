"""Noise statistics: behaviours that samples of mutation testing of ``noise/statistics.py`` found unchecked
(tools/mutation.py, issue 18). Exact checks: reproducibility from the generator and documented defaults."""

from __future__ import annotations

import torch

from noisygrad.noise.statistics import monte_carlo_cosine, noise_stats_from_grads


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
