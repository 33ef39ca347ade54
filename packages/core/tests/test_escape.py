"""Escape and flat minima under Langevin noise (the continuous picture of SGD at temperature T).

1000 chains of x <- x - h U'(x) + sqrt(2 h T) xi run side by side. Tolerances: 4 Monte-Carlo standard errors
(spread of the per-chain values over sqrt(chains)) plus the time-discretisation bias of h = 0.01, measured at
under 3% for these settings (stated at each check).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import torch

from noisygrad.noise.theory import mean_first_passage_time

H, CHAINS = 0.01, 1000


def tilted_double_well(x: float) -> float:
    """Minima near -1.07 (deeper) and 0.91 (shallower), barrier top at 0.154."""
    return x**4 / 4 - x**2 / 2 + 0.15 * x


def _escape_times(start: float, end: float, temperature: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.full((CHAINS,), start, dtype=torch.float64)
    hit = torch.full((CHAINS,), math.nan, dtype=torch.float64)
    step = 0
    while bool(hit.isnan().any()):
        step += 1
        x = (
            x
            - H * (x**3 - x + 0.15)
            + math.sqrt(2 * H * temperature) * torch.randn(CHAINS, generator=gen, dtype=torch.float64)
        )
        hit = torch.where(hit.isnan() & (x >= end), torch.tensor(step * H, dtype=torch.float64), hit)
    return hit


@pytest.mark.slow
def test_escape_time_from_the_deep_well_matches_the_exact_formula_and_falls_with_temperature() -> None:
    a, b, _ = sorted(np.roots([1, 0, -1, 0.15]).real)
    end = b + 0.3  # absorb past the barrier top: discrete steps do not skip the crossing
    times = {}
    for temperature in (0.15, 0.25):
        hit = _escape_times(a, end, temperature, seed=60)
        predicted = mean_first_passage_time(tilted_double_well, a, end, temperature)
        se = float(hit.std()) / math.sqrt(CHAINS)
        assert abs(float(hit.mean()) - predicted) <= 4 * se + 0.03 * predicted, (temperature, hit.mean(), predicted)
        times[temperature] = predicted
    # Kramers: tau ~ exp(Delta U / T); the exact ratio is within 25% of the Arrhenius factor here
    barrier = tilted_double_well(b) - tilted_double_well(a)
    arrhenius = math.exp(barrier * (1 / 0.15 - 1 / 0.25))
    assert times[0.15] / times[0.25] == pytest.approx(arrhenius, rel=0.25)


def test_noise_prefers_the_flatter_of_two_equally_deep_minima() -> None:
    # U = min(k1 (x+1)^2, k2 (x-1)^2) / 2 with k1 = 1 (flat) and k2 = 9 (sharp): same depth 0, Boltzmann weight
    # of each well ~ sqrt(2 pi T / k): the flat well holds ~3x the sharp one's share.
    k1, k2, temperature = 1.0, 9.0, 0.3
    cusp = 0.5  # sqrt(k1) (x + 1) = sqrt(k2) (1 - x)

    def weight(lo: float, hi: float, k: float, centre: float) -> float:
        return scipy.integrate.quad(lambda x: math.exp(-k * (x - centre) ** 2 / (2 * temperature)), lo, hi)[0]

    flat, sharp = weight(-np.inf, cusp, k1, -1.0), weight(cusp, np.inf, k2, 1.0)
    predicted = flat / (flat + sharp)
    gen = torch.Generator().manual_seed(61)
    x = torch.where(torch.arange(CHAINS) % 2 == 0, -1.0, 1.0).to(torch.float64)
    in_flat = torch.zeros(CHAINS, dtype=torch.float64)
    burn_in, samples = 4000, 8000
    for step in range(burn_in + samples):
        grad = torch.where(x < cusp, k1 * (x + 1), k2 * (x - 1))
        x = x - H * grad + math.sqrt(2 * H * temperature) * torch.randn(CHAINS, generator=gen, dtype=torch.float64)
        if step >= burn_in:
            in_flat += (x < cusp).to(torch.float64)
    share = in_flat / samples
    se = float(share.std()) / math.sqrt(CHAINS)
    assert predicted > 0.7  # the flat well holds most of the mass
    assert abs(float(share.mean()) - predicted) <= 4 * se + 0.02, (share.mean(), predicted, se)
