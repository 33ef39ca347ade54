"""The bio plugin's headline experiments: each simulation held against its closed form.

Every function takes ``seed`` and ``quick`` and returns a list of :class:`~noisygrad.Finding`. Unless a
finding says otherwise its tolerance is 4 standard errors of the Monte-Carlo estimate (a correct model
fails about one run in 15,000).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import stats

from noisygrad.tour.kit import FALSE_ALARM, TOLERANCE_Z, Curve, Finding, Parameter, takes

from .evolution import LinearLandscape, RuggedLandscape, WrightFisher, compare_searches
from .morphogen import (
    GREGOR_2007,
    ErrorCurve,
    ExponentialGradient,
    constraint_beta,
    error_curve_around_optimum,
    positional_error,
    simulate_boundary,
)
from .pruning import PruningModel, input_covariance, oja_drift, simulate_competition

# Allowances (relative to lambda*) for the delta method's finite-count bias in the Bicoid optimum, without and
# with amplitude noise: see bicoid_optimum.
_DELTA_METHOD_BIAS = 0.003
_DELTA_METHOD_BIAS_CV = 0.006


@takes(Parameter("trials", int, 40_000, "simulated synapses per noise level", low=1000, high=10**7))
def pruning_passage(seed: int = 0, quick: bool = True, *, trials: int) -> list[Finding]:
    """First passage of a pruned synapse: inverse Gaussian for the diffusion, Wald-corrected for the walk.

    Parameters as in the research note: ``w0 = 1``, ``theta = 0.2``, ``eta = 0.01``, ``kappa = 1``, so the
    diffusion's mean passage time is 80 steps for every ``sigma``. The diffusion is simulated on a grid of
    one step with the exact Brownian-bridge crossing law (see :meth:`PruningModel.simulate_sde`).
    """
    rng = np.random.default_rng(seed)
    name = "bio.pruning-passage"
    n = trials
    sigmas = (0.5, 4.0) if quick else (0.5, 1.0, 2.0, 4.0)
    findings = []
    for sigma in sigmas:
        model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=sigma)
        start = time.perf_counter()
        t = model.simulate_sde(n, rng, method="bridge", dt=1.0)
        seconds = time.perf_counter() - start
        dev = t - t.mean()
        var, var_se = (
            float(t.var(ddof=1)),
            math.sqrt(float(np.mean(dev**4)) - float(np.mean(dev**2)) ** 2) / math.sqrt(n),
        )
        mean_se = math.sqrt(var / n)
        ks = stats.kstest(t, model.passage_time_distribution().cdf)
        common = {"sigma": sigma, "trials": n, "method": "bridge, dt = 1 step", "seconds": round(seconds, 3)}
        findings += [
            Finding(
                name,
                f"diffusion passage-time mean is (w0-theta)/(eta kappa), sigma={sigma}",
                model.mean_passage_time(),
                float(t.mean()),
                mean_se,
                TOLERANCE_Z * mean_se,
                "steps",
                common,
            ),
            Finding(
                name,
                f"diffusion passage-time variance is (w0-theta) sigma^2/(eta kappa^3), sigma={sigma}",
                model.variance_passage_time(),
                var,
                var_se,
                TOLERANCE_Z * var_se,
                "steps^2",
                common,
            ),
            # The Kolmogorov-Smirnov distance passes when below its critical value at the tour's false-alarm
            # probability (p > 6.3e-5, as a 4 s.e. check). It was the 1% critical value: two such claims a seed
            # failed a correct simulation for about 1 seed in 50 (18% of 10 seeds); seed 5 used 86% of it.
            Finding.at_most(
                name,
                f"passage times follow scipy.stats.invgauss (KS distance), sigma={sigma}",
                bound=float(stats.kstwo.isf(FALSE_ALARM, n)),
                measured=float(ks.statistic),
                details={
                    **common,
                    "ks_pvalue": float(ks.pvalue),
                    "tolerance": f"KS critical value at p = {FALSE_ALARM:.1e} (the tour's 4 s.e. false-alarm rate)",
                },
                curve=_histogram_curve(t, model),
            ),
        ]
        walk = model.simulate_walk(n, rng)
        walk_se = float(walk.std(ddof=1)) / math.sqrt(n)
        findings.append(
            Finding(
                name,
                f"discrete-walk mean is (w0-theta+E[overshoot])/(eta kappa) (Wald), sigma={sigma}",
                model.discrete_mean_passage_time(),
                float(walk.mean()),
                walk_se,
                TOLERANCE_Z * walk_se,
                "steps",
                {
                    "sigma": sigma,
                    "trials": n,
                    "diffusion_mean": model.mean_passage_time(),
                    "siegmund_approximation": model.mean_passage_time() + 0.5826 * sigma + 0.25,
                },
            )
        )
    findings += _competition(rng, quick)
    return findings


def _competition(rng: np.random.Generator, quick: bool) -> list[Finding]:
    name = "bio.pruning-passage"
    neurons, nc, nu = (1000, 5, 15) if quick else (10000, 5, 15)
    result = simulate_competition(neurons, nc, nu, correlation=0.5, eta=0.005, theta=0.05, steps=1200, rng=rng)
    expected = oja_drift(np.full(nc + nu, 1 / math.sqrt(nc + nu)), input_covariance(nc, nu, 0.5))
    details = {"neurons": neurons, "correlated_inputs": nc, "uncorrelated_inputs": nu, "correlation": 0.5}
    findings = []
    for label, group in (("correlated", result.correlated), ("uncorrelated", ~result.correlated)):
        # one value per neuron (a neuron's inputs share its output y, so they are not independent)
        per_neuron = result.first_step[:, group].mean(axis=1)
        se = float(per_neuron.std(ddof=1)) / math.sqrt(neurons)
        findings.append(
            Finding(
                name,
                f"Oja competition: first-step drift of {label} weights is (Cw - (w'Cw) w)_i",
                float(expected[group].mean()),
                float(per_neuron.mean()),
                se,
                TOLERANCE_Z * se,
                "weight / eta",
                details,
            )
        )
    pruned = result.pruned_at[:, ~result.correlated]
    wrong_side = {**details, "tolerance": "at most 1% of synapses on the wrong side"}
    findings += [
        Finding.at_least(
            name,
            "Oja competition: correlated inputs are kept",
            bound=0.99,
            measured=result.kept_fraction("correlated"),
            unit="fraction",
            details=wrong_side,
            ideal=1.0,
        ),
        Finding.at_most(
            name,
            "Oja competition: uncorrelated inputs are pruned (fraction kept)",
            bound=0.01,
            measured=result.kept_fraction("uncorrelated"),
            unit="fraction",
            details={**wrong_side, "median_pruning_step": float(np.median(pruned[np.isfinite(pruned)]))},
        ),
    ]
    return findings


def _histogram_curve(times: np.ndarray, model: PruningModel) -> Curve:
    """Histogram density of passage times beside the inverse-Gaussian density, with Poisson error bars."""
    low, high = np.quantile(times, [0.001, 0.999])
    edges = np.linspace(low, high, 41)
    counts, _ = np.histogram(times, bins=edges)
    width = np.diff(edges)
    centres = 0.5 * (edges[:-1] + edges[1:])
    fine = np.linspace(edges[0], edges[-1], 200)
    return Curve(
        "elimination time (steps)",
        "probability density (1/step)",
        x=centres.tolist(),
        measured=(counts / (times.size * width)).tolist(),
        uncertainty=(np.sqrt(counts) / (times.size * width)).tolist(),
        predicted=np.asarray(model.passage_time_distribution().pdf(fine)).tolist(),
        predicted_x=fine.tolist(),
    )


def _error_curve(curve: ErrorCurve) -> Curve:
    return Curve(
        "decay length lambda (egg lengths)",
        "positional error sigma_x at x_T (egg lengths)",
        x=np.asarray(curve.decay_lengths).tolist(),
        measured=np.asarray(curve.error).tolist(),
        uncertainty=np.asarray(curve.error_se).tolist(),
        predicted=np.asarray(curve.predicted).tolist(),
    )


def _error_ratio(x_t: float, reference: float, best: float, constraint: str) -> float:
    """sigma_x at Gregor's lambda = 0.2 EL over sigma_x at the optimum (the count scale cancels)."""
    err = positional_error(
        x_t,
        np.array([reference, best]),
        constraint=constraint,
        count_at_reference=1.0,
        reference_decay_length=reference,
    )
    return float(err[0] / err[1])


def bicoid_optimum(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Optimal Bicoid decay length for a boundary at x_T = 0.48 EL under three constraints.

    Nuclei at the boundary count Poisson molecules (mean 700 when lambda = 0.2 EL) and decode their position;
    the positional error against lambda is fitted by a quartic in log-log and its minimum compared with
    x_T/(2 - beta). The closed form is the delta method's, exact only for large counts: with the counts of
    these grids (down to about 160, and about 50 with amplitude noise) the exact Poisson error moves the
    optimum by +0.04% (flux) to +0.2% (total), and by +0.4% with amplitude noise (measured, 2e6 nuclei per
    point). Each tolerance is therefore an allowance for that bias (0.3% of lambda*, 0.6% with amplitude
    noise) plus 4 Monte-Carlo standard errors of the fitted optimum (propagated from each point's error);
    whether the acceptance (2% of lambda*) is met is reported beside it.
    """
    rng = np.random.default_rng(seed)
    name = "bio.bicoid-optimum"
    x_t, m_ref, ref = 0.48, 700.0, GREGOR_2007["decay_length_EL"]
    nuclei = 300_000 if quick else 2_000_000
    findings = []
    for constraint in ("amplitude", "total", "flux"):
        best, curve = error_curve_around_optimum(
            x_t, constraint, count_at_reference=m_ref, reference_decay_length=ref, n_nuclei=nuclei, rng=rng
        )
        findings.append(
            Finding(
                name,
                f"optimal decay length is x_T/(2 - beta), {constraint} fixed (beta={constraint_beta(constraint):+g})",
                best,
                curve.fitted_optimum(),
                curve.fitted_optimum_se(),
                _DELTA_METHOD_BIAS * best + TOLERANCE_Z * curve.fitted_optimum_se(),
                "EL",
                {
                    "x_T": x_t,
                    "grid": "21 points on [lambda*/1.5, 1.5 lambda*]",
                    "nuclei_per_point": nuclei,
                    "fit": "quartic in log-log",
                    "tolerance": "0.3% of lambda* (delta-method bias) + 4 s.e.",
                    "within_acceptance": abs(curve.fitted_optimum() / best - 1) < 0.02,
                    "error_at_0.2EL_over_optimum": _error_ratio(x_t, ref, best, constraint),
                },
                curve=_error_curve(curve),
            )
        )
    cv = 0.05
    best, curve = error_curve_around_optimum(
        x_t,
        "amplitude",
        count_at_reference=m_ref,
        reference_decay_length=ref,
        n_nuclei=nuclei,
        rng=rng,
        cv_amplitude=cv,
    )
    se = curve.fitted_optimum_se()
    findings.append(
        Finding(
            name,
            f"embryo-to-embryo amplitude noise (sd of ln c0 = {cv}) moves the optimum to shorter lambda",
            best,
            curve.fitted_optimum(),
            se,
            _DELTA_METHOD_BIAS_CV * best + TOLERANCE_Z * se,
            "EL",
            {
                "noiseless_optimum": x_t / 2,
                "nuclei_per_point": nuclei,
                "tolerance": "0.6% of lambda* (delta-method bias) + 4 s.e.",
                "within_acceptance": abs(curve.fitted_optimum() / best - 1) < 0.02,
            },
            curve=_error_curve(curve),
        )
    )
    gradient = ExponentialGradient(m_ref * math.exp(x_t / ref), ref)
    embryos = 20_000 if quick else 200_000
    edges, predicted = simulate_boundary(gradient, x_t, n_embryos=embryos, rng=rng)
    sd = float(edges.std(ddof=1))
    sd_se = sd / math.sqrt(2 * (embryos - 1))
    findings.append(
        Finding(
            name,
            "threshold-readout boundary spread is spacing*sqrt(sum p(1-p)) (Gregor 2007: ~0.01 EL)",
            predicted,
            sd,
            sd_se,
            TOLERANCE_Z * sd_se,
            "EL",
            {
                "boundary_mean_EL": float(edges.mean()),
                "single_nucleus_error_EL": float(gradient.positional_error(x_t)),
                "gregor_2007": GREGOR_2007,
                "embryos": embryos,
                "nuclear_spacing_EL": 0.01,
            },
        )
    )
    return findings


@takes(
    Parameter("replicates", int, 32, "independent replicate populations", full=256, low=8, high=10_000),
    Parameter("generations", int, 40, "generations of each population", full=100, low=10, high=10_000),
)
def evolution(seed: int = 0, quick: bool = True, *, replicates: int, generations: int) -> list[Finding]:
    """Wright-Fisher selection follows the fitness gradient; drift is directionless noise.

    Linear landscape ``f = b . z`` with weak selection ``s = 0.05`` (``s sd(f)`` about 0.02), ``N = 1000``:
    the mean log-fitness rises by ``s Var(f)`` per generation (Fisher, Lande); with ``s = 0`` the mean
    genotype's step along ``b`` has mean 0 and variance ``(b^T G b (1 - 1/N) + m^2 |b|^2)/(N |b|^2)``.
    Standard errors come from the spread over independent replicate populations.
    """
    rng = np.random.default_rng(seed)
    name = "bio.evolution"
    n = 1000
    landscape = LinearLandscape(np.array([1.0, 0.5]))
    unit = landscape.slope / np.linalg.norm(landscape.slope)
    findings = []
    start = 0.3 * rng.standard_normal((replicates, n, 2))
    s, mutation = 0.05, 0.05
    history = WrightFisher(landscape, n, s, mutation, recombination=True).run(start, generations, rng)
    gain = np.diff(history.mean_log_fitness, axis=0).mean(axis=0)  # per replicate
    predicted = s * history.var_log_fitness[:-1].mean(axis=0)
    excess = gain - predicted
    se = float(excess.std(ddof=1)) / math.sqrt(replicates)
    selected_along = float((np.diff(history.means, axis=0) @ unit).mean())
    details = {
        "N": n,
        "s": s,
        "mutation_sd": mutation,
        "recombination": True,
        "replicates": replicates,
        "generations": generations,
        **_rugged_comparison(rng, quick),
    }
    findings.append(
        Finding(
            name,
            "mean log-fitness gain per generation is s Var(f) = s b'Gb (Lande / Fisher)",
            float(predicted.mean()),
            float(gain.mean()),
            se,
            TOLERANCE_Z * se,
            "log-fitness / generation",
            details,
            curve=Curve(
                "generation",
                "mean log-fitness f (mean over replicates)",
                x=np.arange(generations + 1).tolist(),
                measured=history.mean_log_fitness.mean(axis=1).tolist(),
                predicted=(
                    history.mean_log_fitness[0].mean()
                    + np.concatenate([[0.0], np.cumsum(s * history.var_log_fitness[:-1].mean(axis=1))])
                ).tolist(),
            ),
        )
    )
    drift = WrightFisher(landscape, n, 0.0, mutation).run(start, generations, rng)
    along = np.diff(drift.means, axis=0) @ unit  # (T, R) steps of the mean along the gradient
    per_rep = along.mean(axis=0)
    drift_se = float(per_rep.std(ddof=1)) / math.sqrt(replicates)
    g_along = np.einsum("i,trij,j->tr", unit, drift.covariances[:-1], unit)
    predicted_var = float(np.mean((g_along * (1 - 1 / n) + mutation**2) / n))
    measured_var = float(np.mean(along**2))
    var_se = measured_var * math.sqrt(2.0 / along.size)
    neutral = {**details, "s": 0.0, "recombination": False, "step_along_gradient_with_selection": selected_along}
    findings += [
        Finding(
            name,
            "drift (s = 0): the mean genotype's step along grad f has mean 0 (no gradient signal)",
            0.0,
            float(per_rep.mean()),
            drift_se,
            TOLERANCE_Z * drift_se,
            "trait units / generation",
            neutral,
        ),
        Finding(
            name,
            "drift (s = 0): that step's variance is (u'Gu (1 - 1/N) + m^2)/N, u = b/|b| (noise only)",
            predicted_var,
            measured_var,
            var_se,
            TOLERANCE_Z * var_se,
            "trait units^2",
            neutral,
        ),
    ]
    return findings


def _rugged_comparison(rng: np.random.Generator, quick: bool) -> dict[str, object]:
    """SGD, an evolution strategy and Wright-Fisher from the same start on a rippled bowl (for the report)."""
    rugged = RuggedLandscape(dim=2, width=2.0, depth=1.0, period=1.0)
    table: dict[str, list[float]] = {}
    for _ in range(3 if quick else 10):
        for result in compare_searches(rugged, np.array([2.3, 1.7]), rng=rng):
            table.setdefault(result.name, []).append(round(result.final_value, 3))
    return {
        "rugged_final_log_fitness": table,
        "rugged_global_max": float(rugged.value(rugged.optimum)),
        "rugged_start_log_fitness": float(rugged.value(np.array([2.3, 1.7]))),
    }
