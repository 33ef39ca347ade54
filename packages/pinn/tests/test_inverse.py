"""The inverse problem with noisy measurements: its closed forms, its builder, ``fit``, and the experiment
(seed 0 in the default run, seeds 0-9 in the slow one)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad.pinn import inverse as inv
from noisygrad.pinn.inverse_experiment import inverse_noisy_data
from noisygrad.pinn.problems import default_float


def test_relative_noise_is_level_times_rms():
    u = np.array([3.0, -4.0])
    out = inv.relative_noise(u, 0.1, [1.0, -2.0])
    np.testing.assert_allclose(out, u + 0.1 * math.sqrt(12.5) * np.array([1.0, -2.0]), rtol=1e-15)
    np.testing.assert_array_equal(inv.relative_noise(u, 0.0, [5.0, 5.0]), u)


def test_least_squares_recovers_the_coefficient_from_exact_data():
    x = np.linspace(0.05, 0.95, 7)
    assert inv.least_squares_coefficient(x, np.sin(np.pi * x) / 1.7) == pytest.approx(1.7, rel=1e-14)
    assert inv.least_squares_coefficient(x[:, None], 2 * np.sin(np.pi * x[:, None])) == pytest.approx(0.5, rel=1e-14)


def test_noise_limited_sd_is_the_cramer_rao_bound_and_the_least_squares_spread():
    """sd = C sigma / sqrt(m) equals the Cramer-Rao bound C^2 sigma_abs / sqrt(sum s^2) for any points, and the
    spread of the least-squares estimate over 4000 noise draws."""
    rng = np.random.default_rng(7)
    c, level, m = 1.3, 0.1, 10
    x = np.sort(rng.uniform(0.02, 0.98, m))
    exact = np.sin(np.pi * x) / c
    sigma_abs = level * math.sqrt(np.mean(exact**2))
    cramer_rao = c**2 * sigma_abs / math.sqrt(np.sum(np.sin(np.pi * x) ** 2))
    assert inv.noise_limited_sd(c, level, m) == pytest.approx(cramer_rao, rel=1e-12)
    draws = 4000
    estimates = np.array(
        [
            inv.least_squares_coefficient(x, inv.relative_noise(exact, level, rng.standard_normal(m)))
            for _ in range(draws)
        ]
    )
    sd = inv.noise_limited_sd(c, level, m)
    # a sample sd has standard error sd / sqrt(2 (n - 1)) = 1.1% here; 4 of them, plus 0.5% for the delta method's
    # neglected second order (relative sd^2 / C^2 ~ 1e-3 at this level)
    assert estimates.std(ddof=1) == pytest.approx(sd, rel=4 / math.sqrt(2 * (draws - 1)) + 0.005)
    # the mean is C to first order: 4 standard errors sd / sqrt(n), plus the second-order bias ~ sd^2 / C
    assert abs(estimates.mean() - c) <= 4 * sd / math.sqrt(draws) + 2 * sd**2 / c


def test_evaluations_to_is_the_settling_count():
    counts = [1, 2, 3, 4, 5]
    values = [2.0, 1.5, 1.005, 0.98, 1.001]
    assert inv.evaluations_to(counts, values, 1.0, 0.01) == 5
    assert inv.evaluations_to(counts, values, 1.0, 1.5) == 1
    assert inv.evaluations_to(counts[:4], values[:4], 1.0, 0.01) == math.inf
    with pytest.raises(ValueError, match="same length"):
        inv.evaluations_to(counts, values[:3], 1.0, 0.01)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="level"):
        inv.relative_noise([1.0], -0.1, [0.0])
    with pytest.raises(ValueError, match="normal"):
        inv.relative_noise([1.0, 2.0], 0.1, [0.0])
    with pytest.raises(ValueError, match="x and y"):
        inv.least_squares_coefficient([0.5, 0.6], [1.0])
    with pytest.raises(ValueError, match="correlate"):
        inv.least_squares_coefficient([0.5], [-1.0])
    with pytest.raises(ValueError, match="observations"):
        inv.noise_limited_sd(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="rng"):
        inv.poisson_inverse(level=0.1)
    with pytest.raises(TypeError, match="rng"):
        inv.poisson_inverse(level=0.1, rng=3)
    with pytest.raises(ValueError, match="init_seed"):
        inv.poisson_inverse(init_seed=-1)
    with pytest.raises(ValueError, match="layers"):
        inv.poisson_inverse(layers=())
    with pytest.raises(TypeError, match="problem"):
        inv.fit("model", "adam", evaluations=10)


def _tiny(level: float = 0.0, seed: int = 1) -> inv.InverseProblem:
    return inv.poisson_inverse(
        level=level, rng=np.random.default_rng(seed), init_seed=3, num_domain=12, layers=(8, 8), observations=6
    )


def test_poisson_inverse_is_deterministic_and_leaves_global_random_state_alone():
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002 (the global one)
    with default_float("float64"):
        a, b = _tiny(0.1), _tiny(0.1)
        half = _tiny(0.05)
        exact = _tiny(0.0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])  # noqa: NPY002
    assert all(torch.equal(p, q) for p, q in zip(a.model.net.parameters(), b.model.net.parameters(), strict=True))
    assert a.variable.dtype == torch.float64
    assert a.value == 2.0
    np.testing.assert_array_equal(a.observe_y, b.observe_y)
    np.testing.assert_allclose(a.observe_x[:, 0], np.arange(1, 7) / 7)
    # the same draws at every level (common random numbers): the noise halves with the level
    np.testing.assert_allclose(half.observe_y - half.observe_exact, (a.observe_y - a.observe_exact) / 2, rtol=1e-12)
    np.testing.assert_array_equal(exact.observe_y, exact.observe_exact)
    assert exact.least_squares == pytest.approx(1.0, rel=1e-14)
    assert exact.noise_limited_sd == 0.0
    assert a.least_squares == inv.least_squares_coefficient(a.observe_x, a.observe_y)
    assert a.noise_limited_sd == pytest.approx(0.1 / math.sqrt(6))


def test_fit_spends_its_budget_of_evaluations():
    with default_float("float64"):
        adam = inv.fit(_tiny(), "adam", evaluations=30, lr=1e-2)
        lbfgs_problem = _tiny()
        lbfgs = inv.fit(lbfgs_problem, "lbfgs", evaluations=60)
        both = inv.fit(_tiny(), "adam+lbfgs", evaluations=40, warmup=10)
        with pytest.raises(ValueError, match="warmup"):
            inv.fit(_tiny(), "adam+lbfgs", evaluations=40, warmup=40)
        with pytest.raises(ValueError, match="method"):
            inv.fit(_tiny(), "sgd", evaluations=40)
    assert adam.evaluations == 30
    assert adam.trace_evaluations.tolist() == list(range(1, 31))
    assert adam.phases[0].iterations == 30
    # L-BFGS stops at the end of the chunk (10 iterations, at most 25 evaluations) that reaches the budget
    assert 60 <= lbfgs.evaluations < 60 + 25
    assert lbfgs.evaluations == lbfgs.phases[0].evaluations
    assert np.all(np.diff(lbfgs.trace_evaluations) > 0)
    assert lbfgs.value == lbfgs_problem.value == lbfgs.trace_values[-1] != 2.0
    assert both.trace_evaluations[:10].tolist() == list(range(1, 11))
    assert 40 <= both.evaluations == 10 + both.phases[1].evaluations < 40 + 25
    assert [p.optimizer for p in both.phases] == ["adam", "lbfgs"]


def test_experiment_seed_0():
    findings = inverse_noisy_data(seed=0, quick=True)
    assert len(findings) == 1 + 3 + 3 + 1  # speed, exact data x 3, 10% noise x 3, agreement
    failed = [(f.claim, f.measured, f.predicted, f.tolerance) for f in findings if not f.passed]
    assert not failed


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_experiment_passes_for_seeds_0_to_9(seed):
    findings = inverse_noisy_data(seed=seed, quick=True)
    failed = [(f.claim, f.measured, f.predicted, f.tolerance) for f in findings if not f.passed]
    assert not failed
