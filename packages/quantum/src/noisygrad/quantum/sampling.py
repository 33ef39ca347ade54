"""Noise models and the checks of their inputs: how a batch of energy estimates is drawn for one circuit and
one observable.

* ``"shots"``: real shot sampling, ``m_g`` shots of every measurement group ``g`` at every point (the same
  ``shots`` for every group, or an allocation per group, see :meth:`MeasurementPlan.shots_for_precision`); the
  energy's variance is the state-dependent ``sum_g Var_g / m_g``.
* ``"gaussian-precision"``: the exact energy plus ``N(0, precision^2)``, with ``precision`` the one asked for or
  ``1/sqrt(shots)``: the model of Aer's ``EstimatorV2`` and Qiskit's ``StatevectorEstimator`` (no shots are
  sampled; for molecules ``1/sqrt(shots)`` is pessimistic: the true single-shot variance is usually well below 1).
  Offered for comparison.
* ``"exact"``: no noise (the statevector value).

Every draw comes from the caller's ``numpy.random.Generator``, so successive calls differ and a seeded run
reproduces (never the frozen noise of an integer ``seed_simulator`` reused on every call). Code driven by a
run's ``torch.Generator`` gets that numpy generator from :func:`noisygrad.rng.numpy_from_torch`, the one
conversion (it draws the numpy seed from the torch generator, which stays the run's only source).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from noisygrad.checks import check_positive_int

from .backends import SimulatorBackend
from .measurement import MAX_SHOTS, MeasurementPlan

NOISE_MODELS = ("shots", "gaussian-precision", "exact")


def check_noise(noise: str) -> str:
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    return noise


def check_shots(name: str, shots: object) -> int:
    """``shots`` as an int in ``[1, MAX_SHOTS]`` (numpy's counts are int64), or an error naming ``name``."""
    n = check_positive_int(name, shots)
    if n > MAX_SHOTS:
        raise ValueError(f"{name} must be at most {MAX_SHOTS} (the int64 maximum), got {n}")
    return n


def check_seed(seed: object) -> np.random.Generator:
    """The generator of ``seed``: ``None`` (fresh entropy), an int >= 0, or a ``numpy.random.Generator`` (used as
    is, so the caller's stream goes on); anything else raises an error naming ``seed``."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed if seed is not None else np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(
            f"seed must be None, an int >= 0 or a numpy.random.Generator, got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise ValueError(f"seed must be None, an int >= 0 or a numpy.random.Generator, got {int(seed)}")
    return np.random.default_rng(int(seed))


#: The smallest precision any observable can be asked for: one unit-norm Pauli measured to ``precision`` needs about
#: ``1 / precision**2`` shots, and one measurement group holds at most :data:`MAX_SHOTS` (int64) shots.
MIN_PRECISION = 1.0 / math.sqrt(MAX_SHOTS)


def check_precision(name: str, precision: object, noise: str) -> float:
    """``precision`` (the standard deviation asked of each estimate) as a float, or an error naming ``name``.

    It must be a finite real >= 0; 0 only with ``noise="exact"``, where the precision is not used (any other
    model would need infinitely many shots); below :data:`MIN_PRECISION` (about 3.3e-10) even a single unit-norm
    Pauli would need more than :data:`MAX_SHOTS` shots, so such a precision is refused here, before any
    observable is known (an observable with large coefficients may need a larger precision: checked per PUB).
    """
    if isinstance(precision, bool) or not isinstance(precision, Real):
        raise TypeError(f"{name} must be a real number > 0, got {type(precision).__name__} {precision!r}")
    value = float(precision)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number > 0 (the standard deviation of each estimate), got {value}")
    if value == 0 and noise != "exact":
        raise ValueError(
            f"{name}=0 with noise={noise!r} would need infinitely many shots; give a precision > 0, or use "
            "noise='exact' for noise-free values"
        )
    if noise != "exact" and value < MIN_PRECISION:
        raise ValueError(
            f"{name}={value:g} asks for about {1 / value**2:.3g} shots per unit-norm measurement group, above the "
            f"maximum of {MAX_SHOTS} (int64, the largest count allowed); the smallest {name} allowed is "
            f"{MIN_PRECISION * (1 + 1e-3):.4g}"
        )
    return value


def sample_energies(
    backend: SimulatorBackend,
    plan: MeasurementPlan,
    values: np.ndarray,
    shots: int | np.ndarray,
    rng: np.random.Generator,
    noise: str = "shots",
    precision: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Energy estimates ``(K,)`` and their standard errors ``(K,)`` at the ``K`` rows of ``values``.

    ``shots`` is the number of shots of every group, or one per group ``(G,)``. All rows go to the backend in
    one call; an observable without measurement groups (identity terms only) makes none and is exact. For
    ``"shots"`` the standard errors are estimated from the samples; for ``"gaussian-precision"`` they are the
    precision (``precision``, else ``1/sqrt(shots)`` for an int ``shots``); for ``"exact"`` zero.
    """
    k = len(values)
    if plan.num_groups == 0:  # a constant observable: no measurement needed
        return np.full(k, plan.constant), np.zeros(k)
    if noise == "shots":
        return plan.estimate(backend.counts(values, plan, shots, rng), shots)
    exact = plan.exact(backend.probabilities(values, plan))
    if noise == "exact":
        return exact, np.zeros(k)
    if precision is None:
        if not isinstance(shots, Integral):
            raise ValueError("noise='gaussian-precision' with shots per group needs the precision they were sized for")
        precision = 1.0 / math.sqrt(int(shots))
    return exact + rng.normal(0.0, precision, size=k), np.full(k, precision)
