"""Exact tests of noisygrad.bio (morphogen, pruning, evolution) that close the gaps mutation testing found.

Every closed form is checked at numbers away from 0, 1 and 2 (so that a changed constant, operator or exponent
changes the value), every checked range at both of its ends, every documented default by comparison with the
same call spelling it out, and every simulation against a plain re-implementation that draws the same numbers
from the same generator (so the comparison is to rounding, not to a Monte-Carlo tolerance).
"""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
from scipy import optimize, stats

from noisygrad.bio import (
    CONSTRAINT_BETA,
    GREGOR_2007,
    RHO,
    CompetitionResult,
    ErrorCurve,
    ExponentialGradient,
    LinearLandscape,
    PruningModel,
    RuggedLandscape,
    WrightFisher,
    compare_searches,
    error_curve_around_optimum,
    fit_optimum,
    input_covariance,
    morphogen,
    oja_drift,
    optimal_decay_length,
    positional_error,
    pruning,
    simulate_boundary,
    simulate_competition,
    simulate_error_curve,
)
from noisygrad.bio.evolution import _sample_parents
from noisygrad.bio.morphogen import constraint_beta
from noisygrad.bio.pruning import MAX_WALK_STEPS

# ======================================================================================= morphogen


def test_morphogen_constraint_exponents_and_reference_figures_are_the_documented_ones() -> None:
    assert CONSTRAINT_BETA == {"amplitude": 0.0, "total": -1.0, "flux": 1.0}
    assert typing.get_args(morphogen.Constraint) == ("amplitude", "total", "flux")  # the names the alias admits
    assert [constraint_beta(c) for c in ("amplitude", "total", "flux")] == [0.0, -1.0, 1.0]
    with pytest.raises(ValueError, match=r"^constraint must be one of \['amplitude', 'flux', 'total'\]"):
        constraint_beta("volume")
    assert GREGOR_2007 == {
        "egg_length_um": 500.0,
        "decay_length_EL": 0.2,
        "boundary_EL": 0.48,
        "boundary_error_EL": 0.01,
        "relative_concentration_noise": 0.10,
    }


def test_morphogen_gradient_closed_forms_at_an_exposure_away_from_one() -> None:
    g = ExponentialGradient(c0=3.0, decay_length=0.3, exposure=2.5)
    x = np.array([0.0, 0.2, 0.7])
    c = 3.0 * np.exp(-x / 0.3)
    np.testing.assert_allclose(g.concentration(x), c, rtol=1e-15)
    np.testing.assert_allclose(g.slope(x), -c / 0.3, rtol=1e-15)
    np.testing.assert_allclose(g.mean_count(x), 2.5 * c, rtol=1e-15)
    np.testing.assert_allclose(g.positional_error(x), np.sqrt(c / 2.5) / (c / 0.3), rtol=1e-14)
    # sigma_x = lambda exp(x/(2 lambda)) / sqrt(A c0)
    np.testing.assert_allclose(g.positional_error(x), 0.3 * np.exp(x / 0.6) / math.sqrt(7.5), rtol=1e-14)
    # float32 positions are computed in float64 (as float64 inputs), not rounded to float32
    x32 = np.array([0.2, 0.7], dtype=np.float32)
    assert g.concentration(x32).dtype == np.float64
    np.testing.assert_allclose(g.concentration(x32), 3.0 * np.exp(-x32.astype(np.float64) / 0.3), rtol=1e-15)
    assert g.decode(np.array([37.0], dtype=np.float32)).dtype == np.float64
    # a scalar and an integer position are read as float64
    assert g.concentration(1).dtype == np.float64
    assert float(g.concentration(1)) == pytest.approx(3.0 * math.exp(-1 / 0.3), rel=1e-15)
    # the default exposure is 1
    assert ExponentialGradient(3.0, 0.3).exposure == 1.0
    np.testing.assert_allclose(ExponentialGradient(3.0, 0.3).mean_count(x), c, rtol=1e-15)
    for bad in (float("inf"), -float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^x must be finite numbers"):
            g.concentration(np.array([0.1, bad]))


def test_morphogen_gradient_sample_counts_are_poisson_draws_of_the_mean_count_from_the_generator() -> None:
    g = ExponentialGradient(c0=40.0, decay_length=0.25, exposure=1.5)
    x = np.array([0.1, 0.3, 0.5, 0.9])
    counts = g.sample_counts(x, np.random.default_rng(7))
    np.testing.assert_array_equal(counts, np.random.default_rng(7).poisson(g.mean_count(x)))
    with pytest.raises(TypeError, match="rng"):
        g.sample_counts(x, 7)  # type: ignore[arg-type]


def test_morphogen_decode_inverts_the_gradient_with_its_own_or_a_given_amplitude() -> None:
    g = ExponentialGradient(c0=50.0, decay_length=0.25, exposure=2.0)
    counts = np.array([90.0, 37.0, 4.0, 1.0])
    np.testing.assert_allclose(g.decode(counts), 0.25 * np.log(2.0 * 50.0 / counts), rtol=1e-15)
    np.testing.assert_allclose(g.decode(counts, c0=80.0), 0.25 * np.log(2.0 * 80.0 / counts), rtol=1e-15)
    # a count of 0 is read as 1/2; 0 itself is allowed (the refusal is for negative counts only)
    np.testing.assert_allclose(g.decode(np.array([0.0, 0.5])), [0.25 * math.log(200.0)] * 2, rtol=1e-15)
    with pytest.raises(ValueError, match=r"^counts must be >= 0"):
        g.decode(np.array([-1e-9]))
    with pytest.raises(ValueError, match="c0"):
        g.decode(counts, c0=0.0)
    with pytest.raises(ValueError, match=r"^counts must be finite"):
        g.decode(np.array([1.0, np.inf]))


def test_morphogen_predicted_positional_error_closed_form_with_amplitude_noise() -> None:
    lam = np.array([0.12, 0.2, 0.35])
    x, m_ref, ref, cv = 0.45, 300.0, 0.18, 0.07
    for constraint, beta in CONSTRAINT_BETA.items():
        m = m_ref * (lam / ref) ** beta * np.exp(-x / lam + x / ref)
        expected = lam * np.sqrt(1.0 / m + cv * cv)
        got = positional_error(
            x, lam, constraint=constraint, count_at_reference=m_ref, reference_decay_length=ref, cv_amplitude=cv
        )
        np.testing.assert_allclose(got, expected, rtol=1e-13)
    # the defaults: constraint "amplitude", no amplitude noise (cv = 0 is allowed)
    plain = positional_error(x, lam, count_at_reference=m_ref, reference_decay_length=ref)
    m = m_ref * np.exp(-x / lam + x / ref)
    np.testing.assert_allclose(plain, lam / np.sqrt(m), rtol=1e-13)
    np.testing.assert_array_equal(
        plain,
        positional_error(
            x, lam, constraint="amplitude", count_at_reference=m_ref, reference_decay_length=ref, cv_amplitude=0.0
        ),
    )
    with pytest.raises(ValueError, match="cv_amplitude"):
        positional_error(x, lam, count_at_reference=m_ref, reference_decay_length=ref, cv_amplitude=-0.1)


def _noisy_optimum(x: float, beta: float, m_ref: float, ref: float, cv: float) -> float:
    """Root of d sigma_x^2 / d lambda, solved to 1e-15: sigma^2 = K lam^(2-beta) e^(x/lam) + cv^2 lam^2."""
    k = math.exp(-math.log(m_ref) - x / ref) * ref**beta

    def derivative(lam: float) -> float:
        return k * math.exp(x / lam) * lam ** (1 - beta) * ((2 - beta) - x / lam) + 2 * cv * cv * lam

    noiseless = x / (2 - beta)
    return optimize.brentq(derivative, noiseless * math.exp(-5.0), noiseless * (1 - 1e-12), xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("cv", [0.05, 0.004])  # a little noise: the optimum stays near x_T / (2 - beta)
@pytest.mark.parametrize("constraint", ["amplitude", "total", "flux"])
def test_morphogen_optimal_decay_length_with_amplitude_noise_is_the_root_of_the_derivative(
    constraint: str, cv: float
) -> None:
    x, m_ref, ref = 0.48, 700.0, 0.2
    got = optimal_decay_length(x, constraint, cv_amplitude=cv, count_at_reference=m_ref, reference_decay_length=ref)
    # the bounded search is asked for xatol 1e-10 in ln lambda: within 2e-8 of the root here (a flat minimum is
    # located to about sqrt(float64 eps)); scipy's default xatol 1e-5 lands 3e-7 .. 1.4e-6 away
    assert got == pytest.approx(_noisy_optimum(x, CONSTRAINT_BETA[constraint], m_ref, ref, cv), rel=5e-8)
    assert got < x / (2 - CONSTRAINT_BETA[constraint])


def test_morphogen_optimal_decay_length_without_noise_is_the_closed_form_whatever_the_scale() -> None:
    assert optimal_decay_length(0.6) == 0.6 / 2.0  # default constraint: amplitude
    assert optimal_decay_length(0.6, "total") == 0.6 / 3.0
    assert optimal_decay_length(0.6, "flux", cv_amplitude=0.0, count_at_reference=5.0) == 0.6
    for kwargs in ({"count_at_reference": 700.0}, {"reference_decay_length": 0.2}, {}):
        with pytest.raises(ValueError, match=r"^cv_amplitude > 0 needs count_at_reference"):
            optimal_decay_length(0.6, cv_amplitude=0.05, **kwargs)
    with pytest.raises(ValueError, match="cv_amplitude"):
        optimal_decay_length(0.6, cv_amplitude=-0.05)


def _quartic_curve() -> tuple[np.ndarray, np.ndarray]:
    """ln error a quartic in ln lambda with its minimum at ln lambda = -1.5 (inside the grid)."""
    lam = np.geomspace(0.1, 0.5, 9)
    u = np.log(lam)
    v = 0.8 * (u + 1.5) ** 2 + 0.3 * (u + 1.5) ** 3 + 0.4 * (u + 1.5) ** 4 - 2.0
    return lam, np.exp(v)


def test_morphogen_fit_optimum_recovers_an_exact_quartic_minimum_and_honours_the_degree() -> None:
    lam, err = _quartic_curve()
    assert fit_optimum(lam, err) == pytest.approx(math.exp(-1.5), rel=1e-9)
    assert fit_optimum(lam, err, degree=4) == fit_optimum(lam, err)
    # a quadratic through the same points puts the minimum elsewhere: the degree is used
    u, v = np.log(lam), np.log(err)
    quad = np.polynomial.Polynomial.fit(u, v, 2)
    (root,) = quad.deriv().roots()
    assert fit_optimum(lam, err, degree=2) == pytest.approx(math.exp(root.real), rel=1e-12)
    assert abs(fit_optimum(lam, err, degree=2) / math.exp(-1.5) - 1) > 1e-3
    # exactly degree + 1 points are enough; degree points, or mismatched lengths, are refused
    assert fit_optimum(lam[:5], err[:5]) == pytest.approx(math.exp(-1.5), rel=1e-8)
    with pytest.raises(ValueError, match=r"^need as many errors as decay_lengths and more than degree=4 points, got 4"):
        fit_optimum(lam[:4], err[:4])
    with pytest.raises(ValueError, match=r"^need as many errors"):
        fit_optimum(lam, err[:-1])
    with pytest.raises(ValueError, match="degree"):
        fit_optimum(lam, err, degree=0)


def test_morphogen_fit_optimum_of_a_monotone_curve_is_the_grid_end_not_a_stationary_point_outside() -> None:
    lam = np.geomspace(0.1, 0.5, 9)
    u = np.log(lam)
    # a parabola with its minimum at ln lambda = 0 (lambda = 1), outside the grid: the lowest point is the top end
    down = np.exp((u - 0.0) ** 2)
    assert fit_optimum(lam, down, degree=2) == pytest.approx(0.5, rel=1e-12)
    # mirrored: minimum at ln lambda = -4 (below the grid), so the bottom end
    up = np.exp((u + 4.0) ** 2)
    assert fit_optimum(lam, up, degree=2) == pytest.approx(0.1, rel=1e-12)


def _propagated_se(curve: ErrorCurve, degree: int, step: float = 1e-5) -> float:
    base = np.log(curve.error)
    grads = []
    for i in range(base.size):
        up, down = base.copy(), base.copy()
        up[i] += step
        down[i] -= step
        hi = fit_optimum(curve.decay_lengths, np.exp(up), degree=degree)
        lo = fit_optimum(curve.decay_lengths, np.exp(down), degree=degree)
        grads.append((hi - lo) / (2 * step))
    return float(np.sqrt(np.sum((np.array(grads) * curve.error_se / curve.error) ** 2)))


def test_morphogen_error_curve_fitted_optimum_and_its_propagated_standard_error() -> None:
    lam, err = _quartic_curve()
    se = np.linspace(0.01, 0.03, lam.size) * err  # relative s.e. 1% .. 3%, unequal on purpose
    curve = ErrorCurve(lam, err, se, err)
    assert curve.fitted_optimum() == fit_optimum(lam, err, degree=4)
    assert curve.fitted_optimum(degree=3) == fit_optimum(lam, err, degree=3)
    assert curve.fitted_optimum(3) != curve.fitted_optimum()
    # central differences of step 1e-4 against 1e-5: agreement to 1e-6 relative
    for degree in (4, 3):
        expected = _propagated_se(curve, degree)
        assert expected > 1e-3
        assert curve.fitted_optimum_se(degree=degree) == pytest.approx(expected, rel=1e-6)
    assert curve.fitted_optimum_se() == curve.fitted_optimum_se(4)
    assert curve.fitted_optimum_se(3) != pytest.approx(curve.fitted_optimum_se(), rel=1e-3)


def _simulated(x_t, lam, constraint, m_ref, ref, n, rng, cv):  # type: ignore[no-untyped-def]
    """simulate_error_curve written out: the same draws in the same order."""
    beta = CONSTRAINT_BETA[constraint]
    errors, ses = [], []
    for decay in lam:
        c0 = m_ref * math.exp(x_t / ref) * (decay / ref) ** beta
        mean = c0 * math.exp(-x_t / decay)
        amplitude = np.exp(cv * rng.standard_normal(n)) if cv > 0 else 1.0
        counts = rng.poisson(amplitude * mean, size=n).astype(np.float64)
        x_hat = decay * np.log(c0 / np.maximum(counts, 0.5))
        sd = x_hat.std(ddof=1)
        m4 = np.mean((x_hat - x_hat.mean()) ** 4)
        errors.append(sd)
        ses.append(math.sqrt(max(m4 - sd**4 * (n - 3) / (n - 1), 0.0) / n) / (2 * sd))
    return np.array(errors), np.array(ses)


@pytest.mark.parametrize(("constraint", "cv"), [("total", 0.0), ("flux", 0.08)])
def test_morphogen_simulate_error_curve_against_a_plain_reimplementation(constraint: str, cv: float) -> None:
    lam = np.array([0.15, 0.22, 0.31])
    x_t, m_ref, ref, n = 0.4, 30.0, 0.25, 500
    curve = simulate_error_curve(
        x_t,
        lam,
        constraint=constraint,
        count_at_reference=m_ref,
        reference_decay_length=ref,
        n_nuclei=n,
        rng=np.random.default_rng(21),
        cv_amplitude=cv,
    )
    errors, ses = _simulated(x_t, lam, constraint, m_ref, ref, n, np.random.default_rng(21), cv)
    np.testing.assert_allclose(curve.error, errors, rtol=1e-12)
    np.testing.assert_allclose(curve.error_se, ses, rtol=1e-10)
    np.testing.assert_array_equal(curve.decay_lengths, lam)
    np.testing.assert_allclose(
        curve.predicted,
        positional_error(
            x_t, lam, constraint=constraint, count_at_reference=m_ref, reference_decay_length=ref, cv_amplitude=cv
        ),
        rtol=1e-15,
    )


def test_morphogen_simulate_error_curve_defaults_and_the_smallest_population() -> None:
    lam = np.array([0.2, 0.3])
    kwargs = {"count_at_reference": 50.0, "reference_decay_length": 0.2, "n_nuclei": 40}
    a = simulate_error_curve(0.5, lam, rng=np.random.default_rng(3), **kwargs)  # type: ignore[arg-type]
    b = simulate_error_curve(
        0.5,
        lam,
        constraint="amplitude",
        cv_amplitude=0.0,
        rng=np.random.default_rng(3),
        **kwargs,  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(a.error, b.error)
    np.testing.assert_array_equal(a.predicted, b.predicted)
    errors, _ = _simulated(0.5, lam, "amplitude", 50.0, 0.2, 40, np.random.default_rng(3), 0.0)
    np.testing.assert_allclose(a.error, errors, rtol=1e-12)
    # two nuclei estimate a spread; one does not
    two = simulate_error_curve(
        0.5, [0.2], count_at_reference=50.0, reference_decay_length=0.2, n_nuclei=2, rng=np.random.default_rng(0)
    )
    assert two.error.shape == (1,)
    with pytest.raises(ValueError, match=r"^n_nuclei must be >= 2 to estimate a spread, got 1"):
        simulate_error_curve(
            0.5, [0.2], count_at_reference=50.0, reference_decay_length=0.2, n_nuclei=1, rng=np.random.default_rng(0)
        )
    with pytest.raises(TypeError, match="rng"):
        simulate_error_curve(0.5, [0.2], count_at_reference=50.0, reference_decay_length=0.2, n_nuclei=5, rng=3)  # type: ignore[arg-type]


def test_morphogen_error_curve_around_optimum_is_the_simulation_on_the_documented_grid() -> None:
    kwargs = {"count_at_reference": 60.0, "reference_decay_length": 0.2, "n_nuclei": 30}
    best, curve = error_curve_around_optimum(0.45, "total", rng=np.random.default_rng(5), **kwargs)  # type: ignore[arg-type]
    assert best == 0.45 / 3.0
    grid = np.geomspace(best / 1.5, best * 1.5, 21)  # defaults span 1.5, 21 points
    np.testing.assert_array_equal(curve.decay_lengths, grid)
    same = simulate_error_curve(0.45, grid, constraint="total", rng=np.random.default_rng(5), **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(curve.error, same.error)
    # with amplitude noise: the numerical optimum, a custom span and point count, the noise passed on
    best, curve = error_curve_around_optimum(
        0.45,
        cv_amplitude=0.1,
        span=1.2,
        points=5,
        rng=np.random.default_rng(6),
        **kwargs,  # type: ignore[arg-type]
    )
    assert best == optimal_decay_length(0.45, cv_amplitude=0.1, count_at_reference=60.0, reference_decay_length=0.2)
    grid = np.geomspace(best / 1.2, best * 1.2, 5)
    np.testing.assert_array_equal(curve.decay_lengths, grid)
    same = simulate_error_curve(0.45, grid, cv_amplitude=0.1, rng=np.random.default_rng(6), **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(curve.error, same.error)
    np.testing.assert_array_equal(curve.predicted, same.predicted)
    # any span above 1 is allowed
    _, narrow = error_curve_around_optimum(0.45, span=1.0001, points=2, rng=np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]
    assert narrow.decay_lengths.size == 2
    with pytest.raises(ValueError, match="points"):
        error_curve_around_optimum(0.45, points=0, rng=np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def test_morphogen_simulate_boundary_against_a_plain_reimplementation() -> None:
    g = ExponentialGradient(c0=200.0, decay_length=0.2, exposure=1.5)
    b, h, n = 0.37, 0.04, 300
    edges, predicted = simulate_boundary(g, b, n_embryos=n, spacing=h, rng=np.random.default_rng(9))
    positions = np.arange(0.5 * h, 1.0, h)
    assert positions.size == 25
    threshold = 1.5 * 200.0 * math.exp(-b / 0.2)
    means = 1.5 * 200.0 * np.exp(-positions / 0.2)
    counts = np.random.default_rng(9).poisson(means, size=(n, positions.size))
    assert edges.dtype == np.float64
    np.testing.assert_allclose(edges, h * (counts > threshold).sum(axis=1), rtol=1e-15)
    p_on = stats.poisson.sf(math.floor(threshold), means)
    assert predicted == pytest.approx(h * math.sqrt(np.sum(p_on * (1 - p_on))), rel=1e-12)
    # the default spacing is 0.01 (one nuclear spacing): 100 nuclei
    e1, _ = simulate_boundary(g, b, n_embryos=4, rng=np.random.default_rng(2))
    e2, _ = simulate_boundary(g, b, n_embryos=4, spacing=0.01, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(e1, e2)


def test_morphogen_simulate_boundary_threshold_is_strict_at_an_integer_mean_count() -> None:
    # the count at the boundary is exactly 10.0 in float64: a nucleus counting 10 is OFF, 11 is ON
    g = ExponentialGradient(c0=10.0 * math.exp(0.3 / 0.2), decay_length=0.2)
    threshold = float(g.mean_count(0.3))
    assert threshold == 10.0
    edges, predicted = simulate_boundary(g, 0.3, n_embryos=200, spacing=0.1, rng=np.random.default_rng(4))
    positions = np.arange(0.05, 1.0, 0.1)
    means = g.mean_count(positions)
    counts = np.random.default_rng(4).poisson(means, size=(200, 10))
    assert np.any(counts == 10)  # the strict comparison is exercised
    np.testing.assert_allclose(edges, 0.1 * (counts > threshold).sum(axis=1), rtol=1e-15)
    assert not np.allclose(edges, 0.1 * (counts >= threshold).sum(axis=1))
    p_on = stats.poisson.sf(math.floor(threshold), means)
    assert predicted == pytest.approx(0.1 * math.sqrt(np.sum(p_on * (1 - p_on))), rel=1e-12)
    for kwargs, name in (({"n_embryos": 0}, "n_embryos"), ({"n_embryos": 3, "spacing": 0.0}, "spacing")):
        with pytest.raises(ValueError, match=name):
            simulate_boundary(g, 0.3, rng=np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="boundary"):
        simulate_boundary(g, -0.25, n_embryos=3, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        simulate_boundary(g, 0.3, n_embryos=3, rng=0)  # type: ignore[arg-type]


def test_morphogen_results_are_frozen() -> None:
    g = ExponentialGradient(1.0, 0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.c0 = 2.0  # type: ignore[misc]
    curve = ErrorCurve(np.ones(2), np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.error = np.zeros(2)  # type: ignore[misc]


# ======================================================================================= pruning


def _walk(m: PruningModel, n: int, rng: np.random.Generator, cap: int, block: int, chunk: int) -> np.ndarray:
    """PruningModel.simulate_walk written out: blocks of ``block`` steps, ``chunk`` synapses at a time."""
    out = np.empty(n)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        times = np.full(size, np.inf)
        alive = np.arange(size)
        gap = np.full(size, m.w0 - m.theta)
        step = 0
        while alive.size and step < cap:
            k = min(block, cap - step)
            path = rng.normal(-m.eta * m.kappa, m.eta * m.sigma, size=(alive.size, k))
            path[:, 0] += gap
            path = np.cumsum(path, axis=1)
            hit = path.min(axis=1) < 0.0
            times[alive[hit]] = step + 1 + (path[hit] < 0.0).argmax(axis=1)
            alive, gap = alive[~hit], path[~hit, -1]
            step += k
        out[start : start + size] = times
    return out


def _bridge(m: PruningModel, n: int, rng: np.random.Generator, dt: float, horizon: float, block: int, chunk: int):  # type: ignore[no-untyped-def]
    """PruningModel._bridge written out (the Brownian-bridge crossing scheme)."""
    s2dt = (m.eta * m.sigma) ** 2 * dt
    out = np.empty(n)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        times = np.full(size, np.inf)
        alive = np.arange(size)
        gap = np.full(size, m.w0 - m.theta)
        step = 0
        while alive.size and step * dt < horizon:
            path = rng.normal(-m.eta * m.kappa * dt, m.eta * m.sigma * math.sqrt(dt), size=(alive.size, block))
            path[:, 0] += gap
            path = np.cumsum(path, axis=1)
            before = np.concatenate([gap[:, None], path[:, :-1]], axis=1)
            p_cross = np.exp(-2.0 * np.maximum(before, 0.0) * np.maximum(path, 0.0) / s2dt)
            crossed = (path <= 0.0) | (rng.random(path.shape) < p_cross)
            hit = crossed.any(axis=1)
            rows = np.flatnonzero(hit)
            first = crossed[rows].argmax(axis=1)
            a = before[rows, first]
            b = np.maximum(np.abs(path[rows, first]), 1e-300)
            y = rng.wald(a / b, a * a / s2dt)
            times[alive[rows]] = (step + first + 1.0 / (1.0 + 1.0 / y)) * dt
            alive, gap = alive[~hit], path[~hit, -1]
            step += block
        out[start : start + size] = times
    out[out > horizon] = np.inf
    return out


def test_pruning_closed_forms_at_a_drift_away_from_one() -> None:
    m = PruningModel(w0=1.3, theta=0.1, eta=0.02, kappa=1.6, sigma=2.5)
    assert m.distance == pytest.approx(1.2, rel=1e-15)
    assert m.mean_passage_time() == pytest.approx(1.2 / (0.02 * 1.6), rel=1e-15)
    assert m.variance_passage_time() == pytest.approx(1.2 * 2.5**2 / (0.02 * 1.6**3), rel=1e-14)
    law = m.passage_time_distribution()
    shape = (1.2 / (0.02 * 2.5)) ** 2
    assert law.mean() == pytest.approx(m.mean_passage_time(), rel=1e-13)
    assert law.var() == pytest.approx(m.variance_passage_time(), rel=1e-12)
    assert law.kwds == {"scale": pytest.approx(shape, rel=1e-14)}
    assert law.args == (pytest.approx(m.mean_passage_time() / shape, rel=1e-14),)
    # the horizon: the mean plus 60 tail lengths 2 sigma^2/kappa^2 plus 1000 steps
    assert m.passage_horizon() == pytest.approx(37.5 + 60 * 2 * (2.5 / 1.6) ** 2 + 1000.0, rel=1e-15)
    assert pytest.approx(0.5825971579390106, rel=1e-15) == RHO


def _overshoot_reference(m: PruningModel, terms: int) -> float:
    k, s = m.kappa, m.sigma
    total = 0.0
    for n in range(1, terms + 1):
        r = math.sqrt(n)
        total += (s * r * stats.norm.pdf(k * r / s) - n * k * stats.norm.cdf(-k * r / s)) / n
    return m.eta * ((k * k + s * s) / (2 * k) - total)


@pytest.mark.parametrize(("kappa", "sigma", "terms"), [(1.6, 0.9, 400), (0.7, 2.1, 2000), (0.3, 4.5, 40_000)])
def test_pruning_expected_overshoot_is_spitzers_series(kappa: float, sigma: float, terms: int) -> None:
    m = PruningModel(w0=1.0, theta=0.0, eta=0.03, kappa=kappa, sigma=sigma)
    if terms > 2000:  # a plain loop of 40,000 terms is slow: vectorised, the same sum
        n = np.arange(1, terms + 1, dtype=np.float64)
        r = np.sqrt(n)
        neg = sigma * r * stats.norm.pdf(kappa * r / sigma) - n * kappa * stats.norm.cdf(-kappa * r / sigma)
        expected = 0.03 * ((kappa**2 + sigma**2) / (2 * kappa) - float(np.sum(neg / n)))
    else:
        expected = _overshoot_reference(m, terms)
    assert m.expected_overshoot() == pytest.approx(expected, rel=1e-12)
    assert m.discrete_mean_passage_time() == pytest.approx((1.0 + expected) / (0.03 * kappa), rel=1e-12)


def test_pruning_expected_overshoot_switches_to_siegmund_strictly_beyond_300() -> None:
    siegmund = PruningModel(w0=1.0, theta=0.0, eta=0.5, kappa=0.01, sigma=3.0000001)
    assert siegmund.expected_overshoot() == 0.5 * (RHO * 3.0000001 + 0.01 / 4.0)
    at = PruningModel(w0=1.0, theta=0.0, eta=0.5, kappa=0.01, sigma=3.0)  # sigma/kappa = 300: the series
    assert 3.0 / 0.01 == 300.0
    series, approx = at.expected_overshoot(), 0.5 * (RHO * 3.0 + 0.01 / 4.0)
    assert series != approx
    assert series == pytest.approx(approx, rel=1e-4)  # O(kappa^2/sigma) apart
    assert PruningModel(w0=1.0, theta=0.0, eta=0.5, kappa=0.01, sigma=0.0).expected_overshoot() == 0.0


def test_pruning_noiseless_walk_steps_below_the_threshold_strictly() -> None:
    # 1 - 0.3 n: 0.7, 0.4, 0.1, -0.2: four steps
    m = PruningModel(w0=1.0, theta=0.0, eta=0.2, kappa=1.5, sigma=0.0)
    assert m.discrete_mean_passage_time() == 4.0
    np.testing.assert_array_equal(m.simulate_walk(3, np.random.default_rng(0)), [4.0, 4.0, 4.0])
    # 1 - 0.25 n reaches 0 exactly at n = 4 (not below): eliminated at 5
    exact = PruningModel(w0=1.0, theta=0.0, eta=0.25, kappa=1.0, sigma=0.0)
    assert exact.discrete_mean_passage_time() == 5.0
    np.testing.assert_array_equal(exact.simulate_walk(2, np.random.default_rng(0)), [5.0, 5.0])
    # capped before the passage: alive (inf); capped at it: eliminated
    np.testing.assert_array_equal(exact.simulate_walk(2, np.random.default_rng(0), max_steps=4), [np.inf, np.inf])
    np.testing.assert_array_equal(exact.simulate_walk(2, np.random.default_rng(0), max_steps=5), [5.0, 5.0])


@pytest.mark.parametrize(
    ("model", "max_steps", "block"),
    [
        (PruningModel(w0=1.0, theta=0.2, eta=0.02, kappa=1.0, sigma=1.5), None, 16),  # mean 40: at least 16
        (PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8), None, 40),  # mean 160: a quarter
        (PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8), 157, 40),  # a cap inside the 4th block
        (PruningModel(w0=1.0, theta=0.0, eta=1e-4, kappa=0.5, sigma=0.5), None, 4096),  # mean 20,000: at most 4096
    ],
)
def test_pruning_simulate_walk_against_a_plain_reimplementation(
    model: PruningModel, max_steps: int | None, block: int
) -> None:
    n = 50
    got = model.simulate_walk(n, np.random.default_rng(13), max_steps=max_steps)
    cap = max_steps if max_steps is not None else math.ceil(model.passage_horizon())
    expected = _walk(model, n, np.random.default_rng(13), cap, block, 1 << 22)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float64
    if max_steps is not None:
        assert np.isinf(got).any()
        assert np.isfinite(got).any()


def test_pruning_work_arrays_are_split_into_chunks_of_synapses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pruning._MAX_BLOCK_ELEMENTS == 1 << 22  # 32 MB of float64
    m = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8)  # blocks of 40 steps
    monkeypatch.setattr(pruning, "_MAX_BLOCK_ELEMENTS", 40 * 7 + 5)  # 7 synapses per chunk (walk), 4 (bridge, dt 2)
    got = m.simulate_walk(17, np.random.default_rng(2))
    np.testing.assert_array_equal(got, _walk(m, 17, np.random.default_rng(2), math.ceil(m.passage_horizon()), 40, 7))
    bridge = m.simulate_sde(9, np.random.default_rng(3), method="bridge", dt=2.0)
    np.testing.assert_array_equal(bridge, _bridge(m, 9, np.random.default_rng(3), 2.0, m.passage_horizon(), 20, 4))
    monkeypatch.setattr(pruning, "_MAX_BLOCK_ELEMENTS", 3)  # fewer than a block: one synapse at a time
    got = m.simulate_walk(3, np.random.default_rng(2))
    np.testing.assert_array_equal(got, _walk(m, 3, np.random.default_rng(2), math.ceil(m.passage_horizon()), 40, 1))
    bridge = m.simulate_sde(3, np.random.default_rng(3), method="bridge", dt=2.0)
    np.testing.assert_array_equal(bridge, _bridge(m, 3, np.random.default_rng(3), 2.0, m.passage_horizon(), 20, 1))


@pytest.mark.parametrize(
    ("dt", "max_time", "block"), [(1.0, None, 40), (0.5, None, 80), (4.0, 150.0, 16), (2.0, 165.0, 20)]
)
def test_pruning_bridge_against_a_plain_reimplementation(dt: float, max_time: float | None, block: int) -> None:
    m = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8)  # mean 160 steps
    got = m.simulate_sde(40, np.random.default_rng(31), method="bridge", dt=dt, max_time=max_time)
    horizon = m.passage_horizon() if max_time is None else max_time
    np.testing.assert_array_equal(got, _bridge(m, 40, np.random.default_rng(31), dt, horizon, block, 1 << 22))
    if max_time is not None:
        assert np.isinf(got).any()
        assert np.isfinite(got).any()


def test_pruning_bridge_default_step_is_one() -> None:
    m = PruningModel(w0=1.0, theta=0.2, eta=0.02, kappa=1.0, sigma=1.5)
    np.testing.assert_array_equal(
        m.simulate_sde(20, np.random.default_rng(1), method="bridge"),
        m.simulate_sde(20, np.random.default_rng(1), method="bridge", dt=1.0),
    )


def test_pruning_exact_sampler_draws_walds_law_and_censors_strictly_after_max_time() -> None:
    m = PruningModel(w0=1.3, theta=0.1, eta=0.02, kappa=1.6, sigma=2.5)
    shape = (1.2 / (0.02 * 2.5)) ** 2
    draws = np.random.default_rng(5).wald(m.mean_passage_time(), shape, size=30)
    np.testing.assert_array_equal(m.simulate_sde(30, np.random.default_rng(5)), draws)  # method "exact" by default
    cut = float(np.sort(draws)[10])
    censored = m.simulate_sde(30, np.random.default_rng(5), method="exact", max_time=cut)
    np.testing.assert_array_equal(censored, np.where(draws > cut, np.inf, draws))
    assert np.isinf(censored).sum() == 19  # a time equal to max_time is kept


def test_pruning_bridge_censors_strictly_after_max_time() -> None:
    m = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8)
    free = m.simulate_sde(30, np.random.default_rng(8), method="bridge", dt=2.0)
    cut = float(np.sort(free)[12])
    censored = m.simulate_sde(30, np.random.default_rng(8), method="bridge", dt=2.0, max_time=cut)
    np.testing.assert_array_equal(censored, np.where(free > cut, np.inf, free))
    assert np.isinf(censored).sum() == 17


def test_pruning_step_caps_at_the_limit_are_allowed_and_beyond_refused() -> None:
    assert MAX_WALK_STEPS == 10**9
    m = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=0.5, sigma=0.8)
    assert m._step_cap(MAX_WALK_STEPS) == (MAX_WALK_STEPS, True)
    assert m._step_cap(7) == (7, True)
    assert m._step_cap(None) == (math.ceil(m.passage_horizon()), False)
    assert m._step_cap(None, 2.0) == (math.ceil(m.passage_horizon() / 2.0), False)
    # a horizon of exactly 1e9 steps (mean 999,999,000 + 1000, no noise) is allowed; one step more is refused
    edge = PruningModel(w0=999_999_000.0, theta=0.0, eta=1.0, kappa=1.0, sigma=0.0)
    assert edge.passage_horizon() == 1e9
    assert edge._step_cap(None) == (MAX_WALK_STEPS, False)
    beyond = PruningModel(w0=999_999_001.0, theta=0.0, eta=1.0, kappa=1.0, sigma=0.0)
    with pytest.raises(ValueError, match=r"pass max_steps="):
        beyond._step_cap(None)
    with pytest.raises(ValueError, match="max_steps"):
        m.simulate_walk(3, np.random.default_rng(0), max_steps=0)
    # the bridge: max_time / dt of exactly 1e9 grid steps runs (every synapse ends long before), more is refused
    t = m.simulate_sde(4, np.random.default_rng(0), method="bridge", dt=1.0, max_time=1e9)
    assert np.all(np.isfinite(t))
    with pytest.raises(ValueError, match=r"^max_time / dt must be <= 1e\+09 grid steps"):
        m.simulate_sde(4, np.random.default_rng(0), method="bridge", dt=0.5, max_time=5e8 + 1.0)
    with pytest.raises(ValueError, match="max_time"):
        m.simulate_sde(4, np.random.default_rng(0), max_time=0.0)


def test_pruning_an_uncapped_walk_that_ends_raises_nothing_and_a_capped_one_keeps_survivors() -> None:
    m = PruningModel(w0=1.0, theta=0.2, eta=0.02, kappa=1.0, sigma=1.5)
    assert np.all(np.isfinite(m.simulate_walk(30, np.random.default_rng(4))))
    capped = m.simulate_walk(30, np.random.default_rng(4), max_steps=20)
    assert np.isinf(capped).any()


def test_pruning_uncapped_walk_alive_at_its_horizon_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no tail lengths in the horizon (mean + 1000 steps), a noisy walk outlives it: an error, not inf."""
    monkeypatch.setattr(pruning, "_TAIL_LENGTHS", 0.0)
    m = PruningModel(w0=1.0, theta=0.6, eta=0.01, kappa=1.0, sigma=20.0)  # mean 40 steps, tail 800 steps
    assert m.passage_horizon() == pytest.approx(1040.0)
    with pytest.raises(RuntimeError, match=r"^1 synapse\(s\) still alive after 1040 steps"):
        m.simulate_walk(200, np.random.default_rng(0))
    capped = m.simulate_walk(200, np.random.default_rng(0), max_steps=1040)
    assert np.isinf(capped).sum() == 1  # the one the uncapped walk refused to report as eliminated


def test_pruning_sde_refuses_a_deterministic_model_and_an_unknown_method_before_drawing() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^sigma must be > 0 to simulate the diffusion"):
        PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=0.0).simulate_sde(3, rng)
    with pytest.raises(ValueError, match="n_synapses"):
        PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=1.0).simulate_sde(0, rng)
    with pytest.raises(TypeError, match="rng"):
        PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=1.0).simulate_sde(3, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^method must be 'exact' or 'bridge', got 'euler'"):
        PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=1.0).simulate_sde(3, rng, method="euler")  # type: ignore[arg-type]
    assert rng.random() == np.random.default_rng(0).random()


def test_pruning_competition_result_kept_fractions() -> None:
    pruned = np.array([[np.inf, 3.0, np.inf, 7.0], [np.inf, np.inf, 2.0, np.inf]])
    result = CompetitionResult(np.zeros((2, 4)), pruned, np.array([True, True, False, False]), np.zeros((2, 4)))
    assert result.kept_fraction("correlated") == 0.75
    assert result.kept_fraction("uncorrelated") == 0.5


def test_pruning_input_covariance_and_oja_drift_exactly() -> None:
    cov = input_covariance(2, 3, 0.35)
    expected = np.eye(5)
    expected[0, 1] = expected[1, 0] = 0.35
    np.testing.assert_array_equal(cov, expected)
    np.testing.assert_array_equal(input_covariance(3, 0, 0.0), np.eye(3))  # no uncorrelated inputs, c = 0
    np.testing.assert_array_equal(input_covariance(1, 1, 0.999), np.eye(2))  # a block of one
    for bad in (1.0, -1e-9):
        with pytest.raises(ValueError, match=r"^correlation must lie in \[0, 1\)"):
            input_covariance(2, 2, bad)
    with pytest.raises(ValueError, match="n_correlated"):
        input_covariance(0, 2, 0.5)
    w = np.array([0.3, -0.2, 0.5, 0.1, 0.4])
    cw = cov @ w
    np.testing.assert_allclose(oja_drift(w, cov), cw - (w @ cw) * w, rtol=1e-15)
    drift = oja_drift([1, 0], [[2, 1], [1, 3]])  # integers are read as float64
    assert drift.dtype == np.float64
    np.testing.assert_allclose(drift, [0.0, 1.0], rtol=1e-15)
    np.testing.assert_array_equal(oja_drift([1], [[3]]), [0.0])
    with pytest.raises(ValueError, match=r"^covariance must have shape \(5, 5\) for 5 weights"):
        oja_drift(w, np.eye(4))
    with pytest.raises(ValueError, match=r"^covariance must have shape"):
        oja_drift(w[None], np.eye(5))


def _competition(p, nc, nu, c, rate, threshold, steps, rng):  # type: ignore[no-untyped-def]
    """simulate_competition written out."""
    n = nc + nu
    w = np.full((p, n), 1.0 / math.sqrt(n))
    alive = np.ones((p, n), dtype=bool)
    pruned = np.full((p, n), np.inf)
    common = np.sqrt(np.r_[np.full(nc, c), np.zeros(nu)])
    own = np.sqrt(np.r_[np.full(nc, 1.0 - c), np.ones(nu)])
    first = None
    for step in range(1, steps + 1):
        x = common * rng.standard_normal((p, 1)) + own * rng.standard_normal((p, n))
        y = (w * x).sum(axis=1, keepdims=True)
        change = (y * x - y * y * w) * alive
        if first is None:
            first = change
        w = w + rate * change
        newly = alive & (w < threshold)
        pruned[newly] = step
        alive &= ~newly
        w[~alive] = 0.0
    return w, pruned, first


def test_pruning_simulate_competition_against_a_plain_reimplementation() -> None:
    p, nc, nu = 6, 3, 4
    got = simulate_competition(p, nc, nu, correlation=0.6, eta=0.04, theta=0.3, steps=60, rng=np.random.default_rng(17))
    w, pruned, first = _competition(p, nc, nu, 0.6, 0.04, 0.3, 60, np.random.default_rng(17))
    np.testing.assert_allclose(got.weights, w, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(got.pruned_at, pruned)
    np.testing.assert_allclose(got.first_step, first, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(got.correlated, [True, True, True, False, False, False, False])
    assert np.isfinite(pruned).any()  # some pruned (weight 0)
    assert np.isinf(pruned).any()  # some kept
    assert np.all(got.weights[np.isfinite(pruned)] == 0.0)


def test_pruning_simulate_competition_defaults() -> None:
    a = simulate_competition(2, 2, 2, rng=np.random.default_rng(1))
    b = simulate_competition(2, 2, 2, correlation=0.5, eta=0.005, theta=0.05, steps=1500, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.pruned_at, b.pruned_at)
    w, pruned, _ = _competition(2, 2, 2, 0.5, 0.005, 0.05, 1500, np.random.default_rng(1))
    np.testing.assert_allclose(a.weights, w, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(a.pruned_at, pruned)


def test_pruning_simulate_competition_refuses_the_ends_of_its_ranges() -> None:
    rng = np.random.default_rng(0)
    # correlation in (0, 1); theta below the initial weight 1/sqrt(4) = 0.5
    simulate_competition(2, 2, 2, correlation=0.999, theta=0.4999, steps=1, rng=rng)
    for kwargs, name in (
        ({"correlation": 1.0}, r"^correlation must lie in \(0, 1\)"),
        ({"correlation": 0.0}, "correlation"),
        ({"theta": 0.5}, r"^theta must lie below the initial weight 1/sqrt\(n_inputs\) = 0.5"),
        ({"theta": 0.0}, "theta"),
        ({"eta": 0.0}, "eta"),
        ({"steps": 0}, "steps"),
    ):
        with pytest.raises(ValueError, match=name):
            simulate_competition(2, 2, 2, rng=rng, **kwargs)  # type: ignore[arg-type]
    for args, name in (((0, 2, 2), "n_neurons"), ((2, 0, 2), "n_correlated"), ((2, 2, 0), "n_uncorrelated")):
        with pytest.raises(ValueError, match=name):
            simulate_competition(*args, rng=rng)
    with pytest.raises(TypeError, match="rng"):
        simulate_competition(2, 2, 2, rng=0)  # type: ignore[arg-type]


def test_pruning_model_refuses_theta_at_w0_and_accepts_just_below() -> None:
    assert PruningModel(w0=1.0, theta=0.999, eta=1.0, kappa=1.0, sigma=0.0).distance == pytest.approx(0.001)
    with pytest.raises(ValueError, match=r"^theta must lie below w0"):
        PruningModel(w0=1.0, theta=1.0, eta=1.0, kappa=1.0, sigma=0.0)
    with pytest.raises(ValueError, match="theta"):
        PruningModel(w0=1.0, theta=float("nan"), eta=1.0, kappa=1.0, sigma=0.0)
    with pytest.raises(ValueError, match="eta"):
        PruningModel(w0=1.0, theta=0.0, eta=0.0, kappa=1.0, sigma=0.0)


def test_pruning_results_are_frozen() -> None:
    m = PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.sigma = 2.0  # type: ignore[misc]
    result = CompetitionResult(np.ones(2), np.ones(2), np.ones(2, dtype=bool), np.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.weights = np.zeros(2)  # type: ignore[misc]


# ======================================================================================= evolution


def test_evolution_linear_landscape_values_gradients_and_shapes() -> None:
    slope = [1.5, -0.5, 2.0]
    f = LinearLandscape(slope)
    assert f.dim == 3
    assert f.slope.dtype == np.float64
    z = np.array([[0.2, 0.4, -1.0], [1.0, 3.0, 0.5]])
    np.testing.assert_allclose(f.value(z), z @ np.array(slope), rtol=1e-15)
    g = f.grad(z)
    np.testing.assert_array_equal(g, np.tile(slope, (2, 1)))
    g[0, 0] = 99.0  # a writable copy, not a view of the slope
    assert f.slope[0] == 1.5
    scalar = LinearLandscape(2.5)  # a scalar slope is one trait
    assert scalar.dim == 1
    np.testing.assert_array_equal(scalar.value(np.array([[2.0], [3.0]])), [5.0, 7.5])
    given = np.array([1.0, 2.0])
    LinearLandscape(given).slope[0] = 7.0  # the landscape holds its own copy
    assert given[0] == 1.0
    with pytest.raises(ValueError, match=r"^genotypes must have last dimension 3, got shape \(2, 2\)"):
        f.value(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^genotypes must have last dimension 3"):
        f.grad(np.zeros(2))
    for bad in ([[1.0, 2.0]], [1.0, float("nan")]):
        with pytest.raises(ValueError, match=r"^slope must be a finite 1-D array"):
            LinearLandscape(bad)  # type: ignore[arg-type]


def test_evolution_rugged_landscape_closed_forms_and_defaults() -> None:
    default = RuggedLandscape()
    assert (default.dim, default.width, default.depth, default.period) == (2, 2.0, 1.0, 1.0)
    np.testing.assert_array_equal(default.optimum, [0.0, 0.0])
    f = RuggedLandscape(dim=3, width=1.7, depth=0.6, period=0.8, optimum=np.array([0.3, -0.2, 0.5]))
    z = np.array([[1.1, 0.4, -0.3], [0.3, -0.2, 0.5]])
    d = z - f.optimum
    k = 2 * math.pi / 0.8
    np.testing.assert_allclose(f.value(z), -(d * d).sum(-1) / (2 * 1.7**2) + 0.6 * np.cos(k * d).sum(-1), rtol=1e-14)
    assert float(f.value(f.optimum)) == pytest.approx(3 * 0.6, rel=1e-15)  # the global maximum
    np.testing.assert_allclose(f.grad(z), -d / 1.7**2 - 0.6 * k * np.sin(k * d), rtol=1e-14, atol=1e-15)
    v = np.array([0.04, 0.09, 0.01])
    np.testing.assert_allclose(
        f.smoothed_grad(z[0], v), -d[0] / 1.7**2 - 0.6 * k * np.sin(k * d[0]) * np.exp(-0.5 * k * k * v), rtol=1e-14
    )
    np.testing.assert_allclose(f.smoothed_grad(z[0], np.zeros(3)), f.grad(z[0]), rtol=1e-15)
    # a bowl without ripples (depth 0 is allowed)
    bowl = RuggedLandscape(dim=1, depth=0.0)
    np.testing.assert_allclose(bowl.value(np.array([[3.0]])), [-9.0 / 8.0], rtol=1e-15)
    for kwargs, name in (
        ({"dim": 0}, "dim"),
        ({"width": 0.0}, "width"),
        ({"depth": -0.1}, "depth"),
        ({"period": -1.0}, "period"),
        ({"optimum": np.zeros(3)}, r"^optimum must be a finite array of shape \(2,\)"),
        ({"optimum": np.array([0.0, np.nan])}, r"^optimum must be a finite array"),
    ):
        with pytest.raises(ValueError, match=name):
            RuggedLandscape(**kwargs)  # type: ignore[arg-type]


def _parents(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """_sample_parents written out: for each uniform u, the first index whose cumulative probability exceeds u."""
    r, n = probs.shape
    u = rng.random((r, n))
    out = np.empty((r, n), dtype=np.int64)
    for k in range(r):
        cum = np.cumsum(probs[k])
        cum[-1] = 1.0
        out[k] = np.minimum(np.searchsorted(cum, u[k], side="right"), n - 1)
    return out


def test_evolution_parent_sampling_picks_the_first_cumulative_probability_above_each_draw() -> None:
    probs = np.array([[0.1, 0.0, 0.3, 0.6], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0], [0.7, 0.3, 0.0, 0.0]])
    got = _sample_parents(probs, np.random.default_rng(3))
    np.testing.assert_array_equal(got, _parents(probs, np.random.default_rng(3)))
    np.testing.assert_array_equal(got[2], [3, 3, 3, 3])
    assert not np.any(got[0] == 1)
    assert np.all(got[3] <= 1)
    # many rows, probabilities that do not sum to exactly 1: each row stays in its own range
    big = np.random.default_rng(4).random((40, 6))
    big /= big.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(
        _sample_parents(big, np.random.default_rng(5)), _parents(big, np.random.default_rng(5))
    )


def test_evolution_parent_weights_are_a_stable_softmax_of_selection_times_fitness() -> None:
    f = LinearLandscape([1.0, -2.0])
    pop = np.random.default_rng(0).standard_normal((3, 4, 2))
    wf = WrightFisher(f, 4, 0.7, 0.0)
    logw = 0.7 * (pop @ np.array([1.0, -2.0]))
    w = np.exp(logw)
    np.testing.assert_allclose(wf.parent_weights(pop), w / w.sum(axis=-1, keepdims=True), rtol=1e-13)
    # fitness values whose exponentials overflow float64: still the softmax (the maximum is subtracted first)
    huge = pop * 1000.0
    assert np.abs(0.7 * (huge @ np.array([1.0, -2.0]))).max() > 710.0
    probs = wf.parent_weights(huge)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs, _softmax(0.7 * (huge @ np.array([1.0, -2.0]))), rtol=1e-12)
    # no selection: uniform
    np.testing.assert_array_equal(WrightFisher(f, 4, 0.0, 0.0).parent_weights(pop), np.full((3, 4), 0.25))


def _softmax(logw: np.ndarray) -> np.ndarray:
    shifted = np.exp(logw - logw.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


def _generation(wf: WrightFisher, pop: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """WrightFisher._reproduce written out."""
    r, n, d = pop.shape
    rows = np.arange(r)[:, None]
    child = pop[rows, _parents(probs, rng)]
    if wf.recombination:
        other = pop[rows, _parents(probs, rng)]
        child = np.where(rng.random((r, n, d)) < 0.5, other, child)
    if wf.mutation_sd > 0:
        child = child + wf.mutation_sd * rng.standard_normal((r, n, d))
    return child


@pytest.mark.parametrize(
    ("selection", "mutation_sd", "recombination"), [(0.8, 0.1, True), (0.3, 0.0, False), (0.0, 0.2, False)]
)
def test_evolution_wright_fisher_run_against_a_plain_reimplementation(
    selection: float, mutation_sd: float, recombination: bool
) -> None:
    f = RuggedLandscape(dim=3, width=1.5, depth=0.5, period=0.9)
    wf = WrightFisher(f, 5, selection, mutation_sd, recombination=recombination)
    pop0 = np.random.default_rng(1).standard_normal((2, 5, 3))
    history = wf.run(pop0, 4, np.random.default_rng(2))
    rng = np.random.default_rng(2)
    pop = pop0.copy()
    for t in range(5):
        fit = f.value(pop)
        np.testing.assert_allclose(history.means[t], pop.mean(axis=1), rtol=1e-13)
        for r in range(2):
            np.testing.assert_allclose(history.covariances[t, r], np.cov(pop[r].T), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(history.mean_log_fitness[t], fit.mean(axis=1), rtol=1e-13)
        np.testing.assert_allclose(history.var_log_fitness[t], fit.var(axis=1, ddof=1), rtol=1e-12)
        if t < 4:
            probs = _softmax(selection * fit)
            np.testing.assert_allclose(history.selected_means[t], np.einsum("rn,rni->ri", probs, pop), rtol=1e-12)
            pop = _generation(wf, pop, probs, rng)
    np.testing.assert_allclose(history.final, pop, rtol=1e-13)
    assert history.means.shape == (5, 2, 3)
    assert history.selected_means.shape == (4, 2, 3)
    # one step of the same population from the same generator is the first generation
    one = wf.step(pop0, np.random.default_rng(2))
    np.testing.assert_allclose(
        one, _generation(wf, pop0, _softmax(selection * f.value(pop0)), np.random.default_rng(2))
    )


def test_evolution_wright_fisher_run_of_one_population_and_its_defaults() -> None:
    wf = WrightFisher(LinearLandscape([0.5, 1.0]), 2, 0.4, 0.05)  # two individuals: the smallest population
    assert wf.recombination is False
    pop = np.array([[0.1, 0.2], [0.3, -0.4]])
    history = wf.run(pop, 3, np.random.default_rng(6))
    same = wf.run(pop[None], 3, np.random.default_rng(6))
    np.testing.assert_array_equal(history.final, same.final)
    assert history.final.shape == (1, 2, 2)
    np.testing.assert_array_equal(history.means[0, 0], [0.2, -0.1])
    with pytest.raises(ValueError, match=r"^population_size must be >= 2, got 1"):
        WrightFisher(LinearLandscape([1.0]), 1, 0.1, 0.1)
    with pytest.raises(TypeError, match=r"^landscape must be a LinearLandscape or a RuggedLandscape, got list"):
        WrightFisher([1.0], 3, 0.1, 0.1)  # type: ignore[arg-type]


def test_evolution_wright_fisher_refuses_bad_populations() -> None:
    wf = WrightFisher(LinearLandscape([0.5, 1.0]), 3, 0.4, 0.05)
    rng = np.random.default_rng(0)
    for bad in (np.zeros((3, 2)), np.zeros((1, 4, 2)), np.zeros((1, 3, 3)), np.zeros((1, 1, 3, 2))):
        with pytest.raises(ValueError, match=r"^population must have shape \(R, 3, 2\)"):
            wf.step(bad, rng)
    with pytest.raises(ValueError, match=r"^population must hold finite genotypes"):
        wf.step(np.full((1, 3, 2), np.inf), rng)
    for bad in (np.zeros((4, 2)), np.zeros((3, 3)), np.zeros(6), np.zeros((1, 1, 3, 2))):
        with pytest.raises(ValueError, match=r"^population must have shape \(N, d\) or \(R, N, d\)"):
            wf.run(bad, 2, rng)
    with pytest.raises(ValueError, match=r"^population must hold finite genotypes"):
        wf.run(np.array([[0.0, 1.0], [np.nan, 0.0], [0.0, 0.0]]), 2, rng)
    with pytest.raises(TypeError, match="rng"):
        wf.run(np.zeros((3, 2)), 2, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        wf.step(np.zeros((1, 3, 2)), 0)  # type: ignore[arg-type]
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn by the refusals


def _searches(landscape, x0, steps, pop_n, selection, mutation_sd, lr, noise, spread, rng):  # type: ignore[no-untyped-def]
    """compare_searches written out (SGD without momentum is x <- x + lr * estimate of grad f)."""
    out = {}
    x = x0.copy()
    for _ in range(steps):
        x = x + lr * (landscape.grad(x) + noise * rng.standard_normal(landscape.dim))
    out["sgd"] = (x, steps)
    half = pop_n // 2
    x = x0.copy()
    for _ in range(steps):
        eps = rng.standard_normal((half, landscape.dim))
        diff = landscape.value(x + spread * eps) - landscape.value(x - spread * eps)
        x = x + lr * (diff[:, None] * eps).mean(axis=0) / (2.0 * spread)
    out["evolution strategy"] = (x, steps * 2 * half)
    wf = WrightFisher(landscape, pop_n, selection, mutation_sd)
    pop = np.broadcast_to(x0, (1, pop_n, landscape.dim)).copy()
    for _ in range(steps):
        pop = _generation(wf, pop, _softmax(selection * landscape.value(pop)), rng)
    out["wright-fisher"] = (pop[0].mean(axis=0), steps * pop_n)
    return out


def _check_searches(results, expected, landscape) -> None:  # type: ignore[no-untyped-def]
    assert [r.name for r in results] == ["sgd", "evolution strategy", "wright-fisher"]
    for r in results:
        final, evaluations = expected[r.name]
        np.testing.assert_allclose(r.final, final, rtol=1e-10, atol=1e-12)
        assert r.final_value == pytest.approx(float(landscape.value(final)), rel=1e-10, abs=1e-12)
        assert r.evaluations == evaluations


def test_evolution_compare_searches_against_a_plain_reimplementation() -> None:
    f = RuggedLandscape(dim=2, width=1.8, depth=0.7, period=1.1)
    x0 = np.array([1.4, -0.9])
    kwargs = {"selection": 0.9, "mutation_sd": 0.2, "lr": 0.03, "gradient_noise": 0.6, "es_sigma": 0.4}
    results = compare_searches(f, x0, iterations=7, population_size=9, rng=np.random.default_rng(12), **kwargs)
    expected = _searches(f, x0, 7, 9, 0.9, 0.2, 0.03, 0.6, 0.4, np.random.default_rng(12))
    _check_searches(results, expected, f)
    np.testing.assert_array_equal(x0, [1.4, -0.9])  # the start is not moved


def test_evolution_compare_searches_defaults() -> None:
    f = RuggedLandscape(dim=2)
    x0 = np.array([0.6, -0.4])
    results = compare_searches(f, x0, rng=np.random.default_rng(3))
    expected = _searches(f, x0, 300, 200, 0.5, 0.15, 0.05, 1.0, 0.5, np.random.default_rng(3))
    _check_searches(results, expected, f)
    # no gradient noise is allowed: plain gradient ascent
    quiet = compare_searches(f, x0, iterations=3, population_size=2, gradient_noise=0.0, rng=np.random.default_rng(0))
    _check_searches(quiet, _searches(f, x0, 3, 2, 0.5, 0.15, 0.05, 0.0, 0.5, np.random.default_rng(0)), f)


def test_evolution_compare_searches_refuses_bad_settings_before_any_search() -> None:
    f = RuggedLandscape(dim=2)
    rng = np.random.default_rng(0)
    for kwargs, name in (
        ({"iterations": 0}, "iterations"),
        ({"population_size": 0}, "population_size"),
        ({"population_size": 1}, "population_size"),
        ({"gradient_noise": -1.0}, "gradient_noise"),
        ({"es_sigma": 0.0}, "es_sigma"),
        ({"lr": 0.0}, "lr"),
        ({"selection": -1.0}, "selection"),
        ({"mutation_sd": -0.1}, "mutation_sd"),
    ):
        with pytest.raises(ValueError, match=name):
            compare_searches(f, np.zeros(2), rng=rng, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^start must have 2 entries"):
        compare_searches(f, np.zeros(3), rng=rng)
    with pytest.raises(ValueError, match="start"):
        compare_searches(f, np.array([0.0, np.nan]), rng=rng)
    with pytest.raises(TypeError, match=r"^landscape must be a RuggedLandscape, got LinearLandscape"):
        compare_searches(LinearLandscape([1.0, 1.0]), np.zeros(2), rng=rng)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        compare_searches(f, np.zeros(2), rng=0)  # type: ignore[arg-type]
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn by the refusals


def test_evolution_results_are_frozen() -> None:
    f = LinearLandscape([1.0])
    history = WrightFisher(f, 2, 0.1, 0.1).run(np.zeros((2, 1)), 1, np.random.default_rng(0))
    search = compare_searches(
        RuggedLandscape(), np.zeros(2), iterations=1, population_size=2, rng=np.random.default_rng(0)
    )
    for obj, name in (
        (f, "slope"),
        (RuggedLandscape(), "width"),
        (WrightFisher(f, 2, 0.1, 0.1), "selection"),
        (history, "final"),
        (search[0], "final_value"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 0.0)


def test_evolution_integer_and_float32_inputs_are_held_in_float64() -> None:
    assert LinearLandscape([1, 2]).slope.dtype == np.float64
    assert RuggedLandscape(optimum=np.array([1, 2])).optimum.dtype == np.float64
    wf = WrightFisher(LinearLandscape([0.5, 1.0]), 3, 0.4, 0.0)  # no mutation: children are copies of parents
    pop32 = np.random.default_rng(1).standard_normal((1, 3, 2)).astype(np.float32)
    child = wf.step(pop32, np.random.default_rng(2))
    assert child.dtype == np.float64
    np.testing.assert_array_equal(child, wf.step(pop32.astype(np.float64), np.random.default_rng(2)))
    history = wf.run(pop32[0], 2, np.random.default_rng(3))
    assert history.final.dtype == np.float64
    with pytest.raises(ValueError, match="start"):
        compare_searches(RuggedLandscape(), np.zeros((1, 2)), rng=np.random.default_rng(0))


@pytest.mark.parametrize("bad", ["0.3", ["0.1", "0.2"], True, [True, False], [0.1, None]])
def test_morphogen_positions_and_counts_refuse_strings_booleans_and_objects(bad):
    """Positions and counts are numbers: a numeric string or a boolean is refused by name, not converted."""
    g = ExponentialGradient(c0=100.0, decay_length=0.2)
    with pytest.raises(TypeError, match=r"^x must be real numbers, got "):
        g.concentration(bad)
    with pytest.raises(TypeError, match=r"^counts must be real numbers, got "):
        g.decode(bad)


def test_morphogen_accepts_integer_positions_and_counts_as_float64():
    g = ExponentialGradient(c0=100.0, decay_length=0.5)
    np.testing.assert_array_equal(g.concentration([0, 1]), 100.0 * np.exp(-np.array([0.0, 2.0])))
    np.testing.assert_array_equal(g.decode(np.array([100], dtype=np.uint8)), [0.0])


def test_evolution_parent_weights_are_a_stable_softmax_far_from_the_optimum() -> None:
    """Selection probabilities ``W_i / sum W`` with ``W = exp(selection * fitness)``, computed as a softmax shifted by
    the largest log-fitness: a population 40 to 60 widths from the peak (log-fitness -800 to -1800, where every plain
    exponential underflows to 0 and ``0 / 0`` would be NaN) still gets finite probabilities, equal to scipy's."""
    from scipy.special import softmax

    rugged = RuggedLandscape(dim=2, width=1.0, depth=0.0)
    wf = WrightFisher(rugged, 4, 1.0, 0.0)
    population = np.array([[[40.0, 0.0], [42.0, 5.0], [45.0, 20.0], [60.0, -1.0]]])
    log_fitness = rugged.value(population)
    assert log_fitness.max() < -745  # exp underflows to 0 for every individual without the shift
    weights = wf.parent_weights(population)
    np.testing.assert_allclose(weights, softmax(log_fitness, axis=-1), rtol=1e-12, atol=0)
    assert weights.sum() == pytest.approx(1.0, rel=1e-15)
