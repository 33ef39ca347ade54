"""McCandlish et al.'s (2018, appendix A) two-batch estimates from squared norms, and their smoothing.

Data-parallel training computes gradients of two batch sizes at the same parameters for free: each rank's local
mean gradient over ``b_small`` examples and, after the all-reduce, the global mean over ``b_big``. With ``S`` the
(N-1)-normalised per-example covariance and ``G`` the full gradient, a mean over ``b`` distinct examples drawn
uniformly without replacement from ``N`` has ``E|g_b|^2 = |G|^2 + tr(S)(1/b - 1/N)`` (with replacement, or from a
stream: ``|G|^2 + tr(Sigma)/b``, ``Sigma`` the population covariance). Two sizes give two equations, hence

* ``tr(S) = (|g_small|^2 - |g_big|^2) / (1/b_small - 1/b_big)``, unbiased in both schemes,
* ``|G|^2 = (b_big |g_big|^2 - b_small |g_small|^2) / (b_big - b_small) + tr(S)/N``, where the ``tr(S)/N`` term is
  the finite-population correction (without replacement from ``N`` examples only).

Both are unbiased per step but noisy; their ratio is not, so a noise scale ``B_simple = tr(S)/|G|^2`` is taken from
separately smoothed numerator and denominator (:class:`SmoothedNoiseScale`), as McCandlish et al. and gpt-neox do.
Once ``B_simple`` is far above the batch, the ``|G|^2`` estimate is dominated by noise and often negative; the
smoothed ratio is then reported as ``inf`` ("larger than anything measurable here"), never as a negative scale.
:class:`noisygrad.NoiseScaleMeter` applies the same formulas to gradient tensors with fixed batch sizes; these take
the squared norms that a communication hook or a sharded estimator already holds, with batch sizes that may
change from step to step (an adaptive batch).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from noisygrad.checks import check_in_range, check_positive_int

__all__ = ["NoiseEstimate", "SmoothedNoiseScale", "two_batch_estimates"]


class NoiseEstimate(NamedTuple):
    """One step's unbiased estimates of ``tr(S)`` and ``|G|^2`` (either may be negative by chance)."""

    trace_cov: float
    grad_sq: float

    @property
    def noise_scale(self) -> float:
        """This step's ``tr(S)/|G|^2`` (``inf`` if ``|G|^2 <= 0``): noisy and biased; smooth the parts instead."""
        return self.trace_cov / self.grad_sq if self.grad_sq > 0 else math.inf


def _finite_non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def two_batch_estimates(
    small_sq: float, big_sq: float, b_small: int, b_big: int, n_examples: int | None = None
) -> NoiseEstimate:
    """Unbiased ``tr(S)`` and ``|G|^2`` from ``small_sq``, the mean over the small batches of ``|g_small|^2``,
    and ``big_sq = |g_big|^2`` (see the module docstring for the formulas).

    Args:
        small_sq: ``|g_small|^2``, or its mean over several small batches of ``b_small`` examples each (the ranks
            of a data-parallel step: averaging them lowers the variance and keeps the estimate unbiased).
        big_sq: ``|g_big|^2`` of the mean over ``b_big`` examples.
        b_small, b_big: the batch sizes, ``1 <= b_small < b_big``.
        n_examples: ``N`` when the batches are drawn without replacement from ``N`` examples (adds the
            finite-population correction ``tr(S)/N`` to ``|G|^2``); ``None`` for i.i.d. draws or a stream.
    """
    small_sq = _finite_non_negative("small_sq", small_sq)
    big_sq = _finite_non_negative("big_sq", big_sq)
    bs = check_positive_int("b_small", b_small)
    bb = check_positive_int("b_big", b_big)
    if bb <= bs:
        raise ValueError(f"b_big must be larger than b_small, got b_small={b_small}, b_big={b_big}")
    if n_examples is not None:
        n = check_positive_int("n_examples", n_examples)
        if bb > n:
            raise ValueError(f"b_big must be <= n_examples ({n}) when drawing without replacement, got {b_big}")
    trace = (small_sq - big_sq) / (1.0 / bs - 1.0 / bb)
    grad_sq = (bb * big_sq - bs * small_sq) / (bb - bs)
    if n_examples is not None:
        grad_sq += trace / n_examples
    return NoiseEstimate(trace, grad_sq)


class SmoothedNoiseScale:
    """Exponential moving averages of ``tr(S)`` and ``|G|^2``, kept apart, and their ratio ``B_simple``.

    Args:
        ema: the decay in ``(0, 1)``; the averages are bias-corrected (divided by ``1 - ema**count``), so the first
            update counts fully. Long averages lag a noise scale that moves with training. Measured on the README
            regression trained by SGD (lr 0.02, a batch of 32 in 8 shards, seeds 0-7), where ``B_simple`` rises from
            6.4 to about 11 at step 200 and 150 at step 300: with ``ema = 0.9`` the estimate stayed within 0.72-1.23
            of the truth over steps 25-200 and above 0.38 of it up to step 300; with 0.98 it fell to about 0.6 by
            step 200, 0.2 by step 250 and 0.05 by step 300. ``None`` keeps plain running means (fixed parameters).
    """

    def __init__(self, ema: float | None = 0.9) -> None:
        self.ema = None if ema is None else check_in_range("ema", ema, 0.0, 1.0, low_open=True)
        self._trace = 0.0
        self._grad_sq = 0.0
        self.count = 0

    def update(self, trace_cov: float, grad_sq: float) -> None:
        """Add one step's unbiased estimates (finite; ``grad_sq`` may be negative)."""
        for name, value in (("trace_cov", trace_cov), ("grad_sq", grad_sq)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        self.count += 1
        weight = 1.0 / self.count if self.ema is None else 1.0 - self.ema
        self._trace += weight * (float(trace_cov) - self._trace)
        self._grad_sq += weight * (float(grad_sq) - self._grad_sq)

    def _debias(self) -> float:
        if self.count == 0:
            raise RuntimeError("no noise estimates yet: call update() first")
        return 1.0 if self.ema is None else 1.0 - self.ema**self.count

    @property
    def trace_cov(self) -> float:
        """The smoothed ``tr(S)``."""
        return self._trace / self._debias()

    @property
    def grad_sq(self) -> float:
        """The smoothed ``|G|^2`` (may be negative when the noise dominates)."""
        return self._grad_sq / self._debias()

    @property
    def noise_scale(self) -> float:
        """``B_simple = tr(S)/|G|^2`` of the smoothed parts: ``inf`` when the smoothed ``|G|^2 <= 0``, 0 when the
        smoothed ``tr(S) <= 0`` (no measurable noise)."""
        trace, grad_sq = self.trace_cov, self.grad_sq
        if grad_sq <= 0:
            return math.inf
        return max(trace, 0.0) / grad_sq

    def state_dict(self) -> dict[str, Any]:
        return {"trace": self._trace, "grad_sq": self._grad_sq, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"trace", "grad_sq", "count"}:
            raise ValueError(f"state must have keys count, grad_sq, trace; got {sorted(state)}")
        trace, grad_sq = float(state["trace"]), float(state["grad_sq"])
        if not (math.isfinite(trace) and math.isfinite(grad_sq)):
            raise ValueError(f"state holds non-finite averages: trace={trace}, grad_sq={grad_sq}")
        self.count = check_positive_int("state['count']", state["count"], allow_zero=True)
        self._trace, self._grad_sq = trace, grad_sq
