"""The quantum plugin's headline experiments, each a measured claim beside its prediction.

* ``quantum.shot-variance``: repeated energy estimates scatter with ``sum_g Var_g / S`` (state-dependent),
  for the torch backend and for Aer sampling the shots itself; the Gaussian-precision model uses ``1 / S``.
* ``quantum.gradient-variance``: parameter shift, central differences and SPSA gradients scatter as their
  formulas say (exact for the first two; SPSA against the exact average over all 2^P perturbations, and
  against Spall's ``sum_{j != i} g_j^2 + sigma^2 / (2 c^2 S)``).
* ``quantum.spsa-h2``: SPSA VQE on H2 with 1000 shots per group reaches chemical accuracy (median over seeds
  of the exact error of the final parameters).
* ``quantum.adaptive-shots``: along a VQE run whose shots :class:`~noisygrad.quantum.AdaptiveShots` chooses, the
  noise each estimate measures equals the exact shot noise at its point, and the shots follow the gradient's
  signal-to-noise: the chosen counts beside the ones an oracle with the exact gradient and variance would choose.

Tolerances are 4 standard errors of the Monte-Carlo estimate unless a finding says otherwise. Streams are
keyed sub-streams of ``seed`` (:mod:`noisygrad.rng`): the parameters ``theta`` from key 0, an experiment's
sampling from key 1, run ``k`` of ``spsa-h2`` from key ``k``.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch

from noisygrad import SPSA as SPSAEstimator
from noisygrad.tour.kit import TOLERANCE_Z, Curve, Finding, Parameter, numpy_stream, substream_seed, takes, torch_stream

from .adaptive import AdaptiveShots
from .gradients import ParameterShift, finite_difference
from .hamiltonians import CHEMICAL_ACCURACY, exact_ground_energy, h2
from .objective import EnergyObjective
from .vqe import vqe


def _h2_objective(shots: int, **kwargs: object) -> EnergyObjective:
    from qiskit.circuit.library import efficient_su2

    return EnergyObjective(h2(), efficient_su2(2, reps=1), shots=shots, **kwargs)  # type: ignore[arg-type]


def _theta(seed: int, p: int) -> np.ndarray:
    """The parameters of run ``seed``'s experiments: sub-stream 0, uniform in ``[-pi, pi)``."""
    return numpy_stream(seed, 0).uniform(-math.pi, math.pi, p)


def _variance_se(samples: np.ndarray) -> tuple[float, float]:
    """The trace of the sample covariance of ``samples`` (rows are draws) and its standard error."""
    rows = samples.reshape(len(samples), -1)
    squared = ((rows - rows.mean(0)) ** 2).sum(1)
    n = len(rows)
    return float(squared.sum() / (n - 1)), float(squared.std(ddof=1) / math.sqrt(n))


@takes(
    Parameter(
        "repeats",
        int,
        2000,
        "energy estimates per backend (a quarter of them for aer-sampler)",
        full=20000,
        low=400,
        high=10**6,
    ),
    Parameter("shots", int, 1000, "shots S per measurement group of each estimate", low=10, high=10**6),
)
def shot_variance(seed: int = 0, quick: bool = True, *, repeats: int, shots: int) -> list[Finding]:
    """Var of repeated energy estimates = sum over measurement groups of Var_g / S."""
    findings = []
    rng = numpy_stream(seed, 1)
    for backend, noise in (("torch", "shots"), ("aer-sampler", "shots"), ("torch", "gaussian-precision")):
        # Aer sampling its own shots builds every shot's outcome: a quarter of the repeats keeps it quick.
        n = repeats // 4 if backend == "aer-sampler" else repeats
        objective = _h2_objective(shots, backend=backend, noise=noise)
        theta = _theta(seed, objective.num_parameters)
        estimates = objective.sample(np.repeat(theta[None], n, 0), rng)
        measured, se = _variance_se(estimates)
        predicted = float(objective.predicted_std(theta)[0] ** 2)
        formula = "1 / S" if noise != "shots" else "sum_g Var_g / S"
        findings.append(
            Finding(
                experiment="quantum.shot-variance",
                claim=f"H2 energy estimates ({noise}, {backend} backend, S={shots}) have variance {formula}",
                predicted=predicted,
                measured=measured,
                uncertainty=se,
                tolerance=TOLERANCE_Z * se,
                unit="Ha^2",
                details={"repeats": n, "shots": shots, "groups": objective.plan.num_groups, "theta_seed": seed},
            )
        )
    return findings


def gradient_variance(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Gradient estimators scatter as their formulas say (H2, efficient_su2 reps=1, P = 8, S = 1000)."""
    draws = 1000 if quick else 15000
    # The 10% claim on SPSA is decided by the formula, not by Monte-Carlo luck, only if 4 standard errors of the
    # measured trace fit well inside 10%: its relative s.e. is about 3.6% at 1000 draws (4 s.e. = 14%) and 2.1%
    # at 3000 (4 s.e. = 8%), so SPSA gets 3000 draws in the quick run (one 2-point call each).
    spsa_draws = 3000 if quick else 15000
    shots, c, step = 1000, 0.05, 0.2
    objective = _h2_objective(shots)
    p = objective.num_parameters
    theta = _theta(seed, p)
    x = torch.as_tensor(theta)
    generator = torch_stream(seed, 1)
    eye = np.eye(p)
    findings = []

    def scatter(estimator: object, n: int = draws) -> tuple[float, float]:
        grads = np.stack([estimator.estimate(x, generator).grad.numpy() for _ in range(n)])  # type: ignore[attr-defined]
        return _variance_se(grads)

    # Parameter shift and central differences: exact, from the single-shot variances at the shifted points.
    for name, estimator, h, scale, formula in (
        ("parameter shift (+-pi/2)", ParameterShift(objective), math.pi / 2, 4.0, "/ (4 S)"),
        (f"central difference (h={step})", finite_difference(objective, step=step), step, 4.0 * step**2, "/ (4 h^2 S)"),
    ):
        var_plus = objective.variance(theta + h * eye)
        var_minus = objective.variance(theta - h * eye)
        predicted = float(((var_plus + var_minus) / (scale * shots)).sum())
        measured, se = scatter(estimator)
        findings.append(
            Finding(
                experiment="quantum.gradient-variance",
                claim=f"{name}: tr Cov = sum_i [sigma^2(theta + h e_i) + sigma^2(theta - h e_i)] {formula}",
                predicted=predicted,
                measured=measured,
                uncertainty=se,
                tolerance=TOLERANCE_Z * se,
                unit="Ha^2",
                details={
                    "draws": draws,
                    "shots": shots,
                    "P": p,
                    "sigma^2(theta) / (2 S) per component (the usual approximation)": float(
                        objective.variance(theta)[0] / (2 * shots * (1 if h == math.pi / 2 else h**2))
                    ),
                },
            )
        )
    # SPSA: exact over all 2^P Rademacher directions, then Spall's formula.
    deltas = np.array(list(itertools.product((-1.0, 1.0), repeat=p)))
    plus, minus = theta + c * deltas, theta - c * deltas
    diff = (objective.exact(plus) - objective.exact(minus)) / (2 * c)
    noise = (objective.variance(plus) + objective.variance(minus)) / (4 * c**2 * shots)
    mean_grad = (diff[:, None] * deltas).mean(0)
    exact_trace = float(p * (diff**2 + noise).mean() - (mean_grad**2).sum())
    true_grad = (
        ParameterShift(EnergyObjective(h2(), objective.ansatz, noise="exact")).estimate(x, generator).grad.numpy()
    )
    sigma2 = float(objective.variance(theta)[0])
    g2 = float((true_grad**2).sum())
    spall = (p - 1) * g2 + p * sigma2 / (2 * c**2 * shots)
    measured, se = scatter(SPSAEstimator(objective, c=c, gamma=0.0), spsa_draws)
    details = {"draws": spsa_draws, "shots": shots, "c": c, "P": p, "|g|^2": g2, "sigma^2": sigma2}
    findings.append(
        Finding(
            experiment="quantum.gradient-variance",
            claim="SPSA: tr Cov equals its exact average over all 2^P Rademacher directions (incl. shot noise)",
            predicted=exact_trace,
            measured=measured,
            uncertainty=se,
            tolerance=TOLERANCE_Z * se,
            unit="Ha^2",
            details=details,
        )
    )
    findings.append(
        Finding(
            experiment="quantum.gradient-variance",
            claim="SPSA: tr Cov within 10% of Spall's (P - 1)|g|^2 + P sigma^2 / (2 c^2 S) (O(c^2) terms dropped)",
            predicted=spall,
            measured=measured,
            uncertainty=se,
            tolerance=0.1 * spall,
            unit="Ha^2",
            details={
                **details,
                "tolerance": "10% of the formula",
                "4 s.e. of the measurement, % of the formula": round(100 * TOLERANCE_Z * se / spall, 1),
                "formula's own error against the exact average, %": round(100 * (spall / exact_trace - 1), 2),
            },
        )
    )
    return findings


@takes(Parameter("runs", int, 5, "independent VQE runs (the median is held to the bound)", full=10, low=1, high=100))
def spsa_h2(seed: int = 0, quick: bool = True, *, runs: int) -> list[Finding]:
    """SPSA VQE on H2, 1000 shots per group: the median exact error over seeds is below chemical accuracy."""
    from qiskit.circuit.library import efficient_su2

    seeds = [substream_seed(seed, k) for k in range(runs)]
    maxiter = 1000
    start = time.perf_counter()
    # Spall's stability constant at 10% of maxiter, with the first step held at 2 pi / 10: the setting this claim
    # was measured with (the native loop's default is 0 since the problem family showed 10% random-walking)
    fits = [
        vqe(
            h2(),
            efficient_su2(2, reps=1),
            shots=1000,
            maxiter=maxiter,
            seed=s,
            track_exact=False,
            stability=0.1 * maxiter,
        )
        for s in seeds
    ]
    errors = np.array([r.error for r in fits])
    median = float(np.median(errors))
    return [
        Finding.at_most(
            "quantum.spsa-h2",
            (
                f"SPSA VQE on H2 (efficient_su2 reps=1, 1000 shots/group, {maxiter} iterations) ends within "
                "chemical accuracy (median exact error over seeds)"
            ),
            bound=CHEMICAL_ACCURACY,
            measured=median,
            uncertainty=float(np.std(errors) / np.sqrt(len(errors))),
            unit="Ha",
            details={
                "seeds": seeds,
                "errors_mHa": [round(float(e) * 1000, 3) for e in errors],
                "within_chemical_accuracy": int((errors < CHEMICAL_ACCURACY).sum()),
                "evaluations_per_run": fits[0].evaluations,
                "shots_per_run": fits[0].shots,
                "wall_s": round(time.perf_counter() - start, 1),
            },
        )
    ]


#: The fraction of the target signal-to-noise the adaptive-shots run must keep (median over its steps).
SNR_FLOOR = 0.4


@takes(Parameter("steps", int, 150, "gradient steps of the run", full=300, low=40, high=10_000))
def adaptive_shots(seed: int = 0, quick: bool = True, *, steps: int) -> list[Finding]:
    """Adaptive shots along a VQE run on H2 (efficient_su2 reps=1, parameter shift, gradient descent, lr 0.2).

    At each iterate ``x_k`` the estimate's own noise measurement (the summed per-point sample variances of its
    ``2 P`` energies) is set beside the exact variance of the parameter-shift gradient at ``x_k`` with the shots it
    was given, ``sum_i [sigma^2(x + pi/2 e_i) + sigma^2(x - pi/2 e_i)] / (4 S_k)``; the shots chosen are set beside
    the oracle's ``snr^2 sum_i [...] / (4 |g(x_k)|^2)`` with the exact gradient.
    """
    from qiskit.circuit.library import efficient_su2

    start = time.perf_counter()
    snr, low, high, lr = 1.0, 10, 100_000, 0.2
    objective = EnergyObjective(h2(), efficient_su2(2, reps=1), shots=low)
    adaptive = AdaptiveShots(objective, snr=snr, min_shots=low, max_shots=high, smoothing=0.8)
    p = objective.num_parameters
    x = torch.as_tensor(_theta(seed, p))
    generator = torch_stream(seed, 1)
    points, shots, measured = [], [], []
    for _ in range(steps):
        points.append(x.numpy().copy())
        estimate = adaptive.estimate(x, generator)
        decision = adaptive.history[-1]
        shots.append(decision["shots"])
        measured.append(decision["noise"])
        x = x - lr * estimate.grad
    xs, chosen, noise = np.array(points), np.array(shots), np.array(measured)
    shift = math.pi / 2 * np.eye(p)
    single_shot = np.array([((objective.variance(t + shift) + objective.variance(t - shift)) / 4).sum() for t in xs])
    gradient = np.array([(objective.exact(t + shift) - objective.exact(t - shift)) / 2 for t in xs])
    signal = (gradient**2).sum(1)
    exact_noise = single_shot / chosen
    ratio = noise / exact_noise  # each estimate's measurement is unbiased given its point: mean 1
    ratio_se = float(ratio.std(ddof=1) / math.sqrt(steps))
    realized = np.sqrt(signal / exact_noise)  # the signal-to-noise each estimate actually had
    free = (chosen > low) & (chosen < high)  # the controller's own choices, not the range's limits
    free[: min(20, steps)] = False  # its averages settle over the first ~5 / (1 - smoothing) estimates
    median_snr = float(np.median(realized[free])) if free.any() else math.nan
    oracle = snr**2 * single_shot / signal
    error = float(objective.exact(x.numpy()[None])[0]) - exact_ground_energy(h2())
    details = {
        "steps": steps,
        "shots_used": int(objective.shots_used),
        "shots per group: first, last": [int(chosen[0]), int(chosen[-1])],
        "final exact error, Ha": error,
        "steps between the shot limits (after 20)": int(free.sum()),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    return [
        Finding(
            experiment="quantum.adaptive-shots",
            claim=(
                "along the run, the shot noise each gradient estimate measures (the per-point sample variances) "
                "equals the exact noise of parameter shift at its point and shots (mean ratio)"
            ),
            predicted=1.0,
            measured=float(ratio.mean()),
            uncertainty=ratio_se,
            tolerance=TOLERANCE_Z * ratio_se,
            details=details,
            curve=Curve(
                x_label="iteration k",
                y_label="shots per measurement group",
                x=list(range(steps)),
                measured=chosen.tolist(),
                predicted=oracle.tolist(),
                log_y=True,
            ),
        ),
        Finding.at_least(
            "quantum.adaptive-shots",
            (
                f"the shots chosen from those measurements keep the exact signal-to-noise |g| / sd of the estimates "
                f"above {SNR_FLOOR} of its target {snr} (median over the steps between the shot limits)"
            ),
            bound=SNR_FLOOR * snr,
            measured=median_snr,
            ideal=snr,
            details={
                **details,
                "bound": (
                    "a design floor, not a Monte-Carlo error: the controller averages over about 5 estimates "
                    "(smoothing 0.8) and moves the shots by at most 2x a step, so it lags a falling gradient and "
                    "the median sits below the target (seeds 0-15: 0.53-1.11)"
                ),
                "oracle shots (curve, predicted)": (
                    "snr^2 sum_i [sigma^2(x + pi/2 e_i) + sigma^2(x - pi/2 e_i)] / (4 |g|^2)"
                ),
            },
        ),
    ]
