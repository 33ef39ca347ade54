"""Tail indices: how heavy the tail of gradient noise, or of SGD's iterates, is.

Heavy tails also arise from light-tailed data: constant-step SGD on least squares multiplies its error by the
random factor ``1 - lr A_B`` each step, and such a random recursion has power-law tails (Kesten 1973) with the
index ``alpha`` solving ``E|1 - lr A_B|^alpha = 1`` (:func:`kesten_tail_index`; Guerbuezbalaban, Simsekli and
Zhu 2021; Hodgkinson and Mahoney 2021). Large ``lr / B`` gives small ``alpha``: finite variance needs ``alpha > 2``.
:func:`hill_tail_index` estimates ``alpha`` from samples.
"""

from __future__ import annotations

import itertools
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
    ``u = B A_B ~ chi^2_B``. The stationary law has power-law tails with the index ``alpha > 0`` solving
    ``E|1 - lr A_B|^alpha = 1`` (Kesten). The variance is finite iff ``alpha > 2``.

    The equation is solved in logs, ``log E|1 - lr A_B|^alpha = 0``: for small ``lr`` the index is of order
    ``1 / lr`` (``alpha lr`` tends to about 1.7956 for ``B = 1``), and the moment's two parts (``lr A_B`` below and
    above 1) then differ by hundreds of orders of magnitude. Each is integrated relative to its own peak (the root of
    the log-integrand's slope, :func:`_root`) by :func:`_log_integral`, and the two are added as logs. Below the
    kink the variable is ``t = sqrt(u)`` (finite density at 0); above it, ``r = u - B / lr`` (the distance from the
    kink, so that the narrow peak just past a far kink is resolved).

    Raises:
        ValueError: if ``lr`` is so large that ``E log|1 - lr A_B| >= 0`` (no stationary law).
    """
    lr = check_positive("lr", lr)
    b = check_positive_int("batch_size", batch_size)
    kink_u = b / lr  # 1 - lr u / B changes sign at u = B / lr
    kink = math.sqrt(kink_u)
    log_gamma = math.lgamma(b / 2.0)

    def log_below(t: float) -> float:
        """log of the density of t = sqrt(u): t^(B-1) exp(-t^2/2) / (2^(B/2-1) Gamma(B/2))."""
        power = (b - 1) * math.log(t) if b > 1 else 0.0  # finite at t = 0 when B = 1
        return power - 0.5 * t * t + (1.0 - b / 2.0) * math.log(2.0) - log_gamma

    def log_above(r: float) -> float:
        """log of the chi^2_B density at u = B / lr + r."""
        u = kink_u + r
        return (b / 2.0 - 1.0) * math.log(u) - 0.5 * u - (b / 2.0) * math.log(2.0) - log_gamma

    # the density of t is log-concave with curvature <= -1: past its mode + 12 lies a share below exp(-72) of it
    top = math.sqrt(b - 1.0) + 12.0
    drift, _ = scipy.integrate.quad(
        lambda t: math.log(abs(1.0 - lr * t * t / b)) * math.exp(log_below(t)),
        0.0,
        top,
        points=[kink] if kink < top else None,
        limit=200,
    )
    if drift >= 0:
        raise ValueError(f"lr={lr} is too large for batch_size={batch_size}: E log|1 - lr A_B| >= 0, no stationary law")

    def log_moment(alpha: float) -> float:
        """log E|1 - lr A_B|^alpha, from the parts with lr A_B below and above 1."""

        def f_below(t: float) -> float:
            return alpha * math.log1p(-lr * t * t / b) + log_below(t)

        # peaks: t^2 = u solves (B - 1) - u - 2 alpha lr u / (B - lr u) = 0 (decreasing in u, so below B - 1 and
        # the kink; u = 0 when B = 1); r solves alpha - r / 2 + (B/2 - 1) r / (B / lr + r) = 0 (r times the
        # log-density's slope, decreasing)
        u_peak = _root(
            lambda u: (b - 1) - u - 2.0 * alpha * lr * u / (b - lr * u), 0.0, min(b - 1.0, kink_u * (1.0 - 1e-12))
        )
        r_peak = _root(lambda r: alpha - 0.5 * r + (b / 2.0 - 1.0) * r / (kink_u + r), 0.0, 2.0 * alpha + b + 2.0)
        t_peak, u_top = math.sqrt(u_peak), kink_u + r_peak
        below_top = f_below(t_peak)
        below = below_top + _log_integral(lambda t: f_below(t) - below_top, 0.0, t_peak, kink, 1.0)

        def above_rel(d: float) -> float:
            """The log-integrand at r = r_peak + d less its peak, in log1p's so that terms of order alpha cancel."""
            return alpha * math.log1p(d / r_peak) + (b / 2.0 - 1.0) * math.log1p(d / u_top) - 0.5 * d

        # curvature <= -1 in t; in r the curvature at the peak is -alpha / r^2 - (B/2 - 1) / u^2
        width_r = 1.0 / math.sqrt(alpha / r_peak**2 + max(b / 2.0 - 1.0, 0.0) / u_top**2)
        above_top = alpha * math.log(lr * r_peak / b) + log_above(r_peak)
        above = above_top + _log_integral(above_rel, -r_peak, 0.0, math.inf, width_r)
        return float(np.logaddexp(below, above))

    high = 1.0
    while log_moment(high) < 0:  # it grows without bound: A_B > 2 / lr has positive probability
        high *= 2.0
    return float(scipy.optimize.brentq(log_moment, 1e-6, high, xtol=1e-10, rtol=1e-12))


def _root(f: Any, low: float, high: float) -> float:
    """The root of a decreasing ``f`` on ``(low, high)``; ``low`` if ``f(low) <= 0``."""
    return low if f(low) <= 0 else float(scipy.optimize.brentq(f, low, high, xtol=1e-300, rtol=1e-14))


def _log_integral(log_f: Any, low: float, peak: float, high: float, width: float) -> float:
    """``log`` of the integral of ``exp(log_f)`` over ``(low, high)``, for a unimodal ``log_f`` that is 0 at its peak.

    Scaled so, the integrand quad sees is at most 1, whatever the integral's size (far beyond float range
    included); quad integrates 12 widths either side of the peak, where the mass lies, and the rest apart, so that
    a peak narrow beside the interval is never stepped over.
    """
    edges = [low, max(low, peak - 12.0 * width), peak, min(high, peak + 12.0 * width), high]
    total = sum(
        scipy.integrate.quad(lambda x: math.exp(log_f(x)), a, z, limit=200)[0]
        for a, z in itertools.pairwise(edges)
        if z > a
    )
    return math.log(total)
