"""Noise statistics: behaviours that the full mutation run of ``noise/statistics.py`` found unchecked
(tools/mutation.py, issue 18).

Exact checks (closed forms evaluated by hand, documented boundaries, refused inputs), plus one Monte-Carlo check
against the exact mean over every subset, with its tolerance from the Monte-Carlo standard error.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from noisygrad import FiniteSum
from noisygrad.noise import statistics
from noisygrad.noise.statistics import (
    NoiseScaleMeter,
    gradient_noise,
    monte_carlo_cosine,
    noise_stats_from_grads,
    predicted_cosine,
)


def _grads(n: int, d: int, shift: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) + shift * torch.ones(d, dtype=torch.float64) / d**0.5


@pytest.mark.parametrize(
    ("n_examples", "replace", "noise"),
    [(None, False, 2.0 / 4), (10, True, 2.0 * 9 / 40), (10, False, 2.0 * (1 / 4 - 1 / 10))],
)
def test_predicted_cosine_is_the_documented_law(n_examples: int | None, replace: bool, noise: float) -> None:
    """``(1 + rho * noise factor)^(-1/2)`` at rho = 2, b = 4: ``1/b`` for an infinite population, ``(N - 1)/(N b)``
    with replacement, ``1/b - 1/N`` without."""
    assert predicted_cosine(2.0, 4, n_examples, replace=replace) == pytest.approx(1 / math.sqrt(1 + noise), rel=1e-15)


def test_predicted_cosine_of_no_diversity_is_one() -> None:
    """rho = 0 (every example has the mean gradient) is allowed: the batch gradient is the gradient."""
    assert predicted_cosine(0.0, 3) == 1.0


def test_noise_stats_are_frozen() -> None:
    stats = noise_stats_from_grads(_grads(6, 2, 1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.trace_cov = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize(("d", "shift"), [(2, 3.0), (8, 0.3)])
def test_cosine_formula_reliability_judges_the_scheme_it_is_asked_about(replace: bool, d: int, shift: float) -> None:
    """At every batch size of 10 examples, the verdict is the docstring's, computed in the sampling scheme asked
    for: the relative variance of ``|g_b|^2`` at most 0.3 and (first order) agreement with the second order to
    0.5%. These two data sets hold batch sizes where the verdict of one scheme differs from a mix of the two."""
    stats = noise_stats_from_grads(_grads(10, d, shift))
    for b in range(1, 10):
        small = stats.norm_sq_relative_variance(b, replace=replace) <= 0.3
        first = stats.predicted_cosine(b, replace=replace)
        second = stats.predicted_cosine(b, replace=replace, order=2)
        agree = abs(first / second - 1) <= 0.005
        assert stats.cosine_formula_reliable(b, replace=replace, order=2) is small
        assert stats.cosine_formula_reliable(b, replace=replace) is (small and agree)


def test_cosine_formula_reliability_includes_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "At most" the relative-variance bound and "to" the agreement bound: a value exactly at either is reliable."""
    stats = noise_stats_from_grads(_grads(10, 8, 0.3))
    b = 9
    monkeypatch.setattr(statistics, "COSINE_MAX_RELATIVE_VARIANCE", stats.norm_sq_relative_variance(b))
    assert stats.cosine_formula_reliable(b, order=2)
    agreement = abs(stats.predicted_cosine(b) / stats.predicted_cosine(b, order=2) - 1)
    monkeypatch.setattr(statistics, "COSINE_FIRST_ORDER_AGREEMENT", agreement)
    assert stats.cosine_formula_reliable(b)


def test_noise_stats_of_scalar_per_example_gradients() -> None:
    """A 1-D tensor is N scalar gradients: mean 2, (N - 1)-normalised variance 1."""
    stats = noise_stats_from_grads(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert stats.grad_norm_sq == 4.0
    assert stats.trace_cov == 1.0
    assert stats.trace_cov_sq == 1.0


@pytest.mark.parametrize("value", [torch.tensor(1.0), [[1.0, 2.0], [3.0, 4.0]]])
def test_noise_stats_refuse_a_scalar_tensor_and_a_list(value: object) -> None:
    with pytest.raises(TypeError, match=r"^per_example_grads must be a tensor of shape \(N, \.\.\.\)"):
        noise_stats_from_grads(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "indices", [torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]]), torch.tensor([0, 1], dtype=torch.int16)]
)
def test_gradient_noise_refuses_indices_that_are_not_a_1d_int32_or_int64_tensor(indices: torch.Tensor) -> None:
    objective = FiniteSum(lambda w, x: (w * x).sum(1).mean(), torch.ones(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^indices must be a 1-D integer tensor"):
        gradient_noise(objective, torch.zeros(2, dtype=torch.float64), indices)


def test_monte_carlo_cosine_matches_the_exact_mean_over_every_subset() -> None:
    """Pairs of distinct rows of 4, drawn one batch per chunk (``chunk=1``, so each batch's redraw runs alone):
    the mean cosine agrees with the exact mean over the 6 pairs within 4 of its standard errors (about 0.0034). A
    "pair" with a repeated row (one row: cosine 0.08-0.93, against 0.57-1.00 for distinct pairs) in a quarter of the
    draws would move the mean by 0.068, about 20 standard errors."""
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    full = grads.mean(0)
    exact = sum(
        float(torch.nn.functional.cosine_similarity(grads[list(pair)].mean(0), full, dim=0))
        for pair in itertools.combinations(range(4), 2)
    ) / math.comb(4, 2)
    mean, stderr = monte_carlo_cosine(grads, 2, draws=2000, generator=torch.Generator().manual_seed(0), chunk=1)
    assert abs(mean - exact) < 4 * stderr
    assert stderr < 0.005


def test_monte_carlo_cosine_takes_exactly_draws_batches_whatever_the_chunk() -> None:
    """``chunk`` only bounds memory: with replacement the same ``draws`` batches come out of the generator in any
    chunking, so the estimate is the same to the bit."""
    grads = _grads(50, 4, 1.0)
    results = {
        chunk: monte_carlo_cosine(
            grads, 5, draws=2500, generator=torch.Generator().manual_seed(1), replace=True, chunk=chunk
        )
        for chunk in (1000, 2500, 7)
    }
    assert results[1000] == results[2500] == results[7]


def test_monte_carlo_cosine_takes_two_draws() -> None:
    """Two draws, the fewest that give a standard error, give a finite one from both batches."""
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    mean, stderr = monte_carlo_cosine(grads, 1, draws=2, generator=torch.Generator().manual_seed(0), replace=True)
    rows = torch.randint(3, (2, 1), generator=torch.Generator().manual_seed(0))[:, 0]
    cosines = torch.nn.functional.cosine_similarity(grads[rows], grads.mean(0).expand(2, 2), dim=1)
    assert mean == pytest.approx(float(cosines.mean()), rel=1e-15)
    assert stderr == pytest.approx(float(cosines.std()) / math.sqrt(2), rel=1e-12, abs=1e-300)
    assert math.isfinite(stderr)


def test_noise_scale_meter_takes_the_whole_population_as_its_big_batch() -> None:
    """``b_big = n_examples`` is allowed: the big batch is the full gradient, and ``tr(S)`` comes out exactly
    ``(|g_small|^2 - |g|^2) / (1/b_small - 1/N)``."""
    meter = NoiseScaleMeter(2, 8, n_examples=8)
    meter.update(torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert meter.trace_cov == pytest.approx((9.0 - 1.0) / (1 / 2 - 1 / 8), rel=1e-15)


@pytest.mark.parametrize("ema", [0.0, 1.0, 1.5])
def test_noise_scale_meter_refuses_a_decay_outside_the_open_unit_interval(ema: float) -> None:
    with pytest.raises(ValueError, match=r"^ema must lie in \(0\.0, 1\.0\)"):
        NoiseScaleMeter(2, 8, ema=ema)


def test_noise_scale_meter_state_round_trips_fresh_and_after_updates() -> None:
    """A fresh meter's state (count 0) loads, and so does one after updates, which then reads the same estimates."""
    fresh = NoiseScaleMeter(2, 8)
    fresh.load_state_dict(NoiseScaleMeter(2, 8).state_dict())
    assert fresh.count == 0
    meter = NoiseScaleMeter(2, 8, ema=0.5)
    for scale in (1.0, 2.0, 3.0):
        meter.update(torch.tensor([scale, 1.0]), torch.tensor([1.0, 0.5]))
    copy = NoiseScaleMeter(2, 8, ema=0.5)
    copy.load_state_dict(meter.state_dict())
    assert copy.count == 3
    assert (copy.trace_cov, copy.grad_norm_sq) == (meter.trace_cov, meter.grad_norm_sq)
