"""A batch size (or a learning rate) that follows the measured gradient noise scale.

McCandlish et al. (2018) find that training at batch ``B`` takes about ``(1 + B_noise/B)`` times the optimal
number of steps, so batches below the noise scale waste steps and batches far above it waste examples; the
simple noise scale ``B_simple = tr(S)/|G|^2`` is its measurable proxy and typically grows as the loss falls.
:class:`AdaptiveBatch` smooths the per-step unbiased ``tr(S)`` and ``|G|^2`` (from
:class:`~noisygrad.distributed.GradientNoiseHook`, :class:`~noisygrad.distributed.DataParallelMiniBatch`, or
``MiniBatch(noise_stats=True)``) and grows the batch towards ``target * B_simple``.

Robustness, from measured failure modes of the estimate:

* Grow-only, in multiples of ``multiple_of`` (the world size, or the shards), never above ``max_batch_size``: a
  noisy estimate can delay growth but never makes the batch oscillate.
* Once ``B_simple`` is well above the batch (about 10x, measured), the ``|G|^2`` estimate is noise and often
  negative: the smoothed ratio is then ``inf``, read as "larger than any batch allowed", and growth is capped at
  ``max_growth`` per decision, so one bad stretch cannot jump to ``max_batch_size``.
* ``warmup`` decisions wait until the moving averages hold that many steps.

The learning-rate rules give the gain for the current batch ``B`` against ``base_batch_size`` ``B0``
(``S = B/B0``): ``"linear"`` (``S``), ``"sqrt"`` (``S**0.5``) or ``"adascale"``, AdaScale's gain
``r = (tr(S)/B0 + |G|^2) / (tr(S)/B + |G|^2) = (1 + B_simple/B0) / (1 + B_simple/B)`` (Johnson et al. 2020), between
1 (no noise) and ``S`` (noise only). With ``max_batch_size = batch_size > base_batch_size`` the batch stays put and
only the learning rate adapts, as in AdaScale itself; :attr:`AdaptiveBatch.progress` counts AdaScale's
scale-invariant iterations (the sum of the gains).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from noisygrad.checks import check_in_range, check_positive, check_positive_int
from noisygrad.distributed.estimates import SmoothedNoiseScale
from noisygrad.distributed.group import initialized, world_and_rank

__all__ = ["LR_RULES", "AdaptiveBatch", "adascale_gain"]

LR_RULES = ("linear", "sqrt", "adascale")
LrRule = Literal["linear", "sqrt", "adascale"]


def adascale_gain(noise_scale: float, base_batch_size: int, batch_size: int) -> float:
    """AdaScale's learning-rate gain ``(1 + B_simple/B0) / (1 + B_simple/B)`` for batch ``B`` against ``B0``.

    ``noise_scale`` is ``B_simple``: ``inf`` (no measurable signal) gives ``S = B/B0``; a negative value counts as 0
    (no measurable noise) and gives 1.
    """
    b0 = check_positive_int("base_batch_size", base_batch_size)
    b = check_positive_int("batch_size", batch_size)
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, int | float) or math.isnan(noise_scale):
        raise ValueError(f"noise_scale must be a number (inf allowed, not NaN), got {noise_scale!r}")
    if math.isinf(noise_scale) and noise_scale > 0:
        return b / b0
    ns = max(float(noise_scale), 0.0)
    return (1.0 + ns / b0) / (1.0 + ns / b)


class AdaptiveBatch:
    """Grows the batch towards ``target * B_simple`` and gives the matching learning-rate gain.

    Feed it every step's unbiased estimates with :meth:`update` (the same values on every rank give the same
    decisions on every rank), or pass it to :func:`noisygrad.minimize` as a callback with ``estimator=`` set, which
    it then resizes.

    Args:
        batch_size: the starting global batch, a multiple of ``multiple_of``.
        max_batch_size: the largest batch allowed (``>= batch_size``).
        multiple_of: every batch is a multiple of this: default the estimator's ``shards`` if one is given, else the
            world size of an initialised process group, else 1.
        target: the batch aimed at, as a multiple of ``B_simple`` (> 0).
        ema: decay of the moving averages of ``tr(S)`` and ``|G|^2`` (``None``: running means); long averages lag
            a rising noise scale (see :class:`~noisygrad.distributed.estimates.SmoothedNoiseScale`).
        warmup: steps before the first decision.
        interval: steps between decisions.
        max_growth: the largest factor by which one decision may grow the batch (> 1).
        lr_rule: ``None`` (gain 1), ``"linear"``, ``"sqrt"`` or ``"adascale"`` (see the module docstring).
        base_batch_size: ``B0`` of the learning-rate rule (default: the starting batch).
        estimator: an estimator with a settable ``batch_size`` (:class:`~noisygrad.distributed.DataParallelMiniBatch`)
            for the callback use.
    """

    def __init__(
        self,
        batch_size: int,
        max_batch_size: int,
        *,
        multiple_of: int | None = None,
        target: float = 1.0,
        ema: float | None = 0.9,
        warmup: int = 10,
        interval: int = 1,
        max_growth: float = 2.0,
        lr_rule: LrRule | None = None,
        base_batch_size: int | None = None,
        estimator: Any = None,
    ) -> None:
        b = check_positive_int("batch_size", batch_size)
        self.max_batch_size = check_positive_int("max_batch_size", max_batch_size)
        if self.max_batch_size < b:
            raise ValueError(f"max_batch_size must be >= batch_size ({b}), got {max_batch_size}")
        if multiple_of is None:
            shards = getattr(estimator, "shards", None)
            multiple_of = shards if isinstance(shards, int) else (world_and_rank()[0] if initialized() else 1)
        self.multiple_of = check_positive_int("multiple_of", multiple_of)
        if b % self.multiple_of:
            raise ValueError(f"batch_size must be a multiple of multiple_of ({self.multiple_of}), got {batch_size}")
        self.target = check_positive("target", target)
        self.warmup = check_positive_int("warmup", warmup, allow_zero=True)
        self.interval = check_positive_int("interval", interval)
        self.max_growth = check_in_range("max_growth", max_growth, 1.0, math.inf, low_open=True)
        if lr_rule is not None and lr_rule not in LR_RULES:
            raise ValueError(f"lr_rule must be None or one of {LR_RULES}, got {lr_rule!r}")
        self.lr_rule = lr_rule
        self.base_batch_size = b if base_batch_size is None else check_positive_int("base_batch_size", base_batch_size)
        if self.base_batch_size > b:
            raise ValueError(f"base_batch_size must be <= batch_size ({b}), got {base_batch_size}")
        if estimator is not None and not hasattr(estimator, "batch_size"):
            raise TypeError(f"estimator must have a settable batch_size, got {type(estimator).__name__}")
        self.estimator = estimator
        self.smoothed = SmoothedNoiseScale(ema)
        self.batch_size = b
        self.steps = 0
        self.progress = 0.0
        self.lr_gain = self._gain()

    @property
    def noise_scale(self) -> float:
        """The smoothed ``B_simple`` (``inf`` while the smoothed ``|G|^2 <= 0``)."""
        return self.smoothed.noise_scale

    def _gain(self) -> float:
        scale = self.batch_size / self.base_batch_size
        if self.lr_rule is None:
            return 1.0
        if self.lr_rule == "linear":
            return scale
        if self.lr_rule == "sqrt":
            return math.sqrt(scale)
        if self.smoothed.count == 0:
            return 1.0
        return adascale_gain(self.noise_scale, self.base_batch_size, self.batch_size)

    def _proposal(self) -> int:
        """The batch this decision would choose: ``target * B_simple`` rounded up to a multiple, within the caps."""
        m = self.multiple_of
        cap = min(self.max_batch_size, math.floor(self.batch_size * self.max_growth))
        cap = cap // m * m
        wanted = self.target * self.noise_scale
        if not math.isfinite(wanted) or wanted >= cap:
            return max(cap, self.batch_size)
        return max(math.ceil(wanted / m) * m, self.batch_size)

    def update(self, trace_cov: float, grad_sq: float) -> tuple[int, float]:
        """Add one step's unbiased ``tr(S)`` and ``|G|^2``; returns ``(batch_size, lr_gain)`` for the next step."""
        self.smoothed.update(trace_cov, grad_sq)
        self.steps += 1
        if self.steps >= self.warmup and (self.steps - self.warmup) % self.interval == 0:
            self.batch_size = self._proposal()  # never smaller: _proposal is at least the current batch
            if self.estimator is not None and self.estimator.batch_size != self.batch_size:
                self.estimator.batch_size = self.batch_size
        self.lr_gain = self._gain()
        self.progress += self.lr_gain
        return self.batch_size, self.lr_gain

    def __call__(self, info: Any) -> None:
        """A :func:`noisygrad.minimize` callback: update from the step's estimate (``trace_cov`` and
        ``grad_norm_sq`` in its stats, or ``MiniBatch(noise_stats=True)``'s ``trace_cov`` and ``grad_variance``,
        with ``|G|^2 = |g_B|^2 - grad_variance``) and resize ``estimator``."""
        stats = info.estimate.stats
        if "trace_cov" in stats and "grad_norm_sq" in stats:
            self.update(stats["trace_cov"], stats["grad_norm_sq"])
        elif "trace_cov" in stats and "grad_variance" in stats:
            grad_sq = float(info.estimate.grad.double().pow(2).sum())
            self.update(stats["trace_cov"], grad_sq - stats["grad_variance"])
        else:
            raise ValueError(
                "AdaptiveBatch needs estimates with noise statistics: DataParallelMiniBatch with shards >= 2, or "
                "MiniBatch(..., noise_stats=True)"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "steps": self.steps,
            "progress": self.progress,
            "lr_gain": self.lr_gain,
            "smoothed": self.smoothed.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = {"batch_size", "steps", "progress", "lr_gain", "smoothed"}
        if set(state) != keys:
            raise ValueError(f"state must have keys {sorted(keys)}; got {sorted(state)}")
        b = check_positive_int("state['batch_size']", state["batch_size"])
        if b % self.multiple_of or b > self.max_batch_size:
            raise ValueError(
                f"state['batch_size'] must be a multiple of {self.multiple_of} and <= {self.max_batch_size}, got {b}"
            )
        steps = check_positive_int("state['steps']", state["steps"], allow_zero=True)
        progress = check_positive("state['progress']", state["progress"], allow_zero=True)
        lr_gain = check_positive("state['lr_gain']", state["lr_gain"])
        self.smoothed.load_state_dict(state["smoothed"])
        self.batch_size, self.steps, self.progress, self.lr_gain = b, steps, progress, lr_gain
        if self.estimator is not None:
            self.estimator.batch_size = b
