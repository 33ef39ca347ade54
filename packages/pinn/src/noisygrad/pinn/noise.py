"""Noise statistics of the collocation gradient: gradient diversity, predicted cosine, temperature.

The PDE part of a PINN loss is a mean over collocation points, so a mini-batch gradient ``g_b`` is an
unbiased estimate of the full-set gradient ``g`` with covariance ``(S / b)(1 - b / N)``, where ``S`` is the
(N-1)-normalised covariance of the per-point gradients and ``N`` the pool size. With the gradient
diversity ``rho = tr(S) / |g|^2``:

* ``E[g_b . g] / sqrt(|g|^2 E|g_b|^2) = (1 + rho/b (1 - b/N))^(-1/2)``, the *predicted cosine* between a
  batch gradient and the full one;
* ``kT = lr E|g_b - g|^2 / (2 d) = lr tr(S)(1/b - 1/N) / (2 d)`` for ``d`` parameters, the *effective
  temperature* of constant-step SGD (Mandt et al. 2017; the core's convention).

``tr(S)`` needs per-point gradients, which DeepXDE's residuals (nested autograd through ``dde.grad``) do not
give under ``torch.func.vmap``. :func:`collocation_noise` instead splits one random batch into ``groups``
disjoint groups of ``m`` points and back-propagates each group's loss: ``m`` times the sample variance of
the group gradients is unbiased for ``tr(S)`` (the groups of a random partition are a without-replacement
sample, so the finite-population factors cancel). Boundary terms are in every group's loss and do not
vary, so they add nothing to the variance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_positive, check_positive_int
from noisygrad.noise.statistics import effective_temperature
from noisygrad.noise.statistics import predicted_cosine as core_predicted_cosine

from .batches import CollocationBatches
from .optimizers import trainable


@dataclass(frozen=True)
class CollocationNoise:
    """Noise statistics of the collocation gradient at the current parameters.

    Attributes:
        pool: number of PDE collocation points ``N`` batches are drawn from.
        batch_size: the batch size ``b`` the predictions refer to.
        points: collocation points the estimate used (``groups`` x group size).
        trace_cov: estimate of ``tr(S)``, the per-point gradient covariance (unbiased).
        grad_norm_sq: estimate of ``|g|^2`` for the full-set gradient (unbiased; can come out negative when
            the noise swamps the signal).
        rho: gradient diversity ``tr(S) / |g|^2`` (``inf`` when ``grad_norm_sq <= 0``).
        predicted_cosine: ``(1 + rho/b (1 - b/N))^(-1/2)``.
        batch_variance: ``tr(S)/b (1 - b/N)``, the expected squared error of a batch gradient.
        dim: number of trained parameters ``d``.
        temperature: ``lr * batch_variance / (2 d)`` (``nan`` when no learning rate was given).
    """

    pool: int
    batch_size: int
    points: int
    trace_cov: float
    grad_norm_sq: float
    rho: float
    predicted_cosine: float
    batch_variance: float
    dim: int
    temperature: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def predicted_cosine(rho: float, batch_size: int, pool: int) -> float:
    """``(1 + rho/b (1 - b/N))^(-1/2)`` (the core's :func:`noisygrad.predicted_cosine`), 0 when ``rho`` is inf.

    ``rho`` is a noise-to-signal ratio: a real number >= 0 or ``inf`` (no signal); NaN is refused.
    """
    if isinstance(rho, bool) or not isinstance(rho, Real):
        raise TypeError(f"rho must be a real number >= 0 (inf allowed), got {type(rho).__name__}")
    if math.isnan(rho):
        raise ValueError("rho must be a real number >= 0 (inf allowed), got nan")
    if math.isinf(rho) and rho > 0:
        return 0.0
    return core_predicted_cosine(rho, batch_size, pool)


def _flat_grad(model: Any, params: list[torch.Tensor], rows: tuple[Any, Any, Any]) -> torch.Tensor:
    losses = model.outputs_losses_train(*rows)[1]
    grads = torch.autograd.grad(torch.sum(losses), params, allow_unused=True)
    flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
    return torch.cat(flat)


def _params(model: Any) -> list[torch.Tensor]:
    net_params, external = trainable(model)
    return [p for p in net_params + external if p.requires_grad]


def group_gradients(model: Any, batches: CollocationBatches, groups: int, group_size: int) -> torch.Tensor:
    """Gradients of the training loss on ``groups`` disjoint random groups of ``group_size`` PDE points.

    Each row is the gradient of the loss (boundary terms plus the PDE mean over the group's points). The
    model must be compiled (``model.outputs_losses_train`` set).
    """
    params = _params(model)
    index = batches.indices(groups * group_size)
    n_bc = int(sum(batches.data.num_bcs))
    boundary, points = index[:n_bc], index[n_bc:]
    rows = []
    for j in range(groups):
        sub = np.concatenate([boundary, points[j * group_size : (j + 1) * group_size]])
        batch = batches.rows(sub)
        with batches.installed(batch):
            rows.append(_flat_grad(model, params, batch).detach())
    return torch.stack(rows)


def collocation_noise(
    model: Any,
    *,
    batch_size: int,
    generator: torch.Generator,
    groups: int = 8,
    points: int | None = None,
    lr: float | None = None,
) -> CollocationNoise:
    """Estimate the noise statistics of the collocation gradient of a compiled DeepXDE model.

    Args:
        model: a compiled ``dde.Model`` on a ``dde.data.PDE``/``TimePDE``.
        batch_size: the training batch size ``b`` the predicted cosine and temperature refer to.
        generator: the ``torch.Generator`` the estimate's points are drawn with.
        groups: number of disjoint groups (>= 2); more groups lower the variance of ``tr(S)``.
        points: collocation points used in all (default ``max(batch_size, 8 groups)`` capped at the pool);
            split evenly into the groups.
        lr: learning rate for the temperature.
    """
    groups = check_positive_int("groups", groups)
    if groups < 2:
        raise ValueError(f"groups must be >= 2 to estimate a variance, got {groups}")
    batches = CollocationBatches(model.data, batch_size, generator=generator)
    n, b = batches.pool, batches.batch_size
    total = min(max(b, 8 * groups), n) if points is None else check_positive_int("points", points)
    m = total // groups
    if m < 1 or groups * m > n:
        raise ValueError(f"points must allow {groups} groups of >= 1 point within N={n}, got points={total}")
    g = group_gradients(model, batches, groups, m).double()
    mean = g.mean(0)
    trace_s = float(m * g.var(0, unbiased=True).sum())
    used = groups * m
    grad_norm_sq = float(mean.pow(2).sum()) - trace_s / used * (1.0 - used / n)
    rho = trace_s / grad_norm_sq if grad_norm_sq > 0 else math.inf
    batch_variance = trace_s / b * (1.0 - b / n)
    dim = sum(p.numel() for p in _params(model))
    temperature = effective_temperature(check_positive("lr", lr), batch_variance, dim) if lr is not None else math.nan
    cosine = predicted_cosine(rho, b, n)
    return CollocationNoise(n, b, used, trace_s, grad_norm_sq, rho, cosine, batch_variance, dim, temperature)
