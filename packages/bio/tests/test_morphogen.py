"""Bicoid positional error: delta method, optimal decay lengths, simulated nuclei and a boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisygrad.bio import (
    CONSTRAINT_BETA,
    ExponentialGradient,
    fit_optimum,
    optimal_decay_length,
    positional_error,
    simulate_boundary,
    simulate_error_curve,
)

X_T = 0.48  # Hunchback boundary, egg lengths
COUNT = 700.0  # mean count at x_T when lambda = 0.2 EL


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
    best = optimal_decay_length(X_T, constraint)
    grid = np.geomspace(best / 1.5, best * 1.5, 21)
    curve = simulate_error_curve(
        X_T,
        grid,
        constraint=constraint,
        count_at_reference=COUNT,
        reference_decay_length=0.2,
        n_nuclei=400_000,
        rng=np.random.default_rng(17),
    )
    # each point matches the delta method within its s.e. (1/sqrt(2n) = 0.11%, so 4 s.e. = 0.45%) plus the
    # delta method's own bias, sd(ln n) sqrt(m) - 1 ~ 0.75/m: 0.47% at the lowest mean count on these grids (160)
    np.testing.assert_allclose(curve.error, curve.predicted, rtol=0.01)
    fitted, se = curve.fitted_optimum(), curve.fitted_optimum_se()
    # the fitted optimum's Monte-Carlo s.e. (propagated from the points) is 0.17% (total), 0.25% (amplitude)
    # and 0.5% (flux, the flattest) of lambda* with 4e5 nuclei per point: 2% is at least 4 s.e.
    assert se < 0.0055 * best
    assert abs(fitted / best - 1) < 0.02


def test_boundary_spread_matches_independent_nuclei() -> None:
    g = ExponentialGradient(c0=COUNT * math.exp(X_T / 0.2), decay_length=0.2)
    n = 20_000
    edges, predicted = simulate_boundary(g, X_T, n_embryos=n, rng=np.random.default_rng(1))
    sd = edges.std(ddof=1)
    # s.e. of a standard deviation ~ sd/sqrt(2(n - 1)) = 0.5%
    assert abs(sd - predicted) < 4 * sd / math.sqrt(2 * (n - 1))
    # the boundary lands at x_T to within a nuclear spacing, and is placed to under 1% EL (Gregor 2007: ~1%)
    assert abs(edges.mean() - X_T) < 0.01
    assert sd < 0.01


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
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.2).decode(np.array([3.0, -1.0])), "counts"),
        (lambda: ExponentialGradient(c0=1.0, decay_length=0.2).concentration(float("nan")), "x"),
    ],
)
def test_bad_input_names_the_argument(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
