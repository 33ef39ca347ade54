"""Gradient-noise statistics from per-example gradients, and what they predict.

Conventions (fixed here, once):

* Per-example gradients are *unscaled*: row ``i`` is the gradient of example ``i``'s own loss
  (``torch.func.vmap(grad)``, :meth:`FiniteSum.per_example_grads`). To compare with BackPACK, multiply its
  ``BatchGrad`` by ``B``, its ``Variance`` by ``B^2`` (and by ``B / (B - 1)`` for the unbiased variance).
* ``S`` is the per-example covariance normalised by ``N - 1`` (unbiased for the population).
* The gradient diversity ``rho = tr(S) / |g|^2`` is McCandlish et al.'s (2018) ``B_simple``.

A batch of ``b`` distinct examples drawn uniformly *without* replacement has covariance ``(S / b)(1 - b/N)``
(the finite-population correction), so its alignment with the full gradient is predicted by
``E[cos] ~ (1 + (rho / b)(1 - b / N))^(-1/2)``: a first-order (ratio-of-expectations) formula, good to about
1% for ``b >= 16`` when the noise is spread over many directions (effective dimension ``tr(S)^2 / tr(S^2)``
of 50 or more), poor at ``b = 1`` (it over-predicts by ~25%) and when the effective dimension is small
(a few %). :func:`monte_carlo_cosine` measures the truth where the formula is not trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ._validation import check_finite, check_in_range, check_positive_int
from .objectives import FiniteSum, Kind, require_kind

__all__ = [
    "NoiseScaleMeter",
    "NoiseStats",
    "TemperatureMeter",
    "effective_temperature",
    "gradient_noise",
    "monte_carlo_cosine",
    "noise_stats_from_grads",
    "predicted_cosine",
]

COSINE_MIN_BATCH = 16
"""Below this batch size the first-order cosine formula is off by more than ~1% (measured)."""
COSINE_MIN_EFFECTIVE_DIM = 50.0
"""Below this effective noise dimension the first-order cosine formula is off by several % (measured)."""


def _check_batch(b: int, n: int | None, replace: bool) -> int:
    b = check_positive_int("batch_size", b)
    if n is not None and not replace and b > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}) without replacement, got {b}")
    return b


def predicted_cosine(rho: float, batch_size: int, n_examples: int | None = None, *, replace: bool = False) -> float:
    """First-order prediction of ``E[cos(g_b, g)]`` for a mini-batch gradient ``g_b``.

    Args:
        rho: the gradient diversity ``tr(S) / |g|^2`` with ``S`` normalised by ``N - 1`` (>= 0).
        batch_size: ``b``, examples per batch.
        n_examples: the population size ``N``; ``None`` means an infinite population (no correction).
        replace: batches drawn with replacement (i.i.d. examples): the noise is ``tr(S)(N - 1) / (N b)``
            instead of ``tr(S)(1/b - 1/N)``.

    Returns ``(1 + rho (1/b - 1/N))^(-1/2)`` without replacement and ``(1 + rho (N - 1) / (N b))^(-1/2)``
    with it.
    """
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not math.isfinite(rho) or rho < 0:
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    if n_examples is not None:
        n_examples = check_positive_int("n_examples", n_examples)
    b = _check_batch(batch_size, n_examples, replace)
    if n_examples is None:
        noise = rho / b
    elif replace:
        noise = rho * (n_examples - 1) / (n_examples * b)
    else:
        noise = rho * (1.0 / b - 1.0 / n_examples)
    return 1.0 / math.sqrt(1.0 + noise)


@dataclass(frozen=True)
class NoiseStats:
    """Noise statistics of a set of per-example gradients.

    Attributes:
        grad: the mean gradient ``g`` (flattened).
        grad_norm_sq: ``|g|^2``.
        trace_cov: ``tr(S)``, ``S`` the (N-1)-normalised per-example covariance.
        trace_cov_sq: ``tr(S^2)``.
        n_examples: how many per-example gradients were used (the population ``N`` when all were).
    """

    grad: torch.Tensor
    grad_norm_sq: float
    trace_cov: float
    trace_cov_sq: float
    n_examples: int

    @property
    def rho(self) -> float:
        """Gradient diversity ``tr(S) / |g|^2`` (McCandlish et al.'s ``B_simple``); ``inf`` at a stationary point."""
        return self.trace_cov / self.grad_norm_sq if self.grad_norm_sq > 0 else math.inf

    @property
    def effective_dim(self) -> float:
        """Effective noise dimension ``tr(S)^2 / tr(S^2)`` (1 when the noise lies along one direction)."""
        return self.trace_cov**2 / self.trace_cov_sq if self.trace_cov_sq > 0 else 0.0

    def predicted_cosine(self, batch_size: int, *, replace: bool = False) -> float:
        """:func:`predicted_cosine` with this ``rho`` and ``N = n_examples``."""
        return predicted_cosine(self.rho, batch_size, self.n_examples, replace=replace)

    def cosine_formula_reliable(self, batch_size: int) -> bool:
        """Whether the first-order cosine formula is in its measured ~1% regime.

        It needs ``b >= 16`` and an effective noise dimension >= 50; outside, use :func:`monte_carlo_cosine`.
        """
        return batch_size >= COSINE_MIN_BATCH and self.effective_dim >= COSINE_MIN_EFFECTIVE_DIM

    def batch_grad_variance(self, batch_size: int, *, replace: bool = False) -> float:
        """``E|g_b - g|^2``: ``tr(S)(1/b - 1/N)`` without replacement, ``tr(S)(N-1)/(N b)`` with it."""
        b = _check_batch(batch_size, self.n_examples, replace)
        n = self.n_examples
        return self.trace_cov * ((n - 1) / (n * b) if replace else (1.0 / b - 1.0 / n))


def noise_stats_from_grads(per_example_grads: torch.Tensor) -> NoiseStats:
    """:class:`NoiseStats` of per-example gradients, shape ``(N, ...)`` (at least two rows).

    ``tr(S^2)`` is computed from the smaller of the two Gram matrices, so ``d`` may be large.
    """
    if not isinstance(per_example_grads, torch.Tensor) or per_example_grads.ndim < 1:
        raise TypeError("per_example_grads must be a tensor of shape (N, ...)")
    grads = per_example_grads.detach().reshape(per_example_grads.shape[0], -1)
    n = grads.shape[0]
    if n < 2:
        raise ValueError(f"per_example_grads needs at least 2 rows to estimate a covariance, got {n}")
    check_finite("per_example_grads", grads)
    mean = grads.mean(0)
    centred = grads - mean
    trace = float(centred.pow(2).sum()) / (n - 1)
    gram = centred @ centred.T if n <= grads.shape[1] else centred.T @ centred
    trace_sq = float(gram.pow(2).sum()) / (n - 1) ** 2
    return NoiseStats(mean, float(mean @ mean), trace, trace_sq, n)


def gradient_noise(
    objective: FiniteSum, params: torch.Tensor, indices: torch.Tensor | None = None, *, chunk_size: int = 4096
) -> NoiseStats:
    """Per-example noise statistics of a :class:`FiniteSum` at ``params`` (all examples by default).

    The per-example gradients come from ``torch.func.vmap(grad)`` in chunks of ``chunk_size`` examples;
    one pass costs about one full-batch gradient plus the vmap overhead.
    """
    require_kind("gradient_noise", objective, (Kind.FINITE_SUM,))
    chunk_size = check_positive_int("chunk_size", chunk_size)
    idx = torch.arange(objective.n_examples) if indices is None else torch.as_tensor(indices)
    if idx.ndim != 1 or idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"indices must be a 1-D integer tensor, got {tuple(idx.shape)} of {idx.dtype}")
    grads = torch.cat([objective.per_example_grads(params, chunk) for chunk in torch.split(idx, chunk_size)])
    return noise_stats_from_grads(grads)


def monte_carlo_cosine(
    per_example_grads: torch.Tensor,
    batch_size: int,
    *,
    draws: int,
    generator: torch.Generator,
    replace: bool = False,
    chunk: int = 1000,
) -> tuple[float, float]:
    """Monte-Carlo ``E[cos(g_b, g)]`` over ``draws`` random batches, and its standard error.

    Batches are uniform subsets of ``b`` distinct rows (``replace=False``) or ``b`` i.i.d. rows; ``g`` is the
    mean of all rows. Draws are vectorised as a selection matrix times the gradients, ``chunk`` at a time.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    grads = per_example_grads.detach().reshape(per_example_grads.shape[0], -1)
    n = grads.shape[0]
    b = _check_batch(batch_size, n, replace)
    draws = check_positive_int("draws", draws)
    if draws < 2:
        raise ValueError("draws must be >= 2 to give a standard error")
    chunk = check_positive_int("chunk", chunk)
    full = grads.mean(0)
    full_unit = full / full.norm()
    total = grads.sum(0)
    # a batch is drawn by its complement when that is smaller (b close to N); few rows are gathered,
    # many are summed through a 0/1 selection matrix
    k = b if replace or b <= n - b else n - b
    cosines = []
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        if replace:
            idx = torch.randint(n, (m, b), generator=generator)
        else:
            idx = torch.rand(m, n, generator=generator).topk(k, dim=1, largest=False).indices
        if k <= 64:
            picked = grads[idx].sum(1)
        else:
            select = torch.zeros(m, n, dtype=grads.dtype).scatter_add_(1, idx, torch.ones(m, k, dtype=grads.dtype))
            picked = select @ grads
        batch = (picked if k == b else total - picked) / b
        cosines.append((batch @ full_unit) / batch.norm(dim=1))
    cos = torch.cat(cosines)
    return float(cos.mean()), float(cos.std() / math.sqrt(draws))


class NoiseScaleMeter:
    """McCandlish et al.'s two-batch estimate of ``tr(S)``, ``|g|^2`` and the noise scale ``B_simple``.

    Each :meth:`update` takes the gradients of a small batch (``b_small``) and a big batch (``b_big``) at the
    same parameters (the small one may be nested in the big one, as in data-parallel training). From
    ``E|g_b|^2 = |g|^2 + tr(S)(1/b - 1/N)`` (without replacement; ``1/N -> 0`` with replacement),

    * ``tr(S) ~ (|g_small|^2 - |g_big|^2) / (1/b_small - 1/b_big)`` (unbiased in both schemes),
    * ``|g|^2 ~ (b_big |g_big|^2 - b_small |g_small|^2) / (b_big - b_small)``, biased by ``-tr(S)/N``
      without replacement, corrected here by adding ``tr(S)/N`` when ``n_examples`` is given.

    Numerator and denominator are averaged *separately* (plain running means, or exponential moving averages
    with ``ema``) before dividing: per-draw ratios are useless (their mean was 1.2-3.8x the truth, measured).

    Args:
        b_small, b_big: the two batch sizes, ``1 <= b_small < b_big``.
        n_examples: ``N`` when batches are drawn without replacement from ``N`` examples; ``None`` for
            i.i.d. (with replacement, or a stream).
        ema: ``None`` for running means of all updates, or a decay in (0, 1) for moving averages.
    """

    def __init__(self, b_small: int, b_big: int, *, n_examples: int | None = None, ema: float | None = None) -> None:
        self.b_small = check_positive_int("b_small", b_small)
        self.b_big = check_positive_int("b_big", b_big)
        if self.b_big <= self.b_small:
            raise ValueError(f"b_big must be larger than b_small, got b_small={b_small}, b_big={b_big}")
        self.n_examples = None if n_examples is None else check_positive_int("n_examples", n_examples)
        if self.n_examples is not None and self.b_big > self.n_examples:
            raise ValueError(f"b_big must be <= n_examples ({self.n_examples}), got {b_big}")
        self.ema = None if ema is None else check_in_range("ema", ema, 0.0, 1.0, low_open=True)
        self._trace = 0.0
        self._norm_sq = 0.0
        self.count = 0

    def update(self, small_grad: torch.Tensor, big_grad: torch.Tensor) -> None:
        """Add one pair of batch gradients taken at the same parameters."""
        check_finite("small_grad", small_grad)
        check_finite("big_grad", big_grad)
        if small_grad.shape != big_grad.shape:
            raise ValueError(f"small_grad {tuple(small_grad.shape)} and big_grad {tuple(big_grad.shape)} must match")
        small, big = float(small_grad.pow(2).sum()), float(big_grad.pow(2).sum())
        bs, bb = self.b_small, self.b_big
        trace = (small - big) / (1.0 / bs - 1.0 / bb)
        norm_sq = (bb * big - bs * small) / (bb - bs)
        if self.ema is None:
            self.count += 1
            self._trace += (trace - self._trace) / self.count
            self._norm_sq += (norm_sq - self._norm_sq) / self.count
        else:
            self.count += 1
            weight = 1.0 - self.ema
            self._trace = self.ema * self._trace + weight * trace
            self._norm_sq = self.ema * self._norm_sq + weight * norm_sq

    def _debias(self) -> float:
        if self.count == 0:
            raise RuntimeError("NoiseScaleMeter has no updates yet")
        return 1.0 if self.ema is None else 1.0 - self.ema**self.count

    @property
    def trace_cov(self) -> float:
        """Estimate of ``tr(S)``."""
        return self._trace / self._debias()

    @property
    def grad_norm_sq(self) -> float:
        """Estimate of ``|g|^2`` (finite-population bias corrected when ``n_examples`` is set)."""
        raw = self._norm_sq / self._debias()
        return raw + (self.trace_cov / self.n_examples if self.n_examples is not None else 0.0)

    @property
    def noise_scale(self) -> float:
        """``B_simple = tr(S) / |g|^2`` from the separately averaged estimates (``inf`` if ``|g|^2 <= 0``)."""
        norm_sq = self.grad_norm_sq
        return self.trace_cov / norm_sq if norm_sq > 0 else math.inf

    def state_dict(self) -> dict[str, Any]:
        return {"trace": self._trace, "norm_sq": self._norm_sq, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"trace", "norm_sq", "count"}:
            raise ValueError(f"state must have keys count, norm_sq, trace; got {sorted(state)}")
        self._trace, self._norm_sq = float(state["trace"]), float(state["norm_sq"])
        self.count = check_positive_int("state['count']", state["count"], allow_zero=True)


def effective_temperature(lr: float, batch_grad_variance: float, dim: int) -> float:
    """The effective temperature ``kT = lr * E|g_b - g|^2 / (2 d)`` of a constant-step SGD run.

    With ``E|g_b - g|^2 = tr(C)/B`` this is ``lr tr(C) / (2 B d)``: for isotropic noise ``C = sigma^2 I`` it is
    exactly the temperature of the stationary law ``Sigma = kT A^(-1)`` near a minimum of Hessian ``A``
    (Mandt et al. 2017; continuous-time limit, i.i.d. batches). For anisotropic noise the stationary law is not
    a Boltzmann law (see :mod:`noisygrad.theory`); ``kT`` is then its per-coordinate average scale. Pass the
    FPC-aware variance (``MiniBatch(noise_stats=True)`` reports it as ``grad_variance``).
    """
    lr = float(check_in_range("lr", lr, 0.0, math.inf, low_open=True))
    var = float(check_in_range("batch_grad_variance", batch_grad_variance, 0.0, math.inf))
    return lr * var / (2.0 * check_positive_int("dim", dim))


class TemperatureMeter:
    """A :func:`~noisygrad.minimize` callback recording the effective temperature of each step.

    It reads ``grad_variance`` from each estimate's stats (``MiniBatch(..., noise_stats=True)``) and the
    step's learning rate, and keeps ``kT_t = lr_t * grad_variance_t / (2 d)`` (:func:`effective_temperature`).
    """

    def __init__(self) -> None:
        self.temperatures: list[float] = []

    def __call__(self, info: Any) -> None:
        stats = info.estimate.stats
        if "grad_variance" not in stats:
            raise ValueError(
                "TemperatureMeter needs estimates that report grad_variance; use MiniBatch(..., noise_stats=True)"
            )
        self.temperatures.append(effective_temperature(info.lr, stats["grad_variance"], info.x.numel()))

    @property
    def mean(self) -> float:
        """The mean temperature over the recorded steps."""
        if not self.temperatures:
            raise RuntimeError("TemperatureMeter has recorded no steps")
        return sum(self.temperatures) / len(self.temperatures)
