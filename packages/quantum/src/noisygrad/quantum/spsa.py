"""``SPSA``: Spall's optimizer as a minimizer callable for ``qiskit_algorithms.VQE`` (and scipy-style code).

``VQE(estimator, ansatz, optimizer=SPSA(maxiter=300, resamplings=2, seed=7))`` calls it as
``SPSA(...)(fun, x0, jac=None, bounds=None)``. It is the core's :class:`noisygrad.SPSA` estimate with
Spall's gains ``a_k = a / (A + k + 1)^0.602`` (``noisygrad.RobbinsMonro(a, A + 1, 0.602)``) and
``c_k = c / (k + 1)^0.101``, ``a`` calibrated with :func:`noisygrad.spsa_calibrate` (Qiskit's rule:
first step ``2 pi / 10``) unless given. What it does differently from ``qiskit_algorithms.optimizers.SPSA``:

* every point of a step goes to ``fun`` in ONE call of shape ``(K, P)`` (``2 * resamplings`` points, the 50
  calibration points together): ``qiskit_algorithms.VQE``'s energy function sends them as one PUB;
* ``nfev`` counts every evaluation: calibration, blocking and the final estimate included;
* blocking takes its allowed increase from the noise of the evaluations themselves, needing no extra ones,
  and keeps no state between runs;
* ``result.fun`` is the mean of ``final_evaluations`` fresh evaluations at the final point (counted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult

from noisygrad import SGD, NoisyBlackBox, RobbinsMonro, spsa_calibrate
from noisygrad import SPSA as SPSAEstimator
from noisygrad._validation import as_parameter_vector, check_in_range, check_positive, check_positive_int
from noisygrad.minimizer import box_from_bounds

from . import _loop

SPALL_ALPHA = 0.602
SPALL_GAMMA = 0.101


@dataclass(frozen=True)
class SPSAGains:
    """SPSA's settings, checked once, and the set-up both :class:`SPSA` and :func:`~noisygrad.quantum.vqe` use.

    ``a_k = a / (A + k + 1)^0.602`` and ``c_k = c / (k + 1)^gamma`` (Spall 1998: ``gamma = 0.101``). See
    :class:`SPSA` for the meaning of each field; ``stability=None`` becomes 10% of ``maxiter`` and
    ``average_last=None`` a quarter.
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
            "stability": 0.1 * maxiter
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


class SPSA:
    """Simultaneous-perturbation stochastic approximation as a ``(fun, x0, jac, bounds)`` minimizer.

    Args:
        maxiter: iterations (> 0); each costs ``2 * resamplings`` evaluations (+1 with ``blocking``).
        seed: seeds the perturbations (``None``: fresh entropy).
        learning_rate: the gain ``a`` of ``a / (A + k + 1)^0.602``; ``None`` calibrates it from
            ``calibration_samples`` SPSA estimates at ``x0`` (``2 * calibration_samples`` evaluations, counted).
        perturbation: ``c`` of ``c_k = c / (k + 1)^gamma`` (Qiskit's 0.2).
        perturbation_decay: ``gamma`` (Spall's 0.101). A larger ``gamma`` shrinks ``c_k``, and with it the
            ``O(c_k^2)`` bias of the gradient, faster, at the price of more shot noise ``sigma^2 / (2 c_k^2 S)``.
        stability: Spall's ``A`` (``None``: 10% of ``maxiter``, Spall's recommendation; Qiskit uses 0). On H2 at
            1000 shots, 300 iterations, the median error over 10 seeds was 4.9 mHa with ``A = 0`` and 1.5 mHa with
            ``A = 30`` (both averaging the last 30 iterates).
        target_step: the first step's size per parameter when calibrating (Qiskit's ``2 pi / 10``).
        resamplings: perturbations averaged per step, all in the same call.
        blocking: reject steps whose value rose beyond twice the standard error of the difference
            (one extra evaluation per step, plus ``calibration_samples`` evaluations at ``x0`` to measure the
            noise, all counted).
        average_last: return the mean of the last ``average_last`` accepted iterates (default: a quarter of
            ``maxiter``; ``1`` is Qiskit's default ``last_avg=1``). Averaging damps the final noise ball (see
            :func:`~noisygrad.quantum.vqe` for measurements).
        final_evaluations: fresh evaluations averaged for ``result.fun`` (> 0).
        batch: ``fun`` takes a ``(K, P)`` array and returns ``K`` values (``qiskit_algorithms.VQE``'s energy
            function does); ``False`` calls ``fun`` once per point.
        callback: ``callback(nfev, x, value_estimate, step_accepted)`` after every iteration.
    """

    def __init__(
        self,
        maxiter: int = 100,
        *,
        seed: int | None = None,
        learning_rate: float | None = None,
        perturbation: float = 0.2,
        perturbation_decay: float = SPALL_GAMMA,
        stability: float | None = None,
        target_step: float = 2 * math.pi / 10,
        resamplings: int = 1,
        blocking: bool = False,
        average_last: int | None = None,
        calibration_samples: int = 25,
        final_evaluations: int = 1,
        batch: bool = True,
        callback: Callable[[int, np.ndarray, float | None, bool], None] | None = None,
    ) -> None:
        self.gains = SPSAGains(
            maxiter,
            learning_rate=learning_rate,
            perturbation=perturbation,
            perturbation_decay=perturbation_decay,
            stability=stability,
            target_step=target_step,
            resamplings=resamplings,
            calibration_samples=calibration_samples,
            average_last=average_last,
        )
        self.maxiter = self.gains.maxiter
        self.seed = seed if seed is None else check_positive_int("seed", seed, allow_zero=True)
        self.blocking = bool(blocking)
        self.final_evaluations = check_positive_int("final_evaluations", final_evaluations)
        self.batch = bool(batch)
        self.callback = callback

    def __call__(
        self,
        fun: Callable[[np.ndarray], Any],
        x0: Sequence[float] | np.ndarray,
        jac: Callable[[np.ndarray], np.ndarray] | None = None,
        bounds: Sequence[tuple[float | None, float | None]] | None = None,
    ) -> OptimizeResult:
        """Minimise ``fun`` from ``x0``; ``jac`` is ignored (SPSA needs values only), ``bounds`` clip the steps."""
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        x = as_parameter_vector("x0", np.asarray(x0, dtype=np.float64))
        box = box_from_bounds(bounds, x)
        nfev = 0

        def evaluate(points: torch.Tensor) -> torch.Tensor:
            nonlocal nfev
            arr = points.detach().numpy().copy()
            if self.batch:
                out = np.asarray(fun(arr if len(arr) > 1 else arr[0]), dtype=np.float64).reshape(-1)
            else:
                out = np.array([float(fun(p)) for p in arr])
            if out.shape != (len(arr),):
                raise ValueError(
                    f"fun returned {out.size} values for {len(arr)} points; with batch=True it must take a (K, P) "
                    "array and return K values (or pass batch=False)"
                )
            nfev += len(arr)
            return torch.as_tensor(out)

        objective = NoisyBlackBox(lambda points, generator: evaluate(points))
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        if box is not None:
            x = torch.clamp(x, *box)
        estimator, schedule, _ = self.gains.start(objective, x, generator)
        calibration_evaluations = nfev

        noise_std, initial_value = 0.0, None
        if self.blocking:  # the noise of one evaluation, from repeated evaluations at x0 (one call, counted)
            repeats = objective.evaluate(x.reshape(1, -1).repeat(self.gains.calibration_samples, 1), generator)
            noise_std = float(repeats.std()) if len(repeats) > 1 else 0.0
            initial_value = (float(repeats.mean()), noise_std / math.sqrt(len(repeats)))

        def value_fn(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            values = objective.evaluate(points, generator)
            return values, torch.full_like(values, noise_std)

        def on_step(t: int, xt: torch.Tensor, record: dict[str, Any]) -> None:
            if self.callback is not None:
                self.callback(nfev, xt.numpy().copy(), record["estimate"], record["accepted"])

        result = _loop.run(
            estimator,
            SGD(schedule),
            x,
            steps=self.maxiter,
            generator=generator,
            value_fn=value_fn,
            blocking=self.blocking,
            average_last=self.gains.average_window,
            bounds=box,
            initial_value=initial_value,
            on_step=on_step,
        )
        x_final = result.x.numpy().copy()
        finals = evaluate(torch.as_tensor(np.repeat(x_final[None, :], self.final_evaluations, 0)))
        return OptimizeResult(
            x=x_final,
            fun=float(finals.mean()),
            nfev=nfev,
            njev=0,
            nit=self.maxiter,
            success=True,
            message=f"{self.maxiter} SPSA iterations, {result.rejected} steps rejected",
            calibration_evaluations=calibration_evaluations,
            learning_rate=schedule,
            history=result.history,
        )
