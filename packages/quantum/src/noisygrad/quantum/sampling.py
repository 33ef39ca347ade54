"""Noise models: how a batch of energy estimates is drawn for one circuit and one observable.

* ``"shots"``: real shot sampling, ``shots`` shots of every measurement group at every point; the energy's
  variance is the state-dependent ``sum_g Var_g / shots``.
* ``"gaussian-precision"``: the exact energy plus ``N(0, precision^2)`` with ``precision = 1/sqrt(shots)``,
  the model of Aer's ``EstimatorV2`` and Qiskit's ``StatevectorEstimator`` (no shots are sampled; for molecules
  it is pessimistic: the true single-shot variance is usually well below 1). Offered for comparison.
* ``"exact"``: no noise (the statevector value).

Every draw comes from the caller's ``numpy.random.Generator``, so successive calls differ and a seeded run
reproduces (never the frozen noise of an integer ``seed_simulator`` reused on every call).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .backends import AerBackend, TorchBackend
from .measurement import MeasurementPlan

NOISE_MODELS = ("shots", "gaussian-precision", "exact")


def check_noise(noise: str) -> str:
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    return noise


def sample_energies(
    backend: TorchBackend | AerBackend,
    plan: MeasurementPlan,
    values: np.ndarray,
    shots: int,
    rng: np.random.Generator,
    noise: str = "shots",
) -> tuple[np.ndarray, np.ndarray]:
    """Energy estimates ``(K,)`` and their standard errors ``(K,)`` at the ``K`` rows of ``values``.

    All rows go to the backend in one call. For ``"shots"`` the standard errors are estimated from the
    samples; for ``"gaussian-precision"`` they are the precision; for ``"exact"`` zero.
    """
    k = len(values)
    if plan.num_groups == 0:  # a constant observable: no measurement needed
        return np.full(k, plan.constant), np.zeros(k)
    if noise == "shots":
        return plan.estimate(backend.counts(values, plan, shots, rng), shots)
    exact = plan.exact(backend.probabilities(values, plan))
    if noise == "exact":
        return exact, np.zeros(k)
    precision = 1.0 / math.sqrt(shots)
    return exact + rng.normal(0.0, precision, size=k), np.full(k, precision)


def generator_seed(generator: torch.Generator) -> int:
    """A 62-bit seed drawn from a ``torch.Generator`` (to derive a numpy generator reproducibly)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))
