"""Adaptive shots per iteration: choose each gradient estimate's shots from the gradient's measured signal-to-noise.

Far from a minimum the gradient is large and a few shots resolve its direction; near one it shrinks while the
shot noise does not, and a fixed shot count either wastes shots early or drowns late. In the manner of iCANS and
Rosalin (Kuebler et al. 2020; Arrasmith et al. 2020) and of the suite's thermostat, :class:`AdaptiveShots` holds
the gradient's signal-to-noise ratio at a target by choosing the shots per measurement group of the next estimate:

* each estimate gives a power ``p_k`` (``|g_hat|^2``; for SPSA the squared directional derivative) and its shot-noise
  part ``n_k`` (the sum of the estimate's variances, from the per-point standard errors the objective measured),
  with ``E[p_k] - E[n_k] = |g|^2``;
* exponential averages (``smoothing``, bias-corrected as in Adam) of what does not depend on the shots give the
  signal ``S = avg(p_k - n_k)`` (an estimate of ``|g|^2``) and the single-shot noise ``v = avg(n_k * shots_k)``
  (noise falls as ``1 / shots``);
* the next estimate gets ``shots = snr^2 * v / S`` (as many as allowed while ``S`` is not positive), within
  ``[min_shots, max_shots]`` and at most a factor ``growth`` from the last (so one unlucky estimate cannot make
  the count jump).

Every shot goes through the objective, so ``objective.shots_used`` and the estimates' ``Cost`` count them all; the
decisions (shots, power, noise, signal-to-noise) are in :attr:`AdaptiveShots.history`, bounded by
``history_size``. It wraps :class:`~noisygrad.quantum.ParameterShift` or the core's :class:`noisygrad.SPSA` and
is itself a :class:`noisygrad.Estimator`, so :func:`noisygrad.minimize`, the core's optimizers and
:func:`~noisygrad.quantum.vqe` (``gradient=AdaptiveShots`` or ``functools.partial(AdaptiveShots, ...)``) take it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from noisygrad import SPSA, Estimate, Estimator
from noisygrad.checks import check_in_range, check_positive, check_positive_int

from .gradients import ParameterShift
from .objective import EnergyObjective

#: Below this fraction of the single-shot noise the signal counts as zero (the shots then grow by ``growth``).
SIGNAL_FLOOR = 1e-6

#: The default ``smoothing`` around parameter shift: its power sums ``P`` components, so a few estimates suffice.
PARAMETER_SHIFT_SMOOTHING = 0.8
#: The default ``smoothing`` around SPSA (about 100 estimates averaged). Its power is ONE squared directional
#: derivative, ``(Delta . g + noise)^2``: a chi-square-like draw with relative variance about ``2 (1 + 1/snr^2)^2``
#: whatever ``P``. Near H2's minimum (true snr 0.66, a fixed point, fixed shots) each ``p - n`` scattered by 4.7
#: times its mean ``|g|^2``; averaged over the ~9 estimates of smoothing 0.8 the signal was <= 0 in 27% of the steps
#: (each doubles the shots), with 0.98 in 0.4% (``tests/test_adaptive.py``). With 0.8, 300-step H2 runs spent
#: 4e6-2e7 shots on shot counts jumping between 10 and 1e5.
SPSA_SMOOTHING = 0.98


class AdaptiveShots:
    """A gradient estimator whose shots per measurement group follow the gradient's signal-to-noise (see module).

    Args:
        objective: the shot-noise energy (its ``shots`` is set before each estimate).
        inner: the gradient estimator it drives, a factory ``objective -> estimator``: ``ParameterShift`` (the
            default) or ``noisygrad.SPSA`` (or a ``functools.partial`` of either).
        snr: the target signal-to-noise ratio of the gradient estimate (> 0): ``|g| / sqrt(E|g_hat - g|^2)``;
            for SPSA, of the directional derivative.
        min_shots, max_shots: the range of shots per group (``1 <= min_shots <= max_shots``); the first estimate
            takes ``min_shots``.
        growth: the largest factor between successive shot counts (> 1).
        smoothing: the exponential averages' factor in [0, 1) (0: each estimate alone); ``None`` (the default):
            :data:`PARAMETER_SHIFT_SMOOTHING` (0.8) around parameter shift, :data:`SPSA_SMOOTHING` (0.98) around
            SPSA, whose one directional derivative per estimate measures the signal far more noisily.
        history_size: decisions kept in :attr:`history` (the last ones).
    """

    def __init__(
        self,
        objective: EnergyObjective,
        inner: Callable[[EnergyObjective], Estimator] = ParameterShift,
        *,
        snr: float = 1.0,
        min_shots: int = 10,
        max_shots: int = 100_000,
        growth: float = 2.0,
        smoothing: float | None = None,
        history_size: int = 10_000,
    ) -> None:
        if not isinstance(objective, EnergyObjective):
            raise TypeError(f"objective must be an EnergyObjective, got {type(objective).__name__}")
        if objective.allocation is not None or objective.noise != "shots":
            raise ValueError("AdaptiveShots needs an objective with noise='shots' and no allocation")
        self.snr = check_positive("snr", snr)
        self.min_shots = check_positive_int("min_shots", min_shots)
        self.max_shots = check_positive_int("max_shots", max_shots)
        if self.max_shots < self.min_shots:
            raise ValueError(f"max_shots must be >= min_shots={self.min_shots}, got {self.max_shots}")
        self.growth = check_positive("growth", growth)
        if self.growth <= 1:
            raise ValueError(f"growth must be > 1, got {growth}")
        if smoothing is not None:
            smoothing = check_in_range("smoothing", smoothing, 0.0, 1.0)
        self.history_size = check_positive_int("history_size", history_size)
        if not callable(inner):
            raise TypeError(f"inner must be an estimator factory (ParameterShift, noisygrad.SPSA), got {inner!r}")
        built = inner(objective)
        if not isinstance(built, ParameterShift | SPSA):
            raise TypeError(
                "inner must build a ParameterShift or a noisygrad.SPSA (their noise is known), got "
                f"{type(built).__name__}"
            )
        self.objective = objective
        self.inner: ParameterShift | SPSA = built
        if smoothing is None:
            smoothing = SPSA_SMOOTHING if isinstance(built, SPSA) else PARAMETER_SHIFT_SMOOTHING
        self.smoothing: float = smoothing
        self.shots = self.min_shots
        self._power = 0.0
        self._noise = 0.0
        self._count = 0
        self.history: deque[dict[str, float]] = deque(maxlen=self.history_size)

    def _power_and_noise(self, estimate: Estimate) -> tuple[float, float]:
        """``(power, its shot-noise part)`` of one estimate, from the objective's per-point standard errors."""
        stds = np.asarray(self.objective.last_stds, dtype=float)
        if isinstance(self.inner, ParameterShift):
            return float(estimate.grad.pow(2).sum()), float(estimate.stats["grad_variance"])
        s = self.inner.resamplings  # SPSA: points are [x + c d_j] then [x - c d_j], j < s
        ck = float(estimate.stats["c_k"])
        direction = estimate.grad.reshape(-1)
        # the mean directional derivative over the draws: |g_hat|^2 / P when s = 1 (|d_j|^2 = P)
        power = float(direction.pow(2).sum()) / direction.numel()
        noise = float((stds[:s] ** 2 + stds[s:] ** 2).sum() / (4 * ck**2)) / s**2
        return power, noise

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        """One gradient estimate with :attr:`shots` shots per group; then the next estimate's shots."""
        shots = self.shots
        self.objective.shots = shots
        self.objective.cost_per_evaluation = float(self.objective.shots_per_evaluation)
        estimate = self.inner.estimate(params, generator)
        power, noise = self._power_and_noise(estimate)
        a = self.smoothing
        self._count += 1
        # average what does not depend on the shots: the signal |g|^2 (power minus its noise) and the noise per shot
        self._power = a * self._power + (1 - a) * (power - noise)
        self._noise = a * self._noise + (1 - a) * noise * shots
        correction = 1 - a**self._count
        signal2, per_shot = self._power / correction, self._noise / correction
        wanted = self.snr**2 * per_shot / signal2 if signal2 > SIGNAL_FLOOR * per_shot else math.inf
        low, high = max(self.min_shots, shots / self.growth), min(self.max_shots, shots * self.growth)
        chosen = math.ceil(min(max(wanted, low), high))
        self.shots = max(self.min_shots, min(self.max_shots, chosen))
        snr = math.sqrt(max(signal2, 0.0) * shots / per_shot) if per_shot > 0 else math.inf
        self.history.append(
            {
                "shots": float(shots),
                "power": power,
                "noise": noise,
                "snr": snr,
                "next_shots": float(self.shots),
            }
        )
        stats = {**estimate.stats, "shots_per_group": float(shots), "snr": self.history[-1]["snr"]}
        return Estimate(estimate.grad, estimate.value, estimate.cost, stats)

    def state_dict(self) -> dict[str, Any]:
        """The controller's averages and next shot count, and the inner estimator's state (plain numbers)."""
        return {
            "shots": self.shots,
            "power": self._power,
            "noise": self._noise,
            "count": self._count,
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"shots", "power", "noise", "count", "inner"}:
            raise ValueError(
                f"AdaptiveShots state must have keys count, inner, noise, power, shots; got {sorted(state)}"
            )
        shots = check_positive_int("state['shots']", state["shots"])
        count = check_positive_int("state['count']", state["count"], allow_zero=True)
        power = float(state["power"])  # the averaged signal: may be negative (noise above it)
        if not math.isfinite(power):
            raise ValueError(f"state['power'] must be finite, got {power}")
        noise = check_positive("state['noise']", state["noise"], allow_zero=True)
        self.inner.load_state_dict(state["inner"])
        self.shots, self._count, self._power, self._noise = shots, count, power, noise
