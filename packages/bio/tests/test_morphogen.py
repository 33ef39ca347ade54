"""Bicoid positional error: delta method, optimal decay lengths, simulated nuclei and a boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from noisygrad.bio import (
    CONSTRAINT_BETA,
    ExponentialGradient,
    error_curve_around_optimum,
    fit_optimum,
    optimal_decay_length,
    positional_error,
    simulate_boundary,
    simulate_error_curve,
)

X_T = 0.48  # Hunchback boundary, egg lengths
COUNT = 700.0  # mean count at x_T when lambda = 0.2 EL
Z = 4.0  # tolerances in Monte-Carlo standard errors


def exact_error(decay_lengths: np.ndarray, constraint: str) -> np.ndarray:
    """The exact sd of the decoded position, lambda sd(ln n) with n ~ Poisson(m), summed over scipy's pmf.

    The decoder reads a count of 0 as 1/2, as ``ExponentialGradient.decode`` does. Unlike the delta method
    (exact only as m -> infinity) this is what the simulated nuclei estimate, so they are held to it.
    """
    out = []
    for lam in decay_lengths:
        m = COUNT * math.exp(X_T / 0.2 - X_T / lam) * (lam / 0.2) ** CONSTRAINT_BETA[constraint]
        k = np.arange(int(m + 20 * math.sqrt(m) + 50))
        p = stats.poisson.pmf(k, m)
        log_n = np.log(np.maximum(k, 0.5))
        centred = log_n - p @ log_n
        out.append(lam * math.sqrt(p @ centred**2))
    return np.array(out)


def test_closed_form_optima() -> None:
    assert optimal_decay_length(X_T, "amplitude") == pytest.approx(X_T / 2)
    assert optimal_decay_length(X_T, "total") == pytest.approx(X_T / 3)
    assert optimal_decay_length(X_T, "flux") == pytest.approx(X_T)


@pytest.mark.parametrize("constraint", sorted(CONSTRAINT_BETA))
def test_delta_method_curve_has_its_minimum_at_the_closed_form(constraint: str) -> None:
    best = optimal_decay_length(X_T, constraint)
    grid = np.geomspace(best / 2, best * 2, 4001)
    err = positional_error(X_T, grid, constraint=constraint, count_at_reference=COUNT, reference_decay_length=0.2)
    assert grid[np.argmin(err)] == pytest.approx(best, rel=1e-3)
    # a noiseless curve: the quartic fit recovers the optimum on an asymmetric grid
    coarse = np.geomspace(best / 1.5, best * 1.8, 21)
    curve = positional_error(X_T, coarse, constraint=constraint, count_at_reference=COUNT, reference_decay_length=0.2)
    assert fit_optimum(coarse, curve) == pytest.approx(best, rel=2e-3)


def test_gradient_reads_and_decodes() -> None:
    g = ExponentialGradient(c0=COUNT * math.exp(X_T / 0.2), decay_length=0.2)
    assert float(g.mean_count(X_T)) == pytest.approx(COUNT)
    assert float(g.slope(X_T)) == pytest.approx(-COUNT / 0.2)
    assert float(g.positional_error(X_T)) == pytest.approx(0.2 / math.sqrt(COUNT))
    x = np.array([0.1, 0.3, 0.6])
    np.testing.assert_allclose(g.decode(g.mean_count(x)), x, rtol=1e-12)


def test_amplitude_noise_moves_the_optimum_to_shorter_lambda() -> None:
    best = optimal_decay_length(
        X_T, "amplitude", cv_amplitude=0.05, count_at_reference=COUNT, reference_decay_length=0.2
    )
    # research note (bicoid_cv.py): 0.143 EL for CV 0.05 at 700 counts
    assert best == pytest.approx(0.143, abs=0.001)
    grid = np.geomspace(0.08, 0.3, 20001)
    err = positional_error(
        X_T, grid, constraint="amplitude", count_at_reference=COUNT, reference_decay_length=0.2, cv_amplitude=0.05
    )
    assert grid[np.argmin(err)] == pytest.approx(best, rel=1e-3)


@pytest.mark.parametrize("constraint", sorted(CONSTRAINT_BETA))
def test_simulated_optimum_matches_x_t_over_2_minus_beta(constraint: str) -> None:
    best, curve = error_curve_around_optimum(
        X_T,
        constraint,
        count_at_reference=COUNT,
        reference_decay_length=0.2,
        n_nuclei=400_000,
        rng=np.random.default_rng(17),
    )
    assert best == optimal_decay_length(X_T, constraint)
    grid = curve.decay_lengths  # 21 points on [best/1.5, 1.5 best]
    np.testing.assert_allclose(grid[[0, 10, 20]], [best / 1.5, best, best * 1.5], rtol=1e-12)
    # each point's s.e. (from its sample fourth moment) is 0.11% of it, about 1/sqrt(2n): the points are held to
    # 4 s.e. of the exact sd. The delta method is biased by sd(ln n) sqrt(m) - 1 ~ 0.75/m, up to 0.47% (4 s.e.)
    # at the lowest mean count on these grids (160), so it is checked separately, without Monte-Carlo error.
    exact = exact_error(grid, constraint)
    assert np.all(curve.error_se < 0.0013 * curve.error)
    assert np.all(np.abs(curve.error - exact) < Z * curve.error_se)
    np.testing.assert_allclose(exact, curve.predicted, rtol=0.005)
    fitted, se = curve.fitted_optimum(), curve.fitted_optimum_se()
    # the fitted optimum's Monte-Carlo s.e. (propagated from the points) is 0.17% (total), 0.26% (amplitude)
    # and 0.53% (flux, the flattest) of lambda*: held to 4 s.e. of the same fit through the exact curve. That
    # fit's distance to x_T/(2 - beta) has no Monte-Carlo error: the delta method's bias moves it by +0.04%
    # (flux) .. +0.2% (total), under the acceptance's 2%.
    assert se < 0.006 * best
    exact_optimum = fit_optimum(grid, exact)
    assert abs(fitted - exact_optimum) < Z * se
    assert abs(exact_optimum / best - 1) < 0.0025


def test_boundary_spread_matches_independent_nuclei() -> None:
    g = ExponentialGradient(c0=COUNT * math.exp(X_T / 0.2), decay_length=0.2)
    n = 20_000
    edges, predicted = simulate_boundary(g, X_T, n_embryos=n, rng=np.random.default_rng(1))
    sd = edges.std(ddof=1)
    # s.e. of a standard deviation ~ sd/sqrt(2(n - 1)) = 0.5% (the count of ON nuclei is near Gaussian: its
    # excess kurtosis is -0.06, so the fourth-moment correction to that s.e. is -1.6%)
    assert abs(sd - predicted) < Z * sd / math.sqrt(2 * (n - 1))
    # its mean is exactly spacing * sum_k P(n_k > threshold); s.e. sd/sqrt(n) = 4.6e-5 EL
    positions = np.arange(0.005, 1.0, 0.01)
    p_on = stats.poisson.sf(math.floor(float(g.mean_count(X_T))), g.mean_count(positions))
    assert abs(edges.mean() - 0.01 * p_on.sum()) < Z * predicted / math.sqrt(n)
    # no Monte-Carlo error here: the model puts the boundary within a nuclear spacing of x_T (0.4799 EL) and
    # its spread under 1% EL (0.0065 EL; Gregor 2007: ~1%)
    assert abs(0.01 * p_on.sum() - X_T) < 0.01
    assert predicted < 0.01


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.0), "decay_length"),
        (lambda: ExponentialGradient(c0=-1.0, decay_length=0.2), "c0"),
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.2, exposure=-2.0), "exposure"),
        (lambda: optimal_decay_length(-0.5), "x_target"),
        (lambda: optimal_decay_length(0.5, "volume"), "constraint"),
        (lambda: optimal_decay_length(0.5, cv_amplitude=0.1), "count_at_reference"),
        (
            lambda: positional_error(0.5, [0.2, -0.1], count_at_reference=10.0, reference_decay_length=0.2),
            "decay_length",
        ),
        (lambda: positional_error(0.5, 0.2, count_at_reference=0.0, reference_decay_length=0.2), "count_at_reference"),
        (
            lambda: simulate_error_curve(
                0.5,
                [0.2],
                count_at_reference=-5.0,
                reference_decay_length=0.2,
                n_nuclei=10,
                rng=np.random.default_rng(),
            ),
            "count_at_reference",
        ),
        (
            lambda: simulate_error_curve(
                0.5, [0.2], count_at_reference=5.0, reference_decay_length=0.2, n_nuclei=0, rng=np.random.default_rng()
            ),
            "n_nuclei",
        ),
        (lambda: fit_optimum([0.1, 0.2], [1.0, 2.0]), "degree"),
        (
            lambda: error_curve_around_optimum(
                0.5,
                count_at_reference=5.0,
                reference_decay_length=0.2,
                n_nuclei=10,
                rng=np.random.default_rng(),
                span=1.0,
            ),
            "span",
        ),
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.2).decode(np.array([3.0, -1.0])), "counts"),
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.2).concentration(float("nan")), "x"),
    ],
)
def test_bad_input_names_the_argument(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
