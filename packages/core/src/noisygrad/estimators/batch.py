"""Batch estimators of a finite sum or an energy: the exact gradient (:class:`FullBatch`) and mini-batches
(:class:`MiniBatch`, with or without replacement, with their own noise statistics on request)."""

from __future__ import annotations

import torch

from noisygrad.checks import check_finite, check_positive_int, check_torch_generator
from noisygrad.estimators.base import Cost, Estimate, Stateless
from noisygrad.noise.per_example import NOISE_METHODS, NoiseMethod, PerExampleNoise
from noisygrad.objectives import (
    BatchingNotAllowedError,
    Energy,
    FiniteSum,
    Kind,
    require_kind,
)


class FullBatch(Stateless):
    """The exact gradient: every example of a :class:`FiniteSum`, or an :class:`Energy`'s autograd gradient."""

    def __init__(self, objective: FiniteSum | Energy) -> None:
        require_kind("FullBatch", objective, (Kind.FINITE_SUM, Kind.ENERGY))
        self.objective = objective

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        value, grad = self.objective.value_and_grad(params)
        n = self.objective.n_examples if isinstance(self.objective, FiniteSum) else 0
        return Estimate(check_finite("gradient", grad), value, Cost(examples=n), {"grad_variance": 0.0})


class MiniBatch(Stateless):
    """Mean gradient over ``batch_size`` uniformly drawn examples of a :class:`FiniteSum`.

    Args:
        objective: a :class:`FiniteSum` (an :class:`Energy` raises :class:`BatchingNotAllowedError`).
        batch_size: examples per estimate, ``1 <= batch_size <= N``.
        replace: draw with replacement (i.i.d. examples). Without replacement (the default) the examples
            of one batch are distinct and batches are drawn independently, so the estimate's covariance is
            ``(S / b) (1 - b / N)`` with ``S`` the (N-1)-normalised per-example covariance.
        noise_stats: also report the batch's noise: ``trace_cov``, the within-batch ``tr(S)`` (see
            :class:`~noisygrad.noise.per_example.BatchNoise`), and ``grad_variance``, an unbiased estimate of the
            trace of the estimate's covariance. How (:mod:`noisygrad.noise.per_example` gives costs and assumptions):

            * ``True`` or ``"vmap"``: exact, from all per-example gradients (``torch.func.vmap``); any objective.
            * ``"norms"``: exact per-example gradient norms from one forward and backward pass; objectives
              built with :meth:`~noisygrad.FiniteSum.from_module` whose parameters all sit in ``nn.Linear`` layers.
            * ``"probe"``: unbiased random-sign estimate from two vector-Jacobian products of one forward pass;
              any objective. Its signs come from the estimate's generator, after the batch indices.
        probes: with ``noise_stats="probe"``, how many independent sign vectors to average (default 1).
    """

    def __init__(
        self,
        objective: FiniteSum,
        batch_size: int,
        *,
        replace: bool = False,
        noise_stats: bool | NoiseMethod = False,
        probes: int | None = None,
    ) -> None:
        if getattr(objective, "kind", None) is Kind.ENERGY:
            raise BatchingNotAllowedError(
                "objective is a holistic Energy: its mini-batches would be biased, so it cannot be "
                "mini-batched; use FullBatch, or write it as a FiniteSum if it truly is a mean over examples"
            )
        require_kind("MiniBatch", objective, (Kind.FINITE_SUM,))
        self.objective = objective
        n = objective.n_examples
        self.batch_size = check_positive_int("batch_size", batch_size)
        if self.batch_size > n and not replace:
            raise ValueError(
                f"batch_size must be <= the number of examples ({n}) when drawing without replacement, got {batch_size}"
            )
        method: NoiseMethod | None
        if isinstance(noise_stats, bool):
            method = "vmap" if noise_stats else None
        elif isinstance(noise_stats, str) and noise_stats in NOISE_METHODS:
            method = noise_stats
        else:
            allowed = ", ".join(repr(m) for m in NOISE_METHODS)
            raise ValueError(f"noise_stats must be False, True (= 'vmap') or one of {allowed}; got {noise_stats!r}")
        if method is not None and self.batch_size < 2:
            raise ValueError("noise_stats needs batch_size >= 2 to estimate a variance")
        if probes is not None and method != "probe":
            raise ValueError(f"probes applies to noise_stats='probe' only, got noise_stats={noise_stats!r}")
        self.probes = 1 if probes is None else check_positive_int("probes", probes)
        self.replace = bool(replace)
        self.noise_stats = method is not None
        self.noise_method = method
        self._noise = None if method is None else PerExampleNoise(objective, method, probes=self.probes)

    def sample_indices(self, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` example indices drawn from ``generator`` (required: ``None`` is refused, see
        :func:`~noisygrad.checks.check_torch_generator`)."""
        check_torch_generator("generator", generator)
        n, b = self.objective.n_examples, self.batch_size
        if self.replace:
            return torch.randint(n, (b,), generator=generator)
        return torch.randperm(n, generator=generator)[:b]

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        idx = self.sample_indices(generator)
        stats: dict[str, float] = {}
        if self._noise is not None:
            noise = self._noise(params, idx, generator)
            grad, value, trace_s = noise.grad, noise.value, noise.trace_cov
            b, n = self.batch_size, self.objective.n_examples
            # Var of a without-replacement mean: (S/b)(1 - b/N); with replacement S_pop/b, S_pop = S(N-1)/N
            # (the within-batch sample variance is unbiased for S without replacement and for S_pop with it).
            factor = 1.0 if self.replace else (1.0 - b / n)
            stats = {"trace_cov": trace_s, "grad_variance": trace_s / b * factor}
        else:
            value, grad = self.objective.value_and_grad(params, idx)
        return Estimate(check_finite("gradient", grad), value, Cost(examples=self.batch_size), stats)
