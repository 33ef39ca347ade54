"""Tail indices: how heavy the tail of gradient noise, or of SGD's iterates, is.

Heavy tails also arise from light-tailed data: constant-step SGD on least squares multiplies its error by the
random factor ``1 - lr A_B`` each step, and such a random recursion has power-law tails (Kesten 1973) with the
index ``alpha`` solving ``E|1 - lr A_B|^alpha = 1`` (:func:`kesten_tail_index`; Guerbuezbalaban, Simsekli and
Zhu 2021; Hodgkinson and Mahoney 2021). Large ``lr / B`` gives small ``alpha``: finite variance needs ``alpha > 2``.
:func:`hill_tail_index` estimates ``alpha`` from samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.stats
import torch

from noisygrad.checks import check_in_range, check_positive, check_positive_int


def hill_tail_index(samples: np.ndarray | torch.Tensor, *, fraction: float = 0.001) -> tuple[float, float]:
    """Hill's (1975) estimate of the tail index ``alpha`` of ``|samples|`` and its standard error.

    With ``X_(1) >= X_(2) >= ...`` the order statistics of ``|samples|`` and ``k = fraction * n``:
    ``alpha = 1 / mean_{i <= k} log(X_(i) / X_(k+1))``, s.e. ``alpha / sqrt(k)`` (for an exact Pareto tail).
    It assumes a power-law tail beyond ``X_(k+1)``; for light tails it is biased (it reports a finite index
    that grows with ``n``), so read it together with the sample size.

    Args:
        samples: the draws (any shape; flattened), at least ``20 / fraction`` of them.
        fraction: the share of the largest draws used, in (0, 0.5).
    """
    x = np.abs(np.asarray(samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else samples, float))
    x = x.ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite (an infinite draw has no tail index to estimate)")
    fraction = check_in_range("fraction", fraction, 0.0, 0.5, low_open=True, high_open=True)
    k = int(fraction * x.size)
    if k < 20:
        raise ValueError(f"hill_tail_index needs fraction * len(samples) >= 20, got {k} (n = {x.size})")
    top = np.partition(x, x.size - k - 1)[x.size - k - 1 :]
    threshold = top.min()
    if threshold <= 0:
        raise ValueError("the (k+1)-th largest |sample| is 0: the tail has too few distinct values")
    logs = np.log(np.sort(top)[1:] / threshold)
    alpha = 1.0 / float(logs.mean())
    return alpha, alpha / math.sqrt(k)


def kesten_tail_index(lr: float, batch_size: int = 1) -> float:
    """Tail index of constant-step SGD on 1-D least squares with standard Gaussian features.

    The error obeys ``e' = (1 - lr A_B) e + noise`` with ``A_B = mean of x_i^2`` over ``B`` i.i.d. features, so
    ``B A_B ~ chi^2_B``. The stationary law has power-law tails with the index ``alpha > 0`` solving
    ``E|1 - lr A_B|^alpha = 1`` (Kesten). The variance is finite iff ``alpha > 2``.

    Raises:
        ValueError: if ``lr`` is so large that ``E log|1 - lr A_B| >= 0`` (no stationary law).
    """
    lr = check_positive("lr", lr)
    b = check_positive_int("batch_size", batch_size)
    density = scipy.stats.chi2(b)
    kink = math.sqrt(b / lr)  # in t = sqrt(B A_B): 1 - lr t^2 / B changes sign there

    def expect(h: Any) -> float:
        """E h(log|1 - lr A_B|), integrating over t = sqrt(B A_B) (density 2 t chi2_B(t^2): finite at 0)."""

        def integrand(t: float) -> float:
            if t == 0.0:
                return 0.0 if b > 1 else float(h(0.0) * 2.0 * math.exp(-0.5 * math.log(2 * math.pi)))
            log_m = math.log(max(abs(1.0 - lr * t * t / b), 1e-300))
            return float(h(log_m, math.log(2.0 * t) + density.logpdf(t * t)))

        left, _ = scipy.integrate.quad(integrand, 0.0, kink, limit=200)
        right, _ = scipy.integrate.quad(integrand, kink, np.inf, limit=200)
        return float(left + right)

    def moment(alpha: float) -> float:
        return expect(lambda log_m, log_w=0.0: math.exp(alpha * log_m + log_w)) - 1.0

    drift = expect(lambda log_m, log_w=0.0: log_m * math.exp(log_w))
    if drift >= 0:
        raise ValueError(f"lr={lr} is too large for batch_size={batch_size}: E log|1 - lr A_B| >= 0, no stationary law")
    high = 1.0
    while moment(high) < 0:
        high *= 2.0
        if high > 1e4:
            return math.inf
    return float(scipy.optimize.brentq(moment, 1e-6, high, xtol=1e-10))
