"""Escape times (noisygrad.noise.escape) and the core.escape experiment.

The theory functions are held to closed forms (pure diffusion with a position-dependent D(x), Laplace's first
correction to Kramers' law, a separable 2-D well, chains whose every step is known) and to each other; the
tolerances are the quadrature or grid error, said at each check. The estimator is held to a geometric law whose
mean is known, within 4 Monte-Carlo standard errors. The experiment must pass at seed 0 (default run) and at
seeds 0-9 (slow).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad.noise.escape import (
    EscapeTimes,
    chain_mean_first_passage_time,
    diffusion_mean_first_passage_time,
    first_passage_times,
    kramers_escape_time,
    langer_escape_time,
    langevin_mean_first_passage_time_2d,
)
from noisygrad.noise.theory import mean_first_passage_time
from noisygrad.tour.experiments.escape import (
    BARRIER,
    END,
    SADDLE,
    WELL,
    escape,
    gradient,
    potential,
)

F64 = torch.float64


def constant(value: float):  # type: ignore[no-untyped-def]
    return lambda x: np.full_like(np.asarray(x, dtype=np.float64), value)


# ---------------------------------------------------------------- the 1-D MFPT with D(x)


@pytest.mark.parametrize("temperature", [0.03, 0.05, 0.2])
def test_diffusion_mfpt_with_constant_d_is_the_langevin_integral(temperature: float) -> None:
    # the same double integral by adaptive quadrature (theory.py): the trapezoid grid is good to ~1e-7
    grid = diffusion_mean_first_passage_time(gradient, constant(temperature), WELL, END, lower=-2.5)
    quad = mean_first_passage_time(potential, WELL, END, temperature)
    assert grid == pytest.approx(quad, rel=1e-6)


def test_diffusion_mfpt_of_pure_diffusion_with_position_dependent_d() -> None:
    # dx = sqrt(2 D(x)) dW, D = 1 + x, reflecting at 0: D tau'' = -1, tau = [(1 + y) ln(1 + y) - y] from x0 to L
    def primitive(y: float) -> float:
        return (1 + y) * math.log1p(y) - y

    x0, length = 0.3, 2.0
    tau = diffusion_mean_first_passage_time(constant(0.0), lambda x: 1 + np.asarray(x), x0, length, lower=0.0)
    assert tau == pytest.approx(primitive(length) - primitive(x0), rel=1e-6)
    # and with constant D the classic (L^2 - x0^2) / (2 D)
    tau = diffusion_mean_first_passage_time(constant(0.0), constant(0.5), x0, length, lower=0.0)
    assert tau == pytest.approx((length**2 - x0**2) / (2 * 0.5), rel=1e-6)


def test_diffusion_mfpt_accepts_scalar_only_callables_and_survives_deep_wells() -> None:
    vectorised = diffusion_mean_first_passage_time(gradient, constant(0.05), WELL, END, lower=-2.5, points=2001)
    scalar = diffusion_mean_first_passage_time(
        lambda x: float(x) ** 3 - float(x) - 0.15, lambda x: 0.05, WELL, END, lower=-2.5, points=2001
    )
    assert scalar == pytest.approx(vectorised, rel=1e-12)
    # Delta U / T = 200: exp(200) overflows nothing (log-space sums), and Kramers is within its O(T) correction
    cold = BARRIER / 200
    tau = diffusion_mean_first_passage_time(gradient, constant(cold), WELL, END, lower=-2.5)
    assert math.isfinite(tau)
    assert tau == pytest.approx(kramers_escape_time(gradient, constant(cold), WELL, SADDLE), rel=5 * cold)


# ---------------------------------------------------------------- Kramers and Langer


def test_kramers_approaches_the_exact_mfpt_with_laplaces_first_correction() -> None:
    # tau / tau_Kramers - 1 = c1 T + O(T^2), with c1 the first term of Laplace's expansion at both extrema:
    # 5 U'''^2 / (24 U''^3) - U'''' / (8 U''^2) at the minimum, and the same for -U at the barrier top
    k_a, k_b = 3 * WELL**2 - 1, 3 * SADDLE**2 - 1
    c1 = (
        5 * (6 * WELL) ** 2 / (24 * k_a**3)
        - 6 / (8 * k_a**2)
        + 5 * (6 * SADDLE) ** 2 / (24 * -(k_b**3))
        + 6 / (8 * k_b**2)
    )
    slopes = []
    for ratio in (20, 40):
        t = BARRIER / ratio
        exact = diffusion_mean_first_passage_time(gradient, constant(t), WELL, END, lower=-2.5)
        slopes.append((exact / kramers_escape_time(gradient, constant(t), WELL, SADDLE) - 1) / t)
    assert slopes[1] == pytest.approx(c1, rel=0.05)  # O(T) remainder: 6% at Delta U / T = 20, 3% at 40 (measured)
    assert abs(slopes[1] - c1) < abs(slopes[0] - c1)


def test_kramers_with_position_dependent_d_tends_to_the_exact_mfpt() -> None:
    errors = []
    for scale in (0.02, 0.01, 0.005):

        def diffusion(x, s=scale):  # type: ignore[no-untyped-def]
            return s * (1 + np.asarray(x) ** 2)

        exact = diffusion_mean_first_passage_time(gradient, diffusion, WELL, END, lower=-2.5)
        errors.append(kramers_escape_time(gradient, diffusion, WELL, SADDLE) / exact - 1)
    # the relative error is O(D / Delta U): halving D halves it (within 10%)
    assert errors[1] / errors[0] == pytest.approx(0.5, rel=0.1)
    assert errors[2] / errors[1] == pytest.approx(0.5, rel=0.1)


def test_kramers_escape_from_the_right_of_the_saddle() -> None:
    # the deep well lies to the right of the saddle: the exponent int_a^b U'/T is then U(b) - U(a) > 0
    deep = max(np.roots([1.0, 0.0, -1.0, -0.15]).real)
    t = 0.1
    k_a, k_b = 3 * deep**2 - 1, 3 * SADDLE**2 - 1
    expected = 2 * math.pi / math.sqrt(k_a * -k_b) * math.exp((potential(SADDLE) - potential(deep)) / t)
    assert kramers_escape_time(gradient, constant(t), deep, SADDLE) == pytest.approx(expected, rel=1e-6)


def test_langer_is_kramers_in_one_dimension_and_invariant_under_rotation() -> None:
    k_a, k_b, t = 3 * WELL**2 - 1, 3 * SADDLE**2 - 1, 0.04
    kramers = 2 * math.pi / math.sqrt(k_a * -k_b) * math.exp(BARRIER / t)
    assert langer_escape_time(k_a, k_b, BARRIER, t) == pytest.approx(kramers, rel=1e-12)
    assert kramers_escape_time(gradient, constant(t), WELL, SADDLE) == pytest.approx(kramers, rel=1e-6)
    # a transverse direction of stiffness 4 at the minimum and 1 at the saddle: twice as fast (wider gateway)
    h_a, h_s = np.diag([k_a, 4.0]), np.diag([k_b, 1.0])
    assert langer_escape_time(h_a, h_s, BARRIER, t) == pytest.approx(kramers / 2, rel=1e-12)
    q = np.array([[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]])
    rotated = langer_escape_time(q @ h_a @ q.T, q @ h_s @ q.T, BARRIER, t)
    assert rotated == pytest.approx(kramers / 2, rel=1e-12)


# ---------------------------------------------------------------- the discrete-time chain


def test_chain_mfpt_of_chains_whose_steps_are_known() -> None:
    # every step jumps past the boundary: one step
    assert chain_mean_first_passage_time(lambda x: x + 10.0, constant(0.01), 0.0, 1.0, lower=-1.0) == pytest.approx(
        1.0, abs=1e-9
    )
    # a huge kick: half the steps leave upwards, half land on the reflecting wall: 2 steps on average
    assert chain_mean_first_passage_time(lambda x: x, constant(1e5), 0.0, 1.0, lower=-1.0) == pytest.approx(
        2.0, rel=1e-4
    )


def test_chain_mfpt_tends_to_the_ito_mfpt_at_small_steps() -> None:
    # Euler-Maruyama of dx = -U' dt + sqrt(2 D(x)) dW, D = 0.04 (1 + x^2): the gap closes linearly in dt
    def diffusion(x):  # type: ignore[no-untyped-def]
        return 0.04 * (1 + np.asarray(x) ** 2)

    exact = diffusion_mean_first_passage_time(gradient, diffusion, WELL, END, lower=-2.5)
    gaps = []
    for dt in (0.1, 0.05, 0.025):
        steps = chain_mean_first_passage_time(
            lambda x, dt=dt: x - dt * gradient(x),
            lambda x, dt=dt: np.sqrt(2 * diffusion(x) * dt),
            WELL,
            END,
            lower=-2.5,
        )
        gaps.append(dt * steps / exact - 1)
    assert abs(gaps[2]) < 0.01
    assert gaps[1] / gaps[0] == pytest.approx(0.5, abs=0.1)
    assert gaps[2] / gaps[1] == pytest.approx(0.5, abs=0.1)


def test_chain_mfpt_matches_simulated_sgld_at_a_large_step() -> None:
    # SGLD at lr U''(a) = 0.75, Delta U / T = 1.5, 4000 chains: 4 s.e. of the sample mean
    lr, t, chains = 0.5, BARRIER / 1.5, 4000
    gen = torch.Generator().manual_seed(5)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return x - lr * gradient(x) + math.sqrt(2 * lr * t) * torch.randn(x.shape, generator=gen, dtype=F64)

    times = first_passage_times(step, torch.full((chains,), WELL, dtype=F64), lambda x, _: x >= END, max_steps=5000)
    est = times.estimate()
    assert est.censored_fraction == 0.0
    predicted = chain_mean_first_passage_time(
        lambda x: x - lr * gradient(x), constant(math.sqrt(2 * lr * t)), WELL, END, lower=-2.5
    )
    assert abs(est.mean - predicted) <= 4 * est.standard_error
    continuous = diffusion_mean_first_passage_time(gradient, constant(t), WELL, END, lower=-2.5) / lr
    assert abs(est.mean - continuous) > 4 * est.standard_error  # the continuous limit misses at this step


# ---------------------------------------------------------------- 2-D backward equation


def test_grid_mfpt_of_a_separable_well_is_the_one_dimensional_integral() -> None:
    # U(x, y) = U(x) + y^2: crossing x = END depends on x alone; extrapolated grid error ~2e-5 (measured)
    t = BARRIER / 2
    one_d = diffusion_mean_first_passage_time(gradient, constant(t), WELL, END, lower=-2.5)
    two_d = langevin_mean_first_passage_time_2d(
        lambda x, y: potential(x) + y * y, t, (WELL, 0.1), END, lower=-2.2, y_range=(-1.2, 1.2)
    )
    assert two_d == pytest.approx(one_d, rel=2e-4)


# ---------------------------------------------------------------- the estimator


def _geometric(p: float, chains: int, max_steps: int, seed: int) -> EscapeTimes:
    """Chains that cross with probability ``p`` at each step: geometric times of mean ``1 / p``."""
    gen = torch.Generator().manual_seed(seed)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return x + (torch.rand(x.shape, generator=gen, dtype=F64) < p).to(F64)

    return first_passage_times(step, torch.zeros(chains, dtype=F64), lambda x, _: x >= 1, max_steps=max_steps)


def test_estimate_without_censoring_is_the_sample_mean() -> None:
    times = _geometric(0.02, 3000, 2000, seed=1)  # P(tau > 2000) = 0.98^2000 ~ 3e-18
    est = times.estimate(time_per_step=0.5)
    assert est.censored_fraction == 0.0
    assert est.tail_events == 0
    assert est.mean == pytest.approx(0.5 * times.steps.mean(), rel=1e-12)
    assert est.standard_error == pytest.approx(0.5 * times.steps.std(ddof=1) / math.sqrt(3000), rel=1e-12)
    assert abs(est.mean - 0.5 / 0.02) <= 4 * est.standard_error


def test_estimate_extrapolates_a_censored_exponential_tail_without_bias() -> None:
    # a budget of 1.5 means censors e^-1.5 = 22%: the restricted mean is 22% low, the estimate is not
    times = _geometric(0.02, 4000, 75, seed=2)
    est = times.estimate()
    assert 0.15 < est.censored_fraction < 0.3
    assert est.tail_events > 100
    assert abs(est.mean - 50.0) <= 4 * est.standard_error
    restricted = times.steps.mean()
    assert 50.0 - restricted > 10 * est.standard_error


def test_estimate_over_many_seeds_has_the_stated_spread() -> None:
    # 40 censored runs: their z-scores have mean ~0 and s.d. ~1 (the standard error is honest)
    z = []
    for seed in range(40):
        est = _geometric(0.05, 400, 30, seed=100 + seed).estimate()  # 21% censored
        z.append((est.mean - 20.0) / est.standard_error)
    assert abs(float(np.mean(z))) < 4 / math.sqrt(40)
    assert 0.7 < float(np.std(z, ddof=1)) < 1.3  # the s.d. of 40 unit normals is within 1 +- 0.3 w.p. > 0.99


def test_estimate_with_censoring_and_no_tail_crossings_is_infinite() -> None:
    times = EscapeTimes(np.array([3, 10, 10]), np.array([False, True, True]), 10)
    assert math.isinf(times.estimate().mean)


def test_first_passage_times_pass_rows_for_per_chain_parameters_and_select() -> None:
    speeds = torch.tensor([1.0, 2.0, 5.0], dtype=F64)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return x + speeds[rows]

    times = first_passage_times(step, torch.zeros(3, dtype=F64), lambda x, _: x >= 10, max_steps=8)
    assert times.steps.tolist() == [8, 5, 2]
    assert times.censored.tolist() == [True, False, False]
    assert times.censored_fraction == pytest.approx(1 / 3)
    assert times.select(torch.tensor([1, 2])).steps.tolist() == [5, 2]
    assert times.select(np.array([True, False, True])).censored.tolist() == [True, False]
    two_d = first_passage_times(
        lambda xy, rows: xy + 1.0, torch.zeros(4, 2, dtype=F64), lambda xy, _: xy[:, 0] >= 3, max_steps=10
    )
    assert two_d.steps.tolist() == [3, 3, 3, 3]


# ---------------------------------------------------------------- errors name the argument


def test_bad_input_raises_errors_that_name_the_argument() -> None:
    with pytest.raises(ValueError, match="start past the boundary"):
        first_passage_times(lambda x, r: x, torch.ones(3, dtype=F64), lambda x, _: x >= 0.5, max_steps=5)
    with pytest.raises(ValueError, match="step must return"):
        first_passage_times(lambda x, r: x[:1], torch.zeros(3, dtype=F64), lambda x, _: x >= 0.5, max_steps=5)
    with pytest.raises(ValueError, match="crossed must return"):
        first_passage_times(lambda x, r: x, torch.zeros(3, dtype=F64), lambda x, _: x[:1] >= 1, max_steps=5)
    with pytest.raises(ValueError, match="max_steps"):
        first_passage_times(lambda x, r: x, torch.zeros(3, dtype=F64), lambda x, _: x >= 1, max_steps=0)
    with pytest.raises(ValueError, match="time_per_step"):
        EscapeTimes(np.array([1, 2]), np.array([False, False]), 5).estimate(time_per_step=0.0)
    with pytest.raises(ValueError, match="lower < start < end"):
        diffusion_mean_first_passage_time(gradient, constant(0.1), 0.6, END, lower=-2.5)
    with pytest.raises(ValueError, match="diffusion must be > 0"):
        diffusion_mean_first_passage_time(gradient, constant(0.0), WELL, END, lower=-2.5)
    with pytest.raises(TypeError, match="grad must be callable"):
        diffusion_mean_first_passage_time(3.0, constant(0.1), WELL, END, lower=-2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step_std must be > 0"):
        chain_mean_first_passage_time(lambda x: x, constant(-1.0), 0.0, 1.0, lower=-1.0)
    with pytest.raises(ValueError, match="use diffusion_mean_first_passage_time"):
        chain_mean_first_passage_time(lambda x: x, constant(1e-5), 0.0, 1.0, lower=-1.0)
    with pytest.raises(ValueError, match="points must be odd"):
        chain_mean_first_passage_time(lambda x: x, constant(0.1), 0.0, 1.0, lower=-1.0, points=400)
    with pytest.raises(ValueError, match="saddle must be a barrier top"):
        kramers_escape_time(gradient, constant(0.1), WELL, WELL + 0.1)
    with pytest.raises(ValueError, match="minimum must be a minimum"):
        kramers_escape_time(gradient, constant(0.1), SADDLE, WELL)
    with pytest.raises(ValueError, match="hessian_minimum must be positive definite"):
        langer_escape_time(np.diag([1.0, -1.0]), np.diag([-1.0, 1.0]), 1.0, 0.1)
    with pytest.raises(ValueError, match="exactly one negative eigenvalue"):
        langer_escape_time(np.eye(2), -np.eye(2), 1.0, 0.1)
    with pytest.raises(ValueError, match="must match"):
        langer_escape_time(np.eye(2), -1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="temperature"):
        langer_escape_time(1.0, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="y_range"):
        langevin_mean_first_passage_time_2d(lambda x, y: x + y, 0.1, (0.0, 3.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))


# ---------------------------------------------------------------- the experiment


def _check(seed: int) -> None:
    findings = escape(seed=seed, quick=True)
    assert len(findings) == 22
    for finding in findings:
        assert finding.experiment == "core.escape"
        assert finding.passed, finding
        assert finding.details.get("censored_fraction", 0.0) < 0.1  # a budget of 3 means: ~5% at the slowest


def test_escape_experiment_passes_at_seed_0() -> None:
    _check(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_escape_experiment_passes_for_seeds_0_to_9(seed: int) -> None:
    _check(seed)
