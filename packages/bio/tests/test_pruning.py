"""Synaptic pruning: passage times against the inverse Gaussian, the Wald correction and competition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from noisygrad.bio import RHO, PruningModel, input_covariance, oja_drift, simulate_competition

SIGMAS = [0.5, 1.0, 2.0, 4.0]
TRIALS = 40_000


def model(sigma: float) -> PruningModel:
    # mean passage time (w0 - theta)/(eta kappa) = 80 steps for every sigma
    return PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=sigma)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_sde_passage_time_is_inverse_gaussian(sigma: float) -> None:
    m = model(sigma)
    # time-discretised SDE (grid of one step) with the exact Brownian-bridge crossing law
    t = m.simulate_sde(TRIALS, np.random.default_rng(11), method="bridge", dt=1.0)
    assert np.all(np.isfinite(t))
    # Monte-Carlo error of the mean: sqrt(var/n) = 0.0056% (sigma 0.5) .. 0.045% (sigma 4) of 80 steps,
    # so 1% is more than 20 standard errors.
    assert abs(t.mean() / m.mean_passage_time() - 1) < 0.01
    # relative s.e. of a variance is sqrt((2 + excess kurtosis)/n); the inverse Gaussian's excess kurtosis
    # is 15 mean/shape = 15 eta sigma^2/(kappa (w0 - theta)): 0.5% (sigma 0.5) .. 1.1% (sigma 4) here,
    # so 3% is 2.7 standard errors at sigma = 4 and more elsewhere (the seed is fixed).
    assert abs(t.var(ddof=1) / m.variance_passage_time() - 1) < 0.03
    # scipy's invgauss(mu, scale) has mean mu*scale and shape scale: m/shape and shape here
    law = m.passage_time_distribution()
    assert law.mean() == pytest.approx(m.mean_passage_time())
    assert law.var() == pytest.approx(m.variance_passage_time())
    assert stats.kstest(t, law.cdf).pvalue > 0.01


@pytest.mark.parametrize("sigma", [0.5, 4.0])
def test_exact_sampler_and_coarse_bridge_agree_with_the_law(sigma: float) -> None:
    m = model(sigma)
    law = m.passage_time_distribution()
    exact = m.simulate_sde(TRIALS, np.random.default_rng(3), method="exact")
    # the bridge scheme is exact for any grid: a grid of 20 steps (a quarter of the mean) still fits
    coarse = m.simulate_sde(TRIALS, np.random.default_rng(4), method="bridge", dt=20.0)
    for t in (exact, coarse):
        assert abs(t.mean() - m.mean_passage_time()) < 4 * math.sqrt(m.variance_passage_time() / TRIALS)
        assert stats.kstest(t, law.cdf).pvalue > 0.01


@pytest.mark.parametrize("sigma", SIGMAS)
def test_discrete_walk_mean_exceeds_the_diffusion_by_the_overshoot(sigma: float) -> None:
    m = model(sigma)
    n = TRIALS
    t = m.simulate_walk(n, np.random.default_rng(5))
    predicted = m.discrete_mean_passage_time()
    assert predicted > m.mean_passage_time()
    # acceptance: within 2% of the overshoot-corrected mean; the Monte-Carlo error is
    # sqrt(var/n) = 0.006%..0.045%, so also hold it to 4 standard errors
    assert abs(t.mean() / predicted - 1) < 0.02
    assert abs(t.mean() - predicted) < 4 * t.std(ddof=1) / math.sqrt(n)
    # Siegmund's approximation rho sigma/kappa + 1/4 steps is close to the exact series for kappa <= sigma
    if sigma >= m.kappa:
        assert predicted - m.mean_passage_time() == pytest.approx(RHO * sigma + 0.25, abs=0.05)


def test_overshoot_series_approaches_siegmund_for_small_drift() -> None:
    m = PruningModel(w0=1.0, theta=0.0, eta=1e-3, kappa=1.0, sigma=50.0)
    assert abs(RHO - 0.5825971579390106) < 1e-12  # -zeta(1/2)/sqrt(2 pi)
    # corrections beyond rho sigma + kappa/4 are O(kappa^2/sigma)
    assert m.expected_overshoot() / m.eta == pytest.approx(RHO * 50.0 + 0.25, abs=0.01)


def test_noiseless_walk_is_deterministic() -> None:
    m = PruningModel(w0=1.0, theta=0.25, eta=0.1, kappa=1.0, sigma=0.0)
    t = m.simulate_walk(10, np.random.default_rng(0))
    # 1 - 0.1 n < 0.25 first at n = 8 (0.25 itself is not below theta; float rounding allowed for)
    assert np.all(t == t[0])
    assert t[0] in (7.0, 8.0)
    assert m.discrete_mean_passage_time() in (7.0, 8.0)


def test_censoring_matches_the_survival_function() -> None:
    m = model(2.0)
    horizon = 90.0
    n = 20_000
    t = m.simulate_sde(n, np.random.default_rng(8), method="bridge", dt=1.0, max_time=horizon)
    alive = float(np.isinf(t).mean())
    p = float(m.passage_time_distribution().sf(horizon))
    assert abs(alive - p) < 4 * math.sqrt(p * (1 - p) / n)  # binomial s.e.
    walk = m.simulate_walk(1000, np.random.default_rng(8), max_steps=50)
    assert np.all(np.isinf(walk) | (walk <= 50))


def test_simulation_is_reproducible_from_the_seed() -> None:
    m = model(1.0)
    a = m.simulate_walk(5000, np.random.default_rng(42))
    b = m.simulate_walk(5000, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


def test_competition_keeps_correlated_and_prunes_uncorrelated_inputs() -> None:
    neurons, nc, nu = 600, 5, 15
    result = simulate_competition(neurons, nc, nu, correlation=0.5, steps=1000, rng=np.random.default_rng(2))
    # a surviving weight fluctuates about 1/sqrt(5) with s.d. ~ sqrt(eta E[(y x)^2] / (2 gap)) ~ 0.06, so theta
    # = 0.05 is ~7 s.d. below it: losing 1% of them would need a broken rule, not bad luck; the uncorrelated
    # weights decay at rate ~ 2 eta per step and all cross theta within ~700 of the 1000 steps
    assert result.kept_fraction("correlated") > 0.99
    assert result.kept_fraction("uncorrelated") < 0.01
    kept = result.weights[:, result.correlated]
    # the survivors settle near the principal eigenvector of C, weights 1/sqrt(5) = 0.447
    assert abs(kept.mean() - 1 / math.sqrt(nc)) < 0.05
    expected = oja_drift(np.full(nc + nu, 1 / math.sqrt(nc + nu)), input_covariance(nc, nu, 0.5))
    per_neuron = result.first_step[:, ~result.correlated].mean(axis=1)
    # s.e. over neurons (a neuron's inputs share y, so they are averaged first)
    assert abs(per_neuron.mean() - expected[nc:].mean()) < 4 * per_neuron.std(ddof=1) / math.sqrt(neurons)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": -0.01}, "eta"),
        ({"kappa": -1.0}, "kappa"),
        ({"kappa": 0.0}, "kappa"),
        ({"sigma": -1.0}, "sigma"),
        ({"theta": 1.0}, "theta"),
        ({"theta": 2.0}, "theta"),
        ({"w0": float("nan")}, "w0"),
    ],
)
def test_bad_parameters_name_the_argument(kwargs: dict[str, float], match: str) -> None:
    params = {"w0": 1.0, "theta": 0.2, "eta": 0.01, "kappa": 1.0, "sigma": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        PruningModel(**params)


def test_bad_simulation_arguments_name_the_argument() -> None:
    m = model(1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_synapses"):
        m.simulate_walk(0, rng)
    with pytest.raises(TypeError, match="rng"):
        m.simulate_walk(10, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dt"):
        m.simulate_sde(10, rng, method="bridge", dt=-1.0)
    with pytest.raises(ValueError, match="method"):
        m.simulate_sde(10, rng, method="euler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        model(0.0).passage_time_distribution()
    with pytest.raises(ValueError, match="correlation"):
        simulate_competition(10, 2, 2, correlation=1.5, rng=rng)
    with pytest.raises(ValueError, match="theta"):
        simulate_competition(10, 2, 2, theta=0.9, rng=rng)
