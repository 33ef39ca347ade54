"""Gradient-noise statistics from per-example gradients, and what they predict.

Conventions (fixed here, once):

* Per-example gradients are *unscaled*: row ``i`` is the gradient of example ``i``'s own loss
  (``torch.func.vmap(grad)``, :meth:`FiniteSum.per_example_grads`). To compare with BackPACK, multiply its
  ``BatchGrad`` by ``B``, its ``Variance`` by ``B^2`` (and by ``B / (B - 1)`` for the unbiased variance).
* ``S`` is the per-example covariance normalised by ``N - 1`` (unbiased for the population).
* The gradient diversity ``rho = tr(S) / |g|^2`` is McCandlish et al.'s (2018) ``B_simple``.

A batch of ``b`` distinct examples drawn uniformly *without* replacement has covariance ``(S / b)(1 - b/N)``
(the finite-population correction), so its alignment with the full gradient is predicted by
``E[cos] ~ (1 + (rho / b)(1 - b / N))^(-1/2)``: the first-order (ratio-of-expectations) law, the documented
default. It replaces ``|g_b|`` by its root-mean-square, so it errs by about the relative variance ``v`` of
``|g_b|^2`` (:meth:`NoiseStats.norm_sq_relative_variance`), about ``kappa/b + 2/d_eff`` when the noise
dominates, with ``kappa`` the relative variance of the per-example ``|g_i - g|^2`` (2-3 for least squares) and
``d_eff = tr(S)^2 / tr(S^2)`` the effective noise dimension. Measured on 100-dimensional least squares
(``N = 2000``, ``d_eff ~ 85``): +0.6% at ``b = 16`` far from the optimum but +2.0% near it (+0.9% at
``b = 32``), within 0.5% for ``b >= 64``; +25% at ``b = 1``; and 3-7% low for ``8 <= b <= 64`` when
``d_eff ~ 2``. The second-order (delta-method) prediction, ``NoiseStats.predicted_cosine(b, order=2)``, adds
the next terms of the expansion with the exact moments of the batch noise (third and fourth moments of the
per-example gradients, finite-population factors included): within 0.15% for ``b >= 16`` on the same problem,
near and far, and within ~1% wherever ``v <= 0.3``. :meth:`NoiseStats.cosine_formula_reliable` says which
order can be trusted at a given ``b``; where neither can, :func:`monte_carlo_cosine` measures the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from noisygrad.checks import check_finite, check_in_range, check_positive, check_positive_int
from noisygrad.objectives import FiniteSum, Kind, require_kind

__all__ = [
    "BatchNoiseMoments",
    "NoiseScaleMeter",
    "NoiseStats",
    "TemperatureMeter",
    "effective_temperature",
    "gradient_noise",
    "monte_carlo_cosine",
    "noise_stats_from_grads",
    "predicted_cosine",
]

COSINE_MAX_RELATIVE_VARIANCE = 0.3
"""Where ``Var|g_b|^2 / (E|g_b|^2)^2`` exceeds this, the second-order cosine may be off by more than ~1% (measured
on five least-squares problems with ``d_eff`` from 2 to 87: within 0.7% below it; +1.4% at 0.72, +5.7% at 1.2)."""
COSINE_FIRST_ORDER_AGREEMENT = 0.005
"""The first-order cosine counts as reliable where it agrees with the second-order one to this relative error."""


def _check_batch(b: int, n: int | None, replace: bool) -> int:
    b = check_positive_int("batch_size", b)
    if n is not None and not replace and b > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}) without replacement, got {b}")
    return b


def _check_order(order: int) -> int:
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 (the first-order law) or 2 (the delta-method correction), got {order!r}")
    return order


def predicted_cosine(rho: float, batch_size: int, n_examples: int | None = None, *, replace: bool = False) -> float:
    """First-order prediction of ``E[cos(g_b, g)]`` for a mini-batch gradient ``g_b``.

    Args:
        rho: the gradient diversity ``tr(S) / |g|^2`` with ``S`` normalised by ``N - 1`` (>= 0).
        batch_size: ``b``, examples per batch.
        n_examples: the population size ``N``; ``None`` means an infinite population (no correction).
        replace: batches drawn with replacement (i.i.d. examples): the noise is ``tr(S)(N - 1) / (N b)``
            instead of ``tr(S)(1/b - 1/N)``.

    Returns ``(1 + rho (1/b - 1/N))^(-1/2)`` without replacement and ``(1 + rho (N - 1) / (N b))^(-1/2)``
    with it. Its accuracy regime is described in the module docstring; the second-order prediction needs the
    per-example moments of :class:`NoiseStats` (``NoiseStats.predicted_cosine(b, order=2)``).
    """
    rho = check_positive("rho", rho, allow_zero=True)
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


class BatchNoiseMoments(NamedTuple):
    """Exact moments of the batch noise ``xi = g_b - g`` (see :meth:`NoiseStats.batch_noise_moments`)."""

    mean_sq: float
    """``E|xi|^2``."""
    along_grad: float
    """``E[(g . xi)^2]`` (``g^T Cov(xi) g``)."""
    third: float
    """``E[(g . xi) |xi|^2]``."""
    norm_sq_var: float
    """``Var |xi|^2``."""


def _inclusion(b: int, n: int, k: int) -> float:
    """``pi_k``: the probability that ``k`` given examples all lie in a uniform ``b``-subset of ``n``."""
    if b < k:
        return 0.0
    p = 1.0
    for j in range(k):
        p *= (b - j) / (n - j)
    return p


@dataclass(frozen=True)
class NoiseStats:
    """Noise statistics of a set of per-example gradients ``g_i`` with mean ``g`` (``z_i = g_i - g``).

    Attributes:
        grad: the mean gradient ``g`` (flattened).
        grad_norm_sq: ``|g|^2``.
        trace_cov: ``tr(S)``, ``S`` the (N-1)-normalised per-example covariance.
        trace_cov_sq: ``tr(S^2)``.
        n_examples: how many per-example gradients were used (the population ``N`` when all were).
        grad_cov_grad: ``g^T S g``.
        third_moment: the mean over examples of ``(g . z_i) |z_i|^2``.
        fourth_moment: the mean over examples of ``|z_i|^4``.

    The last three (``O(N d)`` to compute) feed the second-order cosine prediction.
    """

    grad: torch.Tensor
    grad_norm_sq: float
    trace_cov: float
    trace_cov_sq: float
    n_examples: int
    grad_cov_grad: float
    third_moment: float
    fourth_moment: float

    @property
    def rho(self) -> float:
        """Gradient diversity ``tr(S) / |g|^2`` (McCandlish et al.'s ``B_simple``); ``inf`` at a stationary point."""
        return self.trace_cov / self.grad_norm_sq if self.grad_norm_sq > 0 else math.inf

    @property
    def effective_dim(self) -> float:
        """Effective noise dimension ``tr(S)^2 / tr(S^2)`` (1 when the noise lies along one direction)."""
        return self.trace_cov**2 / self.trace_cov_sq if self.trace_cov_sq > 0 else 0.0

    def batch_noise_moments(self, batch_size: int, *, replace: bool = False) -> BatchNoiseMoments:
        """Exact moments of ``xi = g_b - g`` for a uniform batch of ``b`` distinct examples (or ``b`` i.i.d. ones).

        With the sums ``A = sum |z_i|^2``, ``P = sum (g.z_i)^2``, ``R = sum (g.z_i)|z_i|^2``,
        ``Q = sum |z_i|^4`` and ``T = sum_ij (z_i.z_j)^2 = (N-1)^2 tr(S^2)``, and ``pi_k`` the probability that
        ``k`` given examples are all in the batch (sampling without replacement; ``sum z_i = 0`` removes the
        other terms):

        * ``E|xi|^2 = c2 A / b^2`` and ``E(g.xi)^2 = c2 P / b^2`` with ``c2 = pi_1 - pi_2 = b(N-b)/(N(N-1))``,
        * ``E[(g.xi)|xi|^2] = c3 R / b^3`` with ``c3 = pi_1 - 3 pi_2 + 2 pi_3 = c2 (N-2b)/(N-2)``,
        * ``E|xi|^4 = (c4 Q + c22 (A^2 + 2T)) / b^4`` with ``c4 = pi_1 - 7 pi_2 + 12 pi_3 - 6 pi_4`` and
          ``c22 = pi_2 - 2 pi_3 + pi_4``.

        With replacement ``c2 = c3 = c4 = b/N`` and ``c22 = b(b-1)/N^2``: the textbook moments of a mean of
        ``b`` i.i.d. draws, ``Var|xi|^2 = (Var|z|^2 + 2(b-1) tr(Sigma^2)) / b^3`` with ``Sigma`` the 1/N
        covariance. Under sampling without replacement the third and fourth moments carry their own
        finite-population factors (``c3 ~ (b/N)(1 - 3b/N)`` for ``b << N``): taking the i.i.d. forms for them
        while keeping the exact variance moved the second-order cosine by +0.15-0.2% for ``b`` from 16 to 256
        of 2000 (and +0.05% at 1900) on the least-squares problem of the tests: small against a 1% tolerance,
        not against a 0.1% Monte-Carlo error.
        """
        n = self.n_examples
        b = _check_batch(batch_size, n, replace)
        a, p = (n - 1) * self.trace_cov, (n - 1) * self.grad_cov_grad
        r, q, t = n * self.third_moment, n * self.fourth_moment, (n - 1) ** 2 * self.trace_cov_sq
        if replace:
            c2 = c3 = c4 = b / n
            c22 = b * (b - 1) / n**2
        else:
            pi1, pi2, pi3, pi4 = (_inclusion(b, n, k) for k in (1, 2, 3, 4))
            c2, c3 = pi1 - pi2, pi1 - 3 * pi2 + 2 * pi3
            c4, c22 = pi1 - 7 * pi2 + 12 * pi3 - 6 * pi4, pi2 - 2 * pi3 + pi4
        mean_sq = c2 * a / b**2
        fourth = (c4 * q + c22 * (a * a + 2 * t)) / b**4
        return BatchNoiseMoments(mean_sq, c2 * p / b**2, c3 * r / b**3, max(fourth - mean_sq**2, 0.0))

    def norm_sq_relative_variance(self, batch_size: int, *, replace: bool = False) -> float:
        """``v = Var|g_b|^2 / (E|g_b|^2)^2``: the expansion parameter of both cosine predictions.

        ``|g_b|^2 = |g|^2 + 2 g.xi + |xi|^2``, so ``Var|g_b|^2 = 4 E(g.xi)^2 + 4 E[(g.xi)|xi|^2] + Var|xi|^2``.
        The first-order law errs by ``O(v)``; the second-order one by ``O(v^2)``, and is trusted (~1%) for
        ``v <= 0.3``. For a mean of ``b`` examples ``v`` is about ``Var|z|^2 / (b E|z|^2 ^2) + 2 / d_eff`` when
        the noise dominates ``|g|^2``: large in the small-batch and in the low-noise-dimension regimes.
        """
        m = self.batch_noise_moments(batch_size, replace=replace)
        mean = self.grad_norm_sq + m.mean_sq
        if mean <= 0:
            return 0.0
        return (4 * m.along_grad + 4 * m.third + m.norm_sq_var) / mean**2

    def predicted_cosine(self, batch_size: int, *, replace: bool = False, order: int = 1) -> float:
        """Predicted ``E[cos(g_b, g)]``: the first-order law (default) or its second-order correction.

        ``order=1`` is :func:`predicted_cosine` with this ``rho`` and ``N = n_examples``: ``(|g|^2 / m)^(1/2)``
        with ``m = E|g_b|^2 = |g|^2 + E|xi|^2``. ``order=2`` expands ``cos = X / (|g| Y^(1/2))``,
        ``X = g.g_b``, ``Y = |g_b|^2``, to second order about the means (delta method)::

            E[cos] ~ (|g|^2 / m)^(1/2) [1 - Cov(X, Y) / (2 |g|^2 m) + 3 Var(Y) / (8 m^2)]

        with ``Cov(X, Y) = 2 E(g.xi)^2 + E[(g.xi)|xi|^2]`` and ``Var(Y)`` as in
        :meth:`norm_sq_relative_variance`, all from :meth:`batch_noise_moments` (exact for the sampling
        scheme). The per-example third and fourth moments matter: per-example gradients of least squares
        (``x_i r_i``) are far from Gaussian, and with Gaussian moments (``Var|xi|^2 = 2 tr(Cov(xi)^2)``,
        no third moment) the correction was still +1.5% off near the optimum at ``b = 16`` (measured). Use
        :meth:`cosine_formula_reliable` to know whether either order is in its regime.
        """
        order = _check_order(order)
        b = _check_batch(batch_size, self.n_examples, replace)
        if not self.grad_norm_sq > 0:
            raise ValueError("the mean gradient is zero: its cosine with a batch gradient is undefined")
        if order == 1:
            return predicted_cosine(self.rho, b, self.n_examples, replace=replace)
        m = self.batch_noise_moments(b, replace=replace)
        g2 = self.grad_norm_sq
        mean = g2 + m.mean_sq
        cov_xy = 2 * m.along_grad + m.third
        var_y = 4 * m.along_grad + 4 * m.third + m.norm_sq_var
        return math.sqrt(g2 / mean) * (1 - cov_xy / (2 * g2 * mean) + 3 * var_y / (8 * mean**2))

    def cosine_formula_reliable(self, batch_size: int, *, order: int = 1, replace: bool = False) -> bool:
        """Whether the cosine prediction of this ``order`` is in its measured ~1% regime.

        Second order: the relative variance of ``|g_b|^2`` is at most :data:`COSINE_MAX_RELATIVE_VARIANCE`
        (0.3). First order: that, and it agrees with the second-order prediction to
        :data:`COSINE_FIRST_ORDER_AGREEMENT` (0.5%). Small batches and a low effective noise dimension fail
        these; :func:`monte_carlo_cosine` measures the truth there.
        """
        order = _check_order(order)
        if self.norm_sq_relative_variance(batch_size, replace=replace) > COSINE_MAX_RELATIVE_VARIANCE:
            return False
        if order == 2:
            return True
        first = self.predicted_cosine(batch_size, replace=replace)
        second = self.predicted_cosine(batch_size, replace=replace, order=2)
        return abs(first / second - 1) <= COSINE_FIRST_ORDER_AGREEMENT

    def batch_grad_variance(self, batch_size: int, *, replace: bool = False) -> float:
        """``E|g_b - g|^2``: ``tr(S)(1/b - 1/N)`` without replacement, ``tr(S)(N-1)/(N b)`` with it."""
        b = _check_batch(batch_size, self.n_examples, replace)
        n = self.n_examples
        return self.trace_cov * ((n - 1) / (n * b) if replace else (1.0 / b - 1.0 / n))


def noise_stats_from_grads(per_example_grads: torch.Tensor) -> NoiseStats:
    """:class:`NoiseStats` of per-example gradients, shape ``(N, ...)`` (at least two rows).

    ``tr(S^2)`` is computed from the smaller of the two Gram matrices, so ``d`` may be large; the other
    moments cost ``O(N d)``.
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
    norms_sq = centred.pow(2).sum(1)
    along = centred @ mean
    trace = float(norms_sq.sum()) / (n - 1)
    gram = centred @ centred.T if n <= grads.shape[1] else centred.T @ centred
    trace_sq = float(gram.pow(2).sum()) / (n - 1) ** 2
    return NoiseStats(
        grad=mean,
        grad_norm_sq=float(mean @ mean),
        trace_cov=trace,
        trace_cov_sq=trace_sq,
        n_examples=n,
        grad_cov_grad=float(along.pow(2).sum()) / (n - 1),
        third_moment=float((along * norms_sq).mean()),
        fourth_moment=float(norms_sq.pow(2).mean()),
    )


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


def _uniform_subsets(n: int, k: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """``m`` independent uniform ``k``-subsets of ``range(n)``, one per row (in random order)."""
    if k * (k - 1) > 4 * n:  # random keys: the k smallest of n uniforms
        return torch.rand(m, n, generator=generator).topk(k, dim=1, largest=False).indices
    # k i.i.d. indices are all distinct with probability about exp(-k^2 / 2n) >= exp(-2) here; redrawing the
    # rows with a repeat leaves uniform distinct tuples, i.e. uniform subsets, at O(k) per row instead of O(n)
    idx = torch.randint(n, (m, k), generator=generator)
    redraw = torch.arange(m)
    while redraw.numel() > 0:
        ordered = idx[redraw].sort(1).values
        redraw = redraw[(ordered[:, 1:] == ordered[:, :-1]).any(1)]
        idx[redraw] = torch.randint(n, (redraw.numel(), k), generator=generator)
    return idx


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
    mean of all rows. Draws are vectorised, ``chunk`` at a time: a batch is summed by ``embedding_bag`` when
    it is small, through a 0/1 selection matrix otherwise, and drawn by its complement when that is smaller.
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
    k = b if replace or b <= n - b else n - b
    cosines = []
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        idx = torch.randint(n, (m, b), generator=generator) if replace else _uniform_subsets(n, k, m, generator)
        idx = idx.to(grads.device)  # drawn on the CPU generator, used where the gradients are
        if k == 0:  # b = N: the batch is everything
            picked = grads.new_zeros(m, grads.shape[1])
        elif k <= 256:
            picked = torch.nn.functional.embedding_bag(idx, grads, mode="sum")
        else:
            select = grads.new_zeros(m, n).scatter_add_(1, idx, grads.new_ones(m, k))
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
    a Boltzmann law (see :mod:`noisygrad.noise.theory`); ``kT`` is then its per-coordinate average scale. Pass the
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
