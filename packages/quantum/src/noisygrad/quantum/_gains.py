"""``SPSAGains``: the SPSA settings of the native :func:`~noisygrad.quantum.vqe` loop, checked once.

The qiskit-algorithms-compatible optimizer is :class:`~noisygrad.quantum.SPSA`; this is the set-up the native
loop shares with the core's :class:`noisygrad.SPSA` estimate and :func:`noisygrad.spsa_calibrate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from noisygrad import SPSA as SPSAEstimator
from noisygrad import NoisyBlackBox, RobbinsMonro, spsa_calibrate
from noisygrad.checks import check_in_range, check_positive, check_positive_int

from .spsa import SPALL_ALPHA, SPALL_GAMMA


@dataclass(frozen=True)
class SPSAGains:
    """SPSA's settings, checked once, and the set-up both :class:`SPSA` and :func:`~noisygrad.quantum.vqe` use.

    ``a_k = a / (A + k + 1)^0.602`` and ``c_k = c / (k + 1)^gamma`` (Spall 1998: ``gamma = 0.101``). See
    :class:`SPSA` for the meaning of each field; ``stability=None`` becomes 0 (qiskit's; Spall's 10% of
    ``maxiter`` with the first step held at ``target_step`` left steps so large that runs random-walked on most
    problems of ``benchmarks/quantum_family.py``) and ``average_last=None`` a quarter.
    """

    maxiter: int
    learning_rate: float | None = None
    perturbation: float = 0.2
    perturbation_decay: float = SPALL_GAMMA
    stability: float | None = None
    target_step: float = 2 * math.pi / 10
    resamplings: int = 1
    calibration_samples: int = 25
    average_last: int | None = None

    def __post_init__(self) -> None:
        maxiter = check_positive_int("maxiter", self.maxiter)
        checked = {
            "maxiter": maxiter,
            "learning_rate": None
            if self.learning_rate is None
            else check_positive("learning_rate", self.learning_rate),
            "perturbation": check_positive("perturbation", self.perturbation),
            "perturbation_decay": check_in_range(
                "perturbation_decay", self.perturbation_decay, 0.0, 1.0, high_open=False
            ),
            "stability": 0.0
            if self.stability is None
            else check_positive("stability", self.stability, allow_zero=True),
            "target_step": check_positive("target_step", self.target_step),
            "resamplings": check_positive_int("resamplings", self.resamplings),
            "calibration_samples": check_positive_int("calibration_samples", self.calibration_samples),
            "average_last": max(1, maxiter // 4)
            if self.average_last is None
            else check_positive_int("average_last", self.average_last),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def estimator(self, objective: NoisyBlackBox) -> SPSAEstimator:
        """The core's SPSA estimate with ``c_k = perturbation / (k + 1)^perturbation_decay``."""
        return SPSAEstimator(
            objective, c=self.perturbation, gamma=self.perturbation_decay, resamplings=self.resamplings
        )

    @property
    def average_window(self) -> int:
        """How many of the last iterates are averaged (``average_last``, resolved)."""
        return int(self.average_last)  # type: ignore[arg-type]  # resolved in __post_init__

    def start(
        self, objective: NoisyBlackBox, x0: torch.Tensor, generator: torch.Generator
    ) -> tuple[SPSAEstimator, RobbinsMonro, dict[str, float]]:
        """The estimator, the gain schedule and what calibration spent and chose (``{}`` if ``a`` was given).

        Calibration (when ``learning_rate`` is ``None``) makes ``calibration_samples`` SPSA estimates at ``x0``
        in one call of ``objective`` (``2 * calibration_samples`` evaluations, counted by the objective).
        """
        stability = float(self.stability)  # type: ignore[arg-type]  # resolved in __post_init__
        estimator = self.estimator(objective)
        if self.learning_rate is not None:
            return estimator, RobbinsMonro(self.learning_rate, stability + 1.0, SPALL_ALPHA), {}
        cal = spsa_calibrate(
            objective,
            x0,
            generator=generator,
            c=self.perturbation,
            target_step=self.target_step,
            alpha=SPALL_ALPHA,
            stability=stability,
            samples=self.calibration_samples,
        )
        info = {"a": cal.a, "stability": stability, "evaluations": float(cal.cost.evaluations)}
        return estimator, cal.learning_rate, info
