"""Tests that close the mutation-testing gaps of ``bio/experiments.py`` and ``bio/plots.py`` (issue 18).

The experiments are thin wrappers over the bio simulations: each is run at a tiny size and every number of every
finding (predicted value, measurement, standard error, tolerance, bound, details, curve) is held exactly to a
replay of the same simulations from the same seed, or to its closed form (mean passage ``(w0 - theta)/(eta kappa)``,
variance ``(w0 - theta) sigma^2 / (eta kappa^3)``, the KS critical value, the delta-method optimum). The Bicoid
experiment and the figure writer simulate up to 2,000,000 nuclei; their simulators are wrapped so that the call
is recorded (its arguments checked) and run for real on 1/100 of the size, and the replay uses the same sizes.
The figures are drawn on the Agg canvas: the data, labels, styles and limits of the artists are checked, and the
PNG's size in pixels; no pixel is compared. No statistical claim is made here, so there is no tolerance beyond
float rounding.
"""

from __future__ import annotations

import math
import runpy
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from noisygrad.bio import experiments as ex
from noisygrad.bio import plots
from noisygrad.bio.evolution import LinearLandscape, RuggedLandscape, WrightFisher, compare_searches
from noisygrad.bio.morphogen import (
    ErrorCurve,
    ExponentialGradient,
    error_curve_around_optimum,
    positional_error,
    simulate_boundary,
)
from noisygrad.bio.pruning import PruningModel, input_covariance, oja_drift, simulate_competition
from noisygrad.tour.kit import FALSE_ALARM, TOLERANCE_Z

SHRINK = 100  # the wrapped simulators run on 1/SHRINK of the nuclei or embryos asked for


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


# ============================================================================================ pruning_passage


def _replay_passage(seed: int, sigmas: tuple[float, ...], n: int, neurons: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for sigma in sigmas:
        model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=sigma)
        t = model.simulate_sde(n, rng, method="bridge", dt=1.0)
        walk = model.simulate_walk(n, rng)
        out.append({"sigma": sigma, "model": model, "t": t, "walk": walk})
    competition = simulate_competition(neurons, 5, 15, correlation=0.5, eta=0.005, theta=0.05, steps=1200, rng=rng)
    out.append({"competition": competition})
    return out


@pytest.fixture(scope="module")
def passage() -> list[Any]:
    return ex.pruning_passage(seed=3, quick=True, trials=1000)


@pytest.fixture(scope="module")
def replayed() -> list[dict[str, Any]]:
    return _replay_passage(3, (0.5, 4.0), 1000, 1000)


def test_pruning_passage_findings_hold_the_replayed_numbers(passage, replayed):
    replay = replayed
    assert len(passage) == 2 * 4 + 4
    assert {f.experiment for f in passage} == {"bio.pruning-passage"}
    for k, run in enumerate(replay[:2]):
        sigma, model, t, walk = run["sigma"], run["model"], run["t"], run["walk"]
        mean, var_f, ks_f, walk_f = passage[4 * k : 4 * k + 4]
        n = 1000
        assert model.mean_passage_time() == pytest.approx(80.0, rel=1e-12)
        assert model.variance_passage_time() == pytest.approx(80.0 * sigma**2, rel=1e-12)
        # the mean
        se = math.sqrt(float(t.var(ddof=1)) / n)
        assert mean.claim == f"diffusion passage-time mean is (w0-theta)/(eta kappa), sigma={sigma}"
        assert (mean.predicted, mean.measured, mean.unit) == (model.mean_passage_time(), float(t.mean()), "steps")
        assert _close(mean.uncertainty, se)
        assert _close(mean.tolerance, TOLERANCE_Z * se)
        assert mean.bound == ""
        details = dict(mean.details)
        seconds = details.pop("seconds")
        assert details == {"sigma": sigma, "trials": n, "method": "bridge, dt = 1 step"}
        assert isinstance(seconds, float)
        assert 0.0 <= seconds < 60
        assert seconds == round(seconds, 3)
        # the variance and its standard error sqrt(m4 - m2^2) / sqrt(n)
        dev = t - t.mean()
        var_se = math.sqrt(float(np.mean(dev**4)) - float(np.mean(dev**2)) ** 2) / math.sqrt(n)
        assert var_f.claim.startswith("diffusion passage-time variance")
        assert var_f.claim.endswith(f"sigma={sigma}")
        assert (var_f.predicted, var_f.measured, var_f.unit) == (
            model.variance_passage_time(),
            float(t.var(ddof=1)),
            "steps^2",
        )
        assert _close(var_f.uncertainty, var_se)
        assert _close(var_f.tolerance, TOLERANCE_Z * var_se)
        assert var_f.details == mean.details
        # the KS distance against its critical value at the tour's false-alarm probability
        ks = stats.kstest(t, model.passage_time_distribution().cdf)
        assert ks_f.bound == "upper"
        assert ks_f.predicted == 0.0
        assert ks_f.tolerance == float(stats.kstwo.isf(FALSE_ALARM, n))
        assert ks_f.measured == float(ks.statistic)
        assert ks_f.details["ks_pvalue"] == float(ks.pvalue)
        assert ks_f.details["sigma"] == sigma
        assert (
            ks_f.details["tolerance"]
            == f"KS critical value at p = {FALSE_ALARM:.1e} (the tour's 4 s.e. false-alarm rate)"
        )
        _check_histogram(ks_f.curve, t, model)
        # the discrete walk
        walk_se = float(walk.std(ddof=1)) / math.sqrt(n)
        assert walk_f.claim.startswith("discrete-walk mean")
        assert walk_f.claim.endswith(f"sigma={sigma}")
        assert (walk_f.predicted, walk_f.measured, walk_f.unit) == (
            model.discrete_mean_passage_time(),
            float(walk.mean()),
            "steps",
        )
        assert _close(walk_f.uncertainty, walk_se)
        assert _close(walk_f.tolerance, TOLERANCE_Z * walk_se)
        assert walk_f.details == {
            "sigma": sigma,
            "trials": n,
            "diffusion_mean": model.mean_passage_time(),
            "siegmund_approximation": model.mean_passage_time() + 0.5826 * sigma + 0.25,
        }


def _check_histogram(curve: Any, t: np.ndarray, model: PruningModel) -> None:
    low, high = np.quantile(t, [0.001, 0.999])
    edges = np.linspace(low, high, 41)
    counts, _ = np.histogram(t, bins=edges)
    width = edges[1] - edges[0]
    assert curve.x_label == "elimination time (steps)"
    assert curve.y_label == "probability density (1/step)"
    assert len(curve.x) == 40
    assert len(curve.predicted_x) == 200
    assert np.allclose(curve.x, 0.5 * (edges[:-1] + edges[1:]), rtol=1e-13, atol=0.0)
    assert np.allclose(curve.measured, counts / (t.size * width), rtol=1e-9, atol=0.0)
    assert np.allclose(curve.uncertainty, np.sqrt(counts) / (t.size * width), rtol=1e-9, atol=0.0)
    fine = np.linspace(low, high, 200)
    assert np.allclose(curve.predicted_x, fine, rtol=1e-13, atol=0.0)
    assert np.allclose(curve.predicted, model.passage_time_distribution().pdf(fine), rtol=1e-12, atol=0.0)
    assert not curve.log_x
    assert not curve.log_y


def test_pruning_passage_competition_findings(passage, replayed):
    result = replayed[-1]["competition"]
    expected = oja_drift(np.full(20, 1 / math.sqrt(20)), input_covariance(5, 15, 0.5))
    details = {"neurons": 1000, "correlated_inputs": 5, "uncorrelated_inputs": 15, "correlation": 0.5}
    drift_c, drift_u, kept, pruned = passage[8:]
    for finding, label, group in (
        (drift_c, "correlated", result.correlated),
        (drift_u, "uncorrelated", ~result.correlated),
    ):
        per_neuron = result.first_step[:, group].mean(axis=1)
        se = float(per_neuron.std(ddof=1)) / math.sqrt(1000)
        assert finding.claim == f"Oja competition: first-step drift of {label} weights is (Cw - (w'Cw) w)_i"
        assert finding.predicted == float(expected[group].mean())
        assert finding.measured == float(per_neuron.mean())
        assert _close(finding.uncertainty, se)
        assert _close(finding.tolerance, TOLERANCE_Z * se)
        assert finding.unit == "weight / eta"
        assert finding.details == details
    assert drift_c.predicted > 0 > drift_u.predicted  # correlated inputs grow, the others shrink
    wrong_side = {**details, "tolerance": "at most 1% of synapses on the wrong side"}
    assert (kept.bound, kept.predicted, kept.tolerance, kept.unit) == ("lower", 1.0, pytest.approx(0.01), "fraction")
    assert kept.measured == result.kept_fraction("correlated")
    assert kept.details == wrong_side
    assert kept.claim == "Oja competition: correlated inputs are kept"
    p = result.pruned_at[:, ~result.correlated]
    assert (pruned.bound, pruned.predicted, pruned.tolerance, pruned.unit) == ("upper", 0.0, 0.01, "fraction")
    assert pruned.measured == result.kept_fraction("uncorrelated")
    assert pruned.details == {**wrong_side, "median_pruning_step": float(np.median(p[np.isfinite(p)]))}
    assert all(f.passed for f in passage)


def test_pruning_passage_full_size_runs_four_noise_levels_and_ten_thousand_neurons(monkeypatch):
    asked: list[Any] = []
    real = ex.simulate_competition

    def recorded(neurons, nc, nu, **kwargs):
        asked.append((neurons, nc, nu, kwargs))
        return real(1000, nc, nu, **kwargs)

    monkeypatch.setattr(ex, "simulate_competition", recorded)
    findings = ex.pruning_passage(seed=0, quick=False, trials=1000)
    assert [f.details["sigma"] for f in findings[:16:4]] == [0.5, 1.0, 2.0, 4.0]
    ((neurons, nc, nu, kwargs),) = asked
    assert (neurons, nc, nu) == (10000, 5, 15)
    assert {k: v for k, v in kwargs.items() if k != "rng"} == {
        "correlation": 0.5,
        "eta": 0.005,
        "theta": 0.05,
        "steps": 1200,
    }
    assert findings[16].details["correlated_inputs"] == 5
    assert findings[16].details["uncorrelated_inputs"] == 15
    assert findings[16].details["neurons"] == 10000
    assert len(findings) == 20


def test_pruning_passage_default_trials():
    (trials,) = ex.pruning_passage.parameters
    assert (trials.name, trials.default, trials.low, trials.high) == ("trials", 40_000, 1000, 10**7)


def test_histogram_curve_directly():
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=1.0)
    t = np.arange(1.0, 1001.0)
    _check_histogram(ex._histogram_curve(t, model), t, model)


# ============================================================================================ bicoid_optimum


class _Recorder:
    """Wraps the Bicoid simulators of the experiments module: records each call, runs it on 1/SHRINK the size."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.curves: list[dict[str, Any]] = []
        self.boundaries: list[dict[str, Any]] = []
        monkeypatch.setattr(ex, "error_curve_around_optimum", self.curve)
        monkeypatch.setattr(ex, "simulate_boundary", self.boundary)

    def curve(self, x_t, constraint="amplitude", **kwargs):
        self.curves.append({"x_t": x_t, "constraint": constraint, **kwargs})
        return error_curve_around_optimum(x_t, constraint, **{**kwargs, "n_nuclei": kwargs["n_nuclei"] // SHRINK})

    def boundary(self, gradient, x_t, **kwargs):
        self.boundaries.append({"gradient": gradient, "x_t": x_t, **kwargs})
        return simulate_boundary(gradient, x_t, **{**kwargs, "n_embryos": kwargs["n_embryos"] // SHRINK})


@pytest.fixture(scope="module")
def bicoid() -> tuple[list[Any], _Recorder]:
    with pytest.MonkeyPatch.context() as mp:
        recorder = _Recorder(mp)
        return ex.bicoid_optimum(seed=2, quick=True), recorder


def _curve_matches(curve: Any, expected: ErrorCurve) -> None:
    assert curve.x_label == "decay length lambda (egg lengths)"
    assert curve.y_label == "positional error sigma_x at x_T (egg lengths)"
    assert list(curve.x) == np.asarray(expected.decay_lengths).tolist()
    assert list(curve.measured) == np.asarray(expected.error).tolist()
    assert list(curve.uncertainty) == np.asarray(expected.error_se).tolist()
    assert list(curve.predicted) == np.asarray(expected.predicted).tolist()


def test_bicoid_optimum_asks_for_the_documented_simulations(bicoid):
    findings, recorder = bicoid
    common = {"x_t": 0.48, "count_at_reference": 700.0, "reference_decay_length": 0.2, "n_nuclei": 300_000}
    assert [{k: c[k] for k in common} for c in recorder.curves] == [common] * 4
    assert [c["constraint"] for c in recorder.curves] == ["amplitude", "total", "flux", "amplitude"]
    assert [c.get("cv_amplitude", 0.0) for c in recorder.curves] == [0.0, 0.0, 0.0, 0.05]
    assert all(isinstance(c["rng"], np.random.Generator) for c in recorder.curves)
    (call,) = recorder.boundaries
    assert call["x_t"] == 0.48
    assert call["n_embryos"] == 20_000
    assert call["rng"] is recorder.curves[0]["rng"]
    assert call["gradient"] == ExponentialGradient(700.0 * math.exp(0.48 / 0.2), 0.2)
    assert len(findings) == 5
    assert {f.experiment for f in findings} == {"bio.bicoid-optimum"}


def test_bicoid_optimum_findings_hold_the_replayed_numbers(bicoid):
    findings, _ = bicoid
    rng = np.random.default_rng(2)
    kwargs = {"count_at_reference": 700.0, "reference_decay_length": 0.2, "n_nuclei": 300_000 // SHRINK, "rng": rng}
    for finding, constraint, beta in zip(findings[:3], ("amplitude", "total", "flux"), (0.0, -1.0, 1.0), strict=True):
        best, curve = error_curve_around_optimum(0.48, constraint, **kwargs)
        assert best == pytest.approx(0.48 / (2 - beta), rel=1e-12)  # the delta method's optimum
        fitted, se = curve.fitted_optimum(), curve.fitted_optimum_se()
        assert finding.claim == f"optimal decay length is x_T/(2 - beta), {constraint} fixed (beta={beta:+g})"
        assert (finding.predicted, finding.measured, finding.uncertainty, finding.unit) == (best, fitted, se, "EL")
        assert _close(finding.tolerance, 0.003 * best + TOLERANCE_Z * se)
        err = positional_error(
            0.48, np.array([0.2, best]), constraint=constraint, count_at_reference=1.0, reference_decay_length=0.2
        )
        assert finding.details == {
            "x_T": 0.48,
            "grid": "21 points on [lambda*/1.5, 1.5 lambda*]",
            "nuclei_per_point": 300_000,
            "fit": "quartic in log-log",
            "tolerance": "0.3% of lambda* (delta-method bias) + 4 s.e.",
            "within_acceptance": abs(fitted / best - 1) < 0.02,
            "error_at_0.2EL_over_optimum": float(err[0] / err[1]),
        }
        _curve_matches(finding.curve, curve)
    best, curve = error_curve_around_optimum(0.48, "amplitude", cv_amplitude=0.05, **kwargs)
    cv = findings[3]
    assert best < 0.24  # amplitude noise moves the optimum below x_T / 2
    assert (cv.predicted, cv.measured, cv.uncertainty, cv.unit) == (
        best,
        curve.fitted_optimum(),
        curve.fitted_optimum_se(),
        "EL",
    )
    assert _close(cv.tolerance, 0.006 * best + TOLERANCE_Z * curve.fitted_optimum_se())
    assert cv.claim == "embryo-to-embryo amplitude noise (sd of ln c0 = 0.05) moves the optimum to shorter lambda"
    assert cv.details == {
        "noiseless_optimum": 0.24,
        "nuclei_per_point": 300_000,
        "tolerance": "0.6% of lambda* (delta-method bias) + 4 s.e.",
        "within_acceptance": abs(curve.fitted_optimum() / best - 1) < 0.02,
    }
    _curve_matches(cv.curve, curve)
    gradient = ExponentialGradient(700.0 * math.exp(0.48 / 0.2), 0.2)
    edges, predicted = simulate_boundary(gradient, 0.48, n_embryos=20_000 // SHRINK, rng=rng)
    spread = findings[4]
    sd = float(edges.std(ddof=1))
    sd_se = sd / math.sqrt(2 * (20_000 - 1))  # the experiment's own count of embryos
    assert (spread.predicted, spread.measured, spread.unit) == (predicted, sd, "EL")
    assert _close(spread.uncertainty, sd_se)
    assert _close(spread.tolerance, TOLERANCE_Z * sd_se)
    assert spread.details["boundary_mean_EL"] == float(edges.mean())
    assert spread.details["single_nucleus_error_EL"] == float(gradient.positional_error(0.48))
    assert spread.details["embryos"] == 20_000
    assert spread.details["nuclear_spacing_EL"] == 0.01
    assert spread.details["gregor_2007"]["decay_length_EL"] == 0.2


def test_bicoid_optimum_full_size_and_defaults(monkeypatch, bicoid):
    recorder = _Recorder(monkeypatch)
    ex.bicoid_optimum(seed=2, quick=False)
    assert {c["n_nuclei"] for c in recorder.curves} == {2_000_000}
    assert recorder.boundaries[0]["n_embryos"] == 200_000
    defaults = ex.bicoid_optimum()  # seed 0, quick
    assert recorder.curves[4]["n_nuclei"] == 300_000
    assert recorder.boundaries[1]["n_embryos"] == 20_000
    rng = np.random.default_rng(0)
    kwargs = {"count_at_reference": 700.0, "reference_decay_length": 0.2, "n_nuclei": 3000, "rng": rng}
    assert defaults[0].measured == error_curve_around_optimum(0.48, "amplitude", **kwargs)[1].fitted_optimum()


def test_error_ratio_is_the_error_at_gregors_length_over_the_optimum():
    err = positional_error(
        0.48, np.array([0.2, 0.3]), constraint="flux", count_at_reference=1.0, reference_decay_length=0.2
    )
    assert ex._error_ratio(0.48, 0.2, 0.3, "flux") == float(err[0] / err[1])
    assert ex._error_ratio(0.48, 0.2, 0.2, "total") == 1.0


# ============================================================================================ evolution


def test_evolution_findings_hold_the_replayed_numbers():
    findings = ex.evolution(seed=5, quick=True, replicates=8, generations=10)
    rng = np.random.default_rng(5)
    n, reps, gens, s, m = 1000, 8, 10, 0.05, 0.05
    landscape = LinearLandscape(np.array([1.0, 0.5]))
    unit = np.array([1.0, 0.5]) / math.sqrt(1.25)
    start = 0.3 * rng.standard_normal((reps, n, 2))
    history = WrightFisher(landscape, n, s, m, recombination=True).run(start, gens, rng)
    rugged = RuggedLandscape(dim=2, width=2.0, depth=1.0, period=1.0)
    table: dict[str, list[float]] = {}
    for _ in range(3):
        for result in compare_searches(rugged, np.array([2.3, 1.7]), rng=rng):
            table.setdefault(result.name, []).append(round(result.final_value, 3))
    drift = WrightFisher(landscape, n, 0.0, m).run(start, gens, rng)
    gain = np.diff(history.mean_log_fitness, axis=0).mean(axis=0)
    predicted = s * history.var_log_fitness[:-1].mean(axis=0)
    se = float((gain - predicted).std(ddof=1)) / math.sqrt(reps)
    details = {
        "N": n,
        "s": s,
        "mutation_sd": m,
        "recombination": True,
        "replicates": reps,
        "generations": gens,
        "rugged_final_log_fitness": table,
        "rugged_global_max": float(rugged.value(rugged.optimum)),
        "rugged_start_log_fitness": float(rugged.value(np.array([2.3, 1.7]))),
    }
    assert len(findings) == 3
    assert {f.experiment for f in findings} == {"bio.evolution"}
    sel, mean0, var0 = findings
    assert sel.claim == "mean log-fitness gain per generation is s Var(f) = s b'Gb (Lande / Fisher)"
    assert (sel.predicted, sel.measured, sel.unit) == (
        float(predicted.mean()),
        float(gain.mean()),
        "log-fitness / generation",
    )
    assert _close(sel.uncertainty, se)
    assert _close(sel.tolerance, TOLERANCE_Z * se)
    assert sel.details == details
    assert len(table) == 3
    assert all(len(v) == 3 for v in table.values())
    curve = sel.curve
    assert curve.x_label == "generation"
    assert curve.y_label == "mean log-fitness f (mean over replicates)"
    assert list(curve.x) == list(range(gens + 1))
    assert np.array_equal(curve.measured, history.mean_log_fitness.mean(axis=1))
    cumulative = np.concatenate([[0.0], np.cumsum(s * history.var_log_fitness[:-1].mean(axis=1))])
    assert np.allclose(curve.predicted, history.mean_log_fitness[0].mean() + cumulative, rtol=1e-13, atol=1e-15)
    along = np.diff(drift.means, axis=0) @ unit
    per_rep = along.mean(axis=0)
    drift_se = float(per_rep.std(ddof=1)) / math.sqrt(reps)
    g_along = np.einsum("i,trij,j->tr", unit, drift.covariances[:-1], unit)
    predicted_var = float(np.mean((g_along * (1 - 1 / n) + m**2) / n))
    measured_var = float(np.mean(along**2))
    var_se = measured_var * math.sqrt(2.0 / along.size)
    neutral = {
        **details,
        "s": 0.0,
        "recombination": False,
        "step_along_gradient_with_selection": float((np.diff(history.means, axis=0) @ unit).mean()),
    }
    assert mean0.claim.startswith("drift (s = 0): the mean genotype's step along grad f has mean 0")
    assert (mean0.predicted, mean0.unit) == (0.0, "trait units / generation")
    assert _close(mean0.measured, float(per_rep.mean()))
    assert _close(mean0.uncertainty, drift_se)
    assert _close(mean0.tolerance, TOLERANCE_Z * drift_se)
    assert var0.claim.startswith("drift (s = 0): that step's variance is")
    assert _close(var0.predicted, predicted_var)
    assert _close(var0.measured, measured_var)
    assert var0.unit == "trait units^2"
    assert _close(var0.uncertainty, var_se)
    assert _close(var0.tolerance, TOLERANCE_Z * var_se)
    assert mean0.details.keys() == neutral.keys()
    assert var0.details == mean0.details
    for key, value in neutral.items():
        assert mean0.details[key] == value or _close(mean0.details[key], value), key
    assert all(f.passed for f in findings)


def test_evolution_declares_its_sizes():
    replicates, generations = ex.evolution.parameters
    assert (replicates.name, replicates.default, replicates.full) == ("replicates", 32, 256)
    assert (replicates.low, replicates.high) == (8, 10_000)
    assert (generations.name, generations.default, generations.full) == ("generations", 40, 100)
    assert (generations.low, generations.high) == (10, 10_000)


def test_rugged_comparison_runs_ten_rounds_at_full_size(monkeypatch):
    rugged = RuggedLandscape(dim=2, width=2.0, depth=1.0, period=1.0)
    once = compare_searches(rugged, np.array([2.3, 1.7]), rng=np.random.default_rng(0))  # one real round
    calls: list[Any] = []

    def recorded(landscape, start, *, rng):
        calls.append((landscape, tuple(start)))
        return once

    monkeypatch.setattr(ex, "compare_searches", recorded)
    table = ex._rugged_comparison(np.random.default_rng(0), False)["rugged_final_log_fitness"]
    assert len(calls) == 10
    assert all(start == (2.3, 1.7) for _, start in calls)
    assert table == {r.name: [round(r.final_value, 3)] * 10 for r in once}
    assert ex._rugged_comparison(np.random.default_rng(0), True)["rugged_final_log_fitness"] == {
        r.name: [round(r.final_value, 3)] * 3 for r in once
    }


def test_module_constants():
    assert (ex._DELTA_METHOD_BIAS, ex._DELTA_METHOD_BIAS_CV) == (0.003, 0.006)


# ============================================================================================ plots


class _Figures:
    """Records every figure that ``plots._figure`` makes (the real one, on the Agg canvas)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[Any] = []
        real = plots._figure

        def figure(*args: Any, **kwargs: Any) -> Any:
            self.made.append(real(*args, **kwargs))
            return self.made[-1]

        monkeypatch.setattr(plots, "_figure", figure)


def _png_size(path: Path) -> tuple[int, int, int]:
    """Width and height in pixels, and the dots per metre of the pHYs chunk (the dpi written)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = data.index(b"pHYs")
    return width, height, int.from_bytes(data[at + 4 : at + 8], "big")


def _style(artist: Any) -> tuple[Any, ...]:
    from matplotlib.colors import to_hex

    return to_hex(artist.get_color()), artist.get_linestyle(), artist.get_linewidth(), artist.get_label()


def _legend_checks(ax: Any, fontsize: str | None) -> None:
    from matplotlib.font_manager import FontProperties

    legend = ax.get_legend()
    assert legend is not None
    assert not legend.get_frame_on()
    if fontsize is not None:
        expected = FontProperties(size=fontsize).get_size_in_points()
        assert {t.get_fontsize() for t in legend.get_texts()} == {expected}
    else:
        assert {t.get_fontsize() for t in legend.get_texts()} == {FontProperties(size="medium").get_size_in_points()}


def test_figure_is_six_by_four_inches_and_constrained():
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = plots._figure()
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    assert fig.canvas.__class__.__name__ == "FigureCanvasAgg"
    assert tuple(plots._figure(3.0, 2.0).get_size_inches()) == (3.0, 2.0)


def test_plot_passage_times_draws_the_histogram_the_density_and_the_mean(monkeypatch, tmp_path):
    from matplotlib.colors import to_hex

    figures = _Figures(monkeypatch)
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
    times = np.concatenate([np.arange(1, 301), [np.inf, np.nan]]).astype(np.float32)  # drawn in float64
    path = plots.plot_passage_times(model, times, tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b" / "pruning_passage_times.png"
    assert _png_size(path) == (720, 480, round(120 / 0.0254))
    (fig,) = figures.made
    (ax,) = fig.axes
    t = np.arange(1.0, 301.0)
    heights = np.array([p.get_height() for p in ax.patches])
    counts, edges = np.histogram(t, bins=80, density=True)
    assert len(heights) == 80
    assert np.allclose(heights, counts, rtol=1e-12, atol=0.0)
    assert np.isclose(ax.patches[0].get_x(), edges[0])
    assert to_hex(ax.patches[0].get_facecolor()) == "#bfbfbf"
    assert ax.patches[0].get_label() == "simulated (300 synapses)"
    density, mean = ax.lines
    grid = np.linspace(1.0, np.quantile(t, 0.999), 400)
    assert np.allclose(density.get_xdata(), grid, rtol=1e-14, atol=0.0)
    assert np.allclose(density.get_ydata(), model.passage_time_distribution().pdf(grid), rtol=1e-12, atol=0.0)
    assert _style(density) == ("#1f77b4", "-", 2.0, "inverse Gaussian (diffusion)")
    assert list(mean.get_xdata()) == [80.0, 80.0]
    assert _style(mean)[:2] == ("#ff7f0e", "--")
    assert mean.get_label() == "mean (w0-θ)/(ηκ) = 80"
    assert ax.get_xlabel() == "elimination time (steps)"
    assert ax.get_ylabel() == "probability density (1/step)"
    assert ax.get_title() == "Synaptic pruning as first passage, σ = 2"
    _legend_checks(ax, None)
    again = plots.plot_passage_times(model, t, tmp_path / "a" / "b", filename="x.png")  # the folder exists
    assert again.name == "x.png"
    assert again.exists()


def test_plot_passage_times_grid_starts_above_zero_and_refuses_no_finite_time(monkeypatch, tmp_path):
    figures = _Figures(monkeypatch)
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
    plots.plot_passage_times(model, np.array([0.0, 5.0, 10.0]), tmp_path)
    assert figures.made[0].axes[0].lines[0].get_xdata()[0] == 1e-9
    plots.plot_passage_times(model, np.array([7.0]), tmp_path)  # one finite time is enough
    with pytest.raises(ValueError, match="at least one finite passage time"):
        plots.plot_passage_times(model, np.array([np.nan, -np.inf]), tmp_path)


def _curve(lo: float, hi: float) -> ErrorCurve:
    lam = np.linspace(lo, hi, 9)
    error = 0.01 + (np.log(lam / 0.25)) ** 2
    return ErrorCurve(lam, error, 0.001 * np.ones(9), error * 1.01)


def test_plot_error_curve_draws_the_points_the_theory_and_the_optima(monkeypatch, tmp_path):
    from matplotlib.colors import to_hex

    figures = _Figures(monkeypatch)
    curve = _curve(0.2, 0.3)  # Gregor's 0.2 EL exactly at the grid's lower end: drawn
    path = plots.plot_error_curve(curve, 0.24, tmp_path / "f")
    assert path == tmp_path / "f" / "bicoid_error_curve.png"
    assert _png_size(path) == (720, 480, round(120 / 0.0254))
    (ax,) = figures.made[0].axes
    container = ax.containers[0]
    points = container.lines[0]
    assert container.get_label() == "simulated nuclei"
    assert np.array_equal(points.get_xdata(), curve.decay_lengths)
    assert np.array_equal(points.get_ydata(), curve.error)
    assert points.get_linestyle() == "None"
    assert points.get_marker() == "o"
    assert points.get_markersize() == 3
    assert to_hex(points.get_color()) == "#4c4c4c"  # grey "0.3"
    (bars,) = container.lines[2]
    segments = bars.get_segments()
    assert np.allclose([s[1][1] - s[0][1] for s in segments], 2 * curve.error_se, rtol=1e-9, atol=0.0)
    theory, predicted, fitted, gregor = ax.lines[1:]
    assert np.array_equal(theory.get_xdata(), curve.decay_lengths)
    assert np.array_equal(theory.get_ydata(), curve.predicted)
    assert _style(theory) == ("#1f77b4", "-", theory.get_linewidth(), "σ_c / |dc/dx| (Poisson)")
    assert list(predicted.get_xdata()) == [0.24, 0.24]
    assert _style(predicted)[:2] == ("#ff7f0e", "--")
    assert predicted.get_label() == "predicted λ* = 0.240 EL"
    assert list(fitted.get_xdata()) == [curve.fitted_optimum()] * 2
    assert _style(fitted)[:2] == ("#2ca02c", ":")
    assert fitted.get_label() == f"quartic fit λ* = {curve.fitted_optimum():.3f} EL"
    assert list(gregor.get_xdata()) == [0.2, 0.2]
    assert _style(gregor) == ("#808080", "-", 1.0, "Gregor et al. 2007: λ ≈ 0.2 EL")
    assert ax.get_xlabel() == "decay length λ (egg lengths)"
    assert ax.get_ylabel() == "positional error σ_x (egg lengths)"
    assert ax.get_title() == "Bicoid read at the boundary, amplitude fixed"
    _legend_checks(ax, "small")
    plots.plot_error_curve(_curve(0.1, 0.2), 0.24, tmp_path, constraint="flux", filename="g.png")
    ax = figures.made[1].axes[0]
    assert len(ax.lines) == 5
    assert ax.get_title() == "Bicoid read at the boundary, flux fixed"
    for lo, hi in ((0.21, 0.3), (0.1, 0.19)):  # Gregor's length outside the grid: not drawn
        plots.plot_error_curve(_curve(lo, hi), 0.24, tmp_path)
        assert len(figures.made[-1].axes[0].lines) == 4


def _shrunk_sources(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    """Record write_figures' simulations and run them on 1/SHRINK of the size."""
    sde_calls: list[Any] = []
    curve_calls: list[Any] = []

    class Model(PruningModel):
        def simulate_sde(self, n, rng, **kwargs):
            sde_calls.append((self, n, rng, kwargs))
            return super().simulate_sde(n // SHRINK, rng, **kwargs)

    def curve(x_t, constraint="amplitude", **kwargs):
        curve_calls.append((x_t, constraint, kwargs))
        return error_curve_around_optimum(x_t, constraint, **{**kwargs, "n_nuclei": kwargs["n_nuclei"] // SHRINK})

    monkeypatch.setattr(plots, "PruningModel", Model)
    monkeypatch.setattr(plots, "error_curve_around_optimum", curve)
    return sde_calls, curve_calls


def test_write_figures_draws_every_figure_from_the_seed(monkeypatch, tmp_path):
    figures = _Figures(monkeypatch)
    sde_calls, curve_calls = _shrunk_sources(monkeypatch)
    paths = plots.write_figures(tmp_path)
    names = [
        "pruning_passage_times.png",
        "bicoid_error_amplitude.png",
        "bicoid_error_total.png",
        "bicoid_error_flux.png",
    ]
    assert paths == [tmp_path / n for n in names]
    assert all(p.exists() for p in paths)
    ((model, n, rng, kwargs),) = sde_calls
    assert (model.w0, model.theta, model.eta, model.kappa, model.sigma) == (1.0, 0.2, 0.01, 1.0, 2.0)
    assert n == 100_000
    assert kwargs == {"method": "bridge"}
    assert [c[:2] for c in curve_calls] == [(0.48, "amplitude"), (0.48, "total"), (0.48, "flux")]
    for _, _, kw in curve_calls:
        assert (kw["count_at_reference"], kw["reference_decay_length"], kw["n_nuclei"]) == (700.0, 0.2, 200_000)
        assert kw["rng"] is rng
    expected = np.random.default_rng(0)
    assert rng.bit_generator.state["state"] != expected.bit_generator.state["state"]  # it has been drawn from
    replay = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0).simulate_sde(
        1000, expected, method="bridge"
    )
    heights = [p.get_height() for p in figures.made[0].axes[0].patches]
    assert np.allclose(heights, np.histogram(replay, bins=80, density=True)[0], rtol=1e-12, atol=0.0)
    best, curve = error_curve_around_optimum(
        0.48, "amplitude", count_at_reference=700.0, reference_decay_length=0.2, n_nuclei=2000, rng=expected
    )
    assert np.array_equal(figures.made[1].axes[0].lines[1].get_ydata(), curve.predicted)
    assert list(figures.made[1].axes[0].lines[2].get_xdata()) == [best, best]
    assert [f.axes[0].get_title().split(", ")[-1] for f in figures.made[1:]] == [
        "amplitude fixed",
        "total fixed",
        "flux fixed",
    ]


def test_main_writes_the_figures_and_prints_their_paths(monkeypatch, tmp_path, capsys):
    calls: list[Any] = []

    def recorded(out_dir, *, seed=0):  # write_figures itself is checked above
        calls.append((out_dir, seed))
        return [Path(out_dir) / "a.png", Path(out_dir) / "b.png"]

    monkeypatch.setattr(plots, "write_figures", recorded)
    out = str(tmp_path / "out")
    assert plots.main([out]) == 0
    assert plots.main([out, "--seed", "7"]) == 0
    assert calls == [(out, 0), (out, 7)]
    assert isinstance(calls[1][1], int)
    assert capsys.readouterr().out.splitlines() == [str(Path(out) / n) for n in ("a.png", "b.png", "a.png", "b.png")]
    with pytest.raises(SystemExit):
        plots.main(["--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("usage: noisygrad-bio-figures [-h] [--seed SEED] out_dir")
    assert "Figures a biologist would want, written as PNG files." in shown
    assert "folder for the PNG files (created if missing)" in shown
    assert "seed of every random choice" in shown


def test_running_the_module_calls_main(monkeypatch, tmp_path, capsys):
    _shrunk_sources(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["noisygrad.bio.plots", "--help"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is imported already
        with pytest.raises(SystemExit) as info:
            runpy.run_module("noisygrad.bio.plots", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_bicoid_optimum_within_acceptance_is_false_past_two_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    """``within_acceptance`` says whether the fitted optimum is within 2% of the delta method's: with every fitted
    optimum moved 5% (a stand-in curve on the real, shrunken simulation), each finding that carries it says no."""
    _Recorder(monkeypatch)
    real = ex.error_curve_around_optimum

    class Off(ErrorCurve):
        def fitted_optimum(self) -> float:
            return 1.05 * super().fitted_optimum()

    def moved(x_t, constraint="amplitude", **kwargs):  # type: ignore[no-untyped-def]
        best, curve = real(x_t, constraint, **kwargs)
        object.__setattr__(curve, "__class__", Off)  # a frozen dataclass: the same fields, one method changed
        return best, curve

    monkeypatch.setattr(ex, "error_curve_around_optimum", moved)
    findings = ex.bicoid_optimum(seed=2, quick=True)
    flags = [f.details["within_acceptance"] for f in findings if "within_acceptance" in f.details]
    assert flags == [False] * 4
