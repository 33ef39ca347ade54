""":func:`~noisygrad.quantum.vqe`'s SPSA set-up: the ``"spsa"`` shorthand's estimator and Spall's calibrated gains.

The estimator is the core's :class:`noisygrad.SPSA`; the gain ``a_k = a / (A + k + 1)^0.602`` of the default
optimizer is calibrated with :func:`noisygrad.spsa_calibrate`. Both check their settings by vqe's argument
names before anything runs. (The qiskit-algorithms-compatible optimizer :class:`~noisygrad.quantum.SPSA` has
settings and defaults of its own.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from noisygrad import SPSA as SPSAEstimator
from noisygrad import NoisyBlackBox, RobbinsMonro, spsa_calibrate
from noisygrad.checks import check_in_range, check_positive, check_positive_int

from .spsa import SPALL_ALPHA, SPALL_GAMMA


def spsa_shorthand(
    perturbation: float | None, perturbation_decay: float | None, resamplings: int | None
) -> Callable[[NoisyBlackBox], SPSAEstimator]:
    """``gradient="spsa"``: ``partial(noisygrad.SPSA, c=perturbation, gamma=perturbation_decay, resamplings=...)``.

    ``None`` takes the shorthand's default: ``c = 0.2``, ``gamma = 0.101`` (Spall's), one resampling.
    """
    return partial(
        SPSAEstimator,
        c=0.2 if perturbation is None else check_positive("perturbation", perturbation),
        gamma=SPALL_GAMMA
        if perturbation_decay is None
        else check_in_range("perturbation_decay", perturbation_decay, 0.0, 1.0, high_open=False),
        resamplings=1 if resamplings is None else check_positive_int("resamplings", resamplings),
    )


@dataclass(frozen=True)
class SPSAGains:
    """Spall's gain ``a_k = a / (A + k + 1)^0.602``, ``a`` calibrated so that the first step is ``target_step``.

    ``stability`` is Spall's ``A`` (``None``: 0, qiskit's; Spall's 10% of ``maxiter`` with the first step held
    at ``target_step`` left steps so large that runs random-walked on most problems of
    ``benchmarks/quantum_family.py``); ``calibration_samples`` SPSA estimates at the initial point measure the
    gradient's size (``2 * calibration_samples`` evaluations, one call, counted by the objective).
    """

    stability: float | None = None
    target_step: float = 2 * math.pi / 10
    calibration_samples: int = 25

    def __post_init__(self) -> None:
        checked = {
            "stability": 0.0
            if self.stability is None
            else check_positive("stability", self.stability, allow_zero=True),
            "target_step": check_positive("target_step", self.target_step),
            "calibration_samples": check_positive_int("calibration_samples", self.calibration_samples),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def calibrate(
        self, objective: NoisyBlackBox, x0: torch.Tensor, generator: torch.Generator, c: float
    ) -> tuple[RobbinsMonro, dict[str, float]]:
        """The gain schedule for an SPSA estimator of perturbation ``c``, and what calibration spent and chose."""
        stability = float(self.stability)  # type: ignore[arg-type]  # resolved in __post_init__
        cal = spsa_calibrate(
            objective,
            x0,
            generator=generator,
            c=c,
            target_step=self.target_step,
            alpha=SPALL_ALPHA,
            stability=stability,
            samples=self.calibration_samples,
        )
        info = {"a": cal.a, "stability": stability, "evaluations": float(cal.cost.evaluations)}
        return cal.learning_rate, {**info, "shots": float(cal.cost.shots)}
