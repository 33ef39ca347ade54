"""A thermostat: hold SGD's effective temperature ``kT = lr E|g_b - g|^2 / (2 d)`` at a target.

The temperature of constant-step SGD (:func:`noisygrad.noise.statistics.effective_temperature`) is
``lr tr(S_pop) / (2 B d)`` for i.i.d. batches (with replacement; ``S_pop`` the N-normalised per-example covariance) and
``lr tr(S)(1/B - 1/N) / (2 d)`` for batches drawn without replacement (``S`` the (N-1)-normalised one). As the
gradient noise changes along a run (it usually shrinks towards a minimum of a least-squares fit, grows on a
sharp one), a fixed ``lr`` and ``B`` drift in temperature. The thermostat measures the noise from each
mini-batch (an exponential moving average of ``MiniBatch(..., noise_stats=True)``'s ``trace_cov``, the
within-batch sample variance: unbiased for ``tr(S_pop)`` with replacement, for ``tr(S)`` without) and moves
either the learning rate (``control="lr"``) or the batch size (``control="batch"``) to hold ``kT``, with the
same noise-per-example factor as the estimator's ``grad_variance`` (so a
:class:`~noisygrad.noise.statistics.TemperatureMeter` reads the target on the batch the thermostat measured).

Use it as both the optimizer's learning-rate schedule and a callback of :func:`noisygrad.minimize`::

    estimator = MiniBatch(objective, 32, noise_stats=True)
    thermostat = Thermostat(estimator, temperature=1e-4, lr=0.05)
    minimize(estimator, SGD(thermostat), x0, steps=1000, callbacks=[thermostat.observe])

With ``control="batch"`` the thermostat sets ``estimator.batch_size`` (the estimator is its actuator).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from noisygrad.checks import check_in_range, check_positive, check_positive_int
from noisygrad.estimators.batch import MiniBatch

__all__ = ["Thermostat"]


class Thermostat:
    """Hold the effective temperature of mini-batch SGD by moving ``lr`` or the batch size.

    Args:
        estimator: the :class:`~noisygrad.MiniBatch` estimator of the run, with ``noise_stats=True``.
        temperature: the target ``kT`` > 0.
        lr: the learning rate before the first measurement (and the fixed rate with ``control="batch"``).
        control: ``"lr"`` or ``"batch"``.
        smoothing: the decay of the moving average of ``tr(S)``, in [0, 1) (0 uses the last batch only).
        lr_max: an upper bound on the learning rate (``control="lr"``); ``None`` for none. Keep it below
            ``2 / lambda_max`` of the Hessian, where SGD is stable.

    The schedule interface ``thermostat(t)`` returns the current rate; :meth:`observe` is the callback.
    ``state_dict`` / ``load_state_dict`` carry the moving average, the rate and the batch size.
    """

    def __init__(
        self,
        estimator: MiniBatch,
        temperature: float,
        *,
        lr: float,
        control: str = "lr",
        smoothing: float = 0.9,
        lr_max: float | None = None,
    ) -> None:
        if not isinstance(estimator, MiniBatch):
            raise TypeError(f"estimator must be a noisygrad.MiniBatch, got {type(estimator).__name__}")
        if not estimator.noise_stats:
            raise ValueError(
                "estimator must report noise statistics: construct it with MiniBatch(..., noise_stats=True)"
            )
        if control not in ("lr", "batch"):
            raise ValueError(f"control must be 'lr' or 'batch', got {control!r}")
        self.estimator = estimator
        self.temperature = check_positive("temperature", temperature)
        self.lr = check_positive("lr", lr)
        self.control = control
        self.smoothing = check_in_range("smoothing", smoothing, 0.0, 1.0)
        self.lr_max = math.inf if lr_max is None else check_positive("lr_max", lr_max)
        self._trace: float | None = None

    def __call__(self, t: int) -> float:
        """The learning rate for step ``t`` (the schedule interface)."""
        return self.lr

    def _noise_per_example(self, batch_size: int) -> float:
        """``E|g_b - g|^2 / E[trace_cov]`` for the estimator's sampling scheme.

        With replacement ``trace_cov`` already estimates the N-normalised ``tr(S_pop)``, so the factor is
        ``1 / b`` (no further ``(N - 1) / N``); without replacement it estimates ``tr(S)`` and the factor is
        ``1 / b - 1 / N``.
        """
        n = self.estimator.objective.n_examples
        return 1.0 / batch_size if self.estimator.replace else 1.0 / batch_size - 1.0 / n

    def observe(self, info: Any) -> None:
        """Callback: update the ``tr(S)`` average from the step's estimate and re-set ``lr`` or ``B``."""
        trace = info.estimate.stats.get("trace_cov")
        if trace is None:
            raise ValueError("Thermostat needs estimates with trace_cov; use MiniBatch(..., noise_stats=True)")
        self._trace = trace if self._trace is None else self.smoothing * self._trace + (1 - self.smoothing) * trace
        if self._trace <= 0:
            return
        dim = info.x.numel()
        if self.control == "lr":
            factor = self._noise_per_example(self.estimator.batch_size)
            if factor > 0:
                self.lr = min(self.lr_max, 2 * dim * self.temperature / (self._trace * factor))
        else:
            n = self.estimator.objective.n_examples
            needed = 2 * dim * self.temperature / (self.lr * self._trace)  # the noise factor to reach
            if self.estimator.replace:  # i.i.d. draws: any batch size, even above N
                self.estimator.batch_size = max(round(1.0 / needed), 2)
            else:
                self.estimator.batch_size = int(min(max(round(1.0 / (needed + 1.0 / n)), 2), n))

    def state_dict(self) -> dict[str, Any]:
        return {"trace": self._trace, "lr": self.lr, "batch_size": self.estimator.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the moving average, the rate and the batch size; every entry is checked before any is set.

        The state holds plain numbers only, so a checkpoint with it loads with ``torch.load(weights_only=True)``;
        :func:`~noisygrad.minimize` keeps it in its checkpoint (see :mod:`noisygrad.loop_checkpoint`).
        """
        if not isinstance(state, Mapping) or set(state) != {"trace", "lr", "batch_size"}:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"state must have keys batch_size, lr, trace; got {got}")
        trace = None if state["trace"] is None else check_positive("state['trace']", state["trace"], allow_zero=True)
        lr = check_positive("state['lr']", state["lr"])
        batch_size = check_positive_int("state['batch_size']", state["batch_size"])
        n = self.estimator.objective.n_examples
        if not self.estimator.replace and batch_size > n:
            raise ValueError(f"state['batch_size'] must be <= the number of examples ({n}), got {batch_size}")
        self._trace, self.lr, self.estimator.batch_size = trace, lr, batch_size
