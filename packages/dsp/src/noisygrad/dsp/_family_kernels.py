"""Compiled inner loops (numba) of the adapted-step, affine-projection and online-centred filters.

Like :mod:`noisygrad.dsp._kernels`: each kernel advances ``B`` channels over ``N`` explicit regressors
``u``: (B, N, L) in place, writing a-priori outputs ``y``, errors ``e`` and, when
``hist.shape[1] == N``, the a-priori weights into arrays the caller allocated. Every channel runs the same
instructions, so its results do not depend on the batch. The state each filter carries between samples (a
previous regressor, an adapted step, a memory) lives in arrays the caller owns, so a filter's
``state_dict`` is exactly these arrays. Each kernel has a ``*_parallel`` twin running the channels in
parallel threads through the same per-channel function (:func:`noisygrad.dsp._kernels.pick` chooses).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_FAST = {"reassoc", "contract"}

# Adapted-step rules of :func:`adapted_step_regressors`.
MATHEWS, BENVENISTE, ANG, GNGD = 0, 1, 2, 3


@njit(cache=True, fastmath=_FAST, inline="always")
def _dot(a, b):  # pragma: no cover - compiled
    acc = b[0] - b[0]  # 0 in the dtype (a literal 0 would promote float32 to float64); regressors are finite
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, fastmath=_FAST)
def _adapted_step_channel(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist, b):  # pragma: no cover
    """Channel ``b`` of :func:`adapted_step_regressors`."""
    taps = w.shape[1]
    n = d.shape[1]
    record = hist.shape[1] == n
    wb = w[b]
    lu = last_u[b]
    fb = fi[b]
    le = last_e[b]
    st = step[b]
    for k in range(n):
        uk = u[b, k]
        if record:
            for i in range(taps):
                hist[b, k, i] = wb[i]
        acc = _dot(wb, uk)
        err = d[b, k] - acc
        y[b, k] = acc
        e[b, k] = err
        if rule == GNGD:
            den = _dot(lu, lu) + st
            st = st - rho * mu * err * le * _dot(uk, lu) / (den * den)
            g = mu / (st + _dot(uk, uk)) * err
        elif rule == MATHEWS:
            st = st + rho * err * le * _dot(lu, uk)
            g = st * err
        else:
            if rule == BENVENISTE:
                proj = st * _dot(lu, fb)
                for i in range(taps):
                    fb[i] = fb[i] - lu[i] * proj + le * lu[i]
            else:
                for i in range(taps):
                    fb[i] = a * fb[i] + le * lu[i]
            st = st + rho * err * _dot(lu, fb)
            g = st * err
        for i in range(taps):
            wb[i] += g * uk[i]
            lu[i] = uk[i]
        le = err
    last_e[b] = le
    step[b] = st


@njit(cache=True, fastmath=_FAST)
def adapted_step_regressors(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist):  # pragma: no cover
    """LMS whose step adapts by a stochastic gradient of its own (one of four rules).

    Per channel ``b`` the state is the previous error ``last_e[b]``, regressor ``last_u[b]`` and, for
    Benveniste and Ang, the gradient filter ``fi[b]``; ``step[b]`` is the adapted step ``mu_k`` (Mathews,
    Benveniste, Ang) or the adapted regulariser ``eps_k`` (GNGD). With ``e_k = d_k - w.u_k``:

    * Mathews: ``mu_k = mu_{k-1} + rho e_k e_{k-1} u_{k-1}.u_k``; ``w += mu_k e_k u_k``.
    * Benveniste: ``fi_k = (I - mu_{k-1} u_{k-1} u_{k-1}^T) fi_{k-1} + e_{k-1} u_{k-1}``,
      ``mu_k = mu_{k-1} + rho e_k u_{k-1}.fi_k``; ``w += mu_k e_k u_k``.
    * Ang: ``fi_k = a fi_{k-1} + e_{k-1} u_{k-1}``, then as Benveniste.
    * GNGD: ``eps_k = eps_{k-1} - rho mu e_k e_{k-1} u_k.u_{k-1} / (|u_{k-1}|^2 + eps_{k-1})^2``;
      ``w += mu e_k u_k / (eps_k + |u_k|^2)``.
    """
    for b in range(w.shape[0]):
        _adapted_step_channel(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist, b)


@njit(cache=True, fastmath=_FAST, parallel=True)
def adapted_step_regressors_parallel(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist):
    """:func:`adapted_step_regressors` with channels in parallel threads."""
    for b in prange(w.shape[0]):
        _adapted_step_channel(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist, b)


@njit(cache=True, fastmath=_FAST, inline="always")
def _cholesky_solve(a, rhs, out):  # pragma: no cover - compiled
    """Solve ``a x = rhs`` for symmetric positive definite ``a`` (P, P), overwriting ``a`` by its factor.

    A pivot that is not > 0 (``a`` numerically singular) gives NaN, which the caller reports as divergence.
    """
    p = a.shape[0]
    for r in range(p):
        for c in range(r + 1):
            acc = a[r, c]
            for k in range(c):
                acc -= a[r, k] * a[c, k]
            if r == c:
                a[r, r] = np.sqrt(acc) if acc > 0 else acc * np.nan
            else:
                a[r, c] = acc / a[c, c]
    for r in range(p):  # forward: L z = rhs
        acc = rhs[r]
        for k in range(r):
            acc -= a[r, k] * out[k]
        out[r] = acc / a[r, r]
    for r in range(p - 1, -1, -1):  # backward: L^T x = z
        acc = out[r]
        for k in range(r + 1, p):
            acc -= a[k, r] * out[k]
        out[r] = acc / a[r, r]


@njit(cache=True, fastmath=_FAST)
def _affine_projection_channel(w, u, d, mu, eps, umem, dmem, y, e, hist, b):  # pragma: no cover - compiled
    """Channel ``b`` of :func:`affine_projection_regressors`."""
    taps = w.shape[1]
    order = umem.shape[1]
    n = d.shape[1]
    record = hist.shape[1] == n
    wb = w[b]
    um = umem[b]
    dm = dmem[b]
    gram = np.empty((order, order), dtype=w.dtype)
    chol = np.empty((order, order), dtype=w.dtype)
    err = np.empty(order, dtype=w.dtype)
    coef = np.empty(order, dtype=w.dtype)
    for r in range(order):
        for c in range(r + 1):
            gram[r, c] = _dot(um[r], um[c])
            gram[c, r] = gram[r, c]
    for k in range(n):
        if record:
            for i in range(taps):
                hist[b, k, i] = wb[i]
        for r in range(order - 1, 0, -1):
            for i in range(taps):
                um[r, i] = um[r - 1, i]
            dm[r] = dm[r - 1]
            for c in range(order - 1, 0, -1):
                gram[r, c] = gram[r - 1, c - 1]
        uk = u[b, k]
        for i in range(taps):
            um[0, i] = uk[i]
        dm[0] = d[b, k]
        for c in range(order):
            gram[0, c] = _dot(um[0], um[c])
            gram[c, 0] = gram[0, c]
        for r in range(order):
            out = _dot(um[r], wb)
            err[r] = dm[r] - out
            if r == 0:
                y[b, k] = out
                e[b, k] = err[0]
            for c in range(order):
                chol[r, c] = gram[r, c]
            chol[r, r] += eps
        _cholesky_solve(chol, err, coef)
        for r in range(order):
            g = mu * coef[r]
            for i in range(taps):
                wb[i] += g * um[r, i]


@njit(cache=True, fastmath=_FAST)
def affine_projection_regressors(w, u, d, mu, eps, umem, dmem, y, e, hist):  # pragma: no cover - compiled
    """Affine projection of order ``P``: ``w += mu U^T (U U^T + eps I)^-1 (D - U w)``.

    ``umem``: (B, P, L) the last ``P`` regressors, newest first, and ``dmem``: (B, P) their desired values
    (zeros before the start), updated in place. The output and error of sample ``k`` are the first entries of
    ``U w`` and ``D - U w``. The Gram matrix ``U U^T`` is shifted one place per sample and only its new row
    computed, so a sample costs ``O(P L + P^3)``; a shifted entry is the same dot product of the same two
    regressors, so it equals (bit for bit) recomputing it.
    """
    for b in range(w.shape[0]):
        _affine_projection_channel(w, u, d, mu, eps, umem, dmem, y, e, hist, b)


@njit(cache=True, fastmath=_FAST, parallel=True)
def affine_projection_regressors_parallel(w, u, d, mu, eps, umem, dmem, y, e, hist):  # pragma: no cover - compiled
    """:func:`affine_projection_regressors` with channels in parallel threads."""
    for b in prange(w.shape[0]):
        _affine_projection_channel(w, u, d, mu, eps, umem, dmem, y, e, hist, b)


@njit(cache=True, inline="always")
def _means(idx, full, mem, sum_x, sum_d, mem_d, mx):  # pragma: no cover - compiled
    """The memory's means as padasip's OCNLMS reads them: writes the input mean into ``mx``, returns the
    desired-signal mean. Before the memory first fills, ``mean(x[:idx + 1])`` and ``mean(d[:idx])`` (the
    unwritten rows are zeros, so a running sum over all rows gives them); after, ``mean(x)`` and the mean of
    ``d`` without row ``idx``."""
    taps = mx.shape[0]
    if not full and idx == 0:
        for i in range(taps):
            mx[i] = 0
        return sum_d * 0
    count = mem if full else idx + 1
    for i in range(taps):
        mx[i] = sum_x[i] / count
    if full:
        return (sum_d - mem_d[idx]) / (mem - 1)
    return sum_d / idx


@njit(cache=True, fastmath=_FAST)
def _online_centred_channel(w, u, d, mu, eps, mem_x, mem_d, sum_x, sum_d, pos, ends, y, e, hist, b):  # pragma: no cover
    """Channel ``b`` of :func:`online_centred_regressors`; writes its final position into ``ends[b]``."""
    taps = w.shape[1]
    mem = mem_x.shape[1]
    n = d.shape[1]
    record = hist.shape[1] == n
    wb = w[b]
    mx = np.empty(taps, dtype=w.dtype)
    cen = np.empty(taps, dtype=w.dtype)
    sx = sum_x[b]
    sd = sum_d[b]
    idx = pos[0]
    full = pos[1] != 0
    for k in range(n):
        uk = u[b, k]
        if record:
            for i in range(taps):
                hist[b, k, i] = wb[i]
        md = _means(idx, full, mem, sx, sd, mem_d[b], mx)
        idx += 1
        if idx > mem - 1:
            idx = 0
            full = True
        for i in range(taps):
            cen[i] = uk[i] - mx[i]
        acc = _dot(wb, cen) + md
        err = d[b, k] - acc
        y[b, k] = acc
        e[b, k] = err
        for i in range(taps):  # the memory takes this input at the advanced position
            sx[i] += uk[i] - mem_x[b, idx, i]
            mem_x[b, idx, i] = uk[i]
        md = _means(idx, full, mem, sx, sd, mem_d[b], mx)
        idx += 1
        wrapped = idx > mem - 1
        if wrapped:
            idx = 0
            full = True
        for i in range(taps):
            cen[i] = uk[i] - mx[i]
        slot = idx - 1 if idx > 0 else mem - 1
        value = err + (_dot(wb, cen) + md)  # padasip stores e + y
        sd += value - mem_d[b, slot]
        mem_d[b, slot] = value
        g = mu / (eps + _dot(cen, cen)) * err
        for i in range(taps):
            wb[i] += g * cen[i]
        if wrapped or idx == 1:  # re-sum at each wrap (a read can wrap the position at either point)
            sd = mem_d[b, 0] * 0
            for r in range(mem):
                sd += mem_d[b, r]
            for i in range(taps):
                sx[i] = 0
            for r in range(mem):
                for i in range(taps):
                    sx[i] += mem_x[b, r, i]
    sum_d[b] = sd
    ends[b, 0] = idx
    ends[b, 1] = 1 if full else 0


@njit(cache=True, fastmath=_FAST)
def online_centred_regressors(w, u, d, mu, eps, mem_x, mem_d, sum_x, sum_d, pos, y, e, hist):  # pragma: no cover
    """Online-centred NLMS (padasip's OCNLMS): NLMS on inputs and desired values centred by running means.

    ``mem_x``: (B, M, L) and ``mem_d``: (B, M) the memory; ``sum_x``: (B, L), ``sum_d``: (B,) its column sums;
    ``pos``: (2,) int64, the shared write position and whether the memory has filled once (all channels move in
    lock-step), updated in place. The means are read twice per sample, as padasip does (at the prediction and
    again at the update, each read advancing the position), so the memory keeps every other sample; the sums
    are recomputed exactly each time the position wraps, so rounding cannot accumulate.
    """
    ends = np.empty((w.shape[0], 2), dtype=pos.dtype)
    for b in range(w.shape[0]):
        _online_centred_channel(w, u, d, mu, eps, mem_x, mem_d, sum_x, sum_d, pos, ends, y, e, hist, b)
    pos[0] = ends[0, 0]
    pos[1] = ends[0, 1]


@njit(cache=True, fastmath=_FAST, parallel=True)
def online_centred_regressors_parallel(w, u, d, mu, eps, mem_x, mem_d, sum_x, sum_d, pos, y, e, hist):
    """:func:`online_centred_regressors` with channels in parallel threads."""
    ends = np.empty((w.shape[0], 2), dtype=pos.dtype)
    for b in prange(w.shape[0]):
        _online_centred_channel(w, u, d, mu, eps, mem_x, mem_d, sum_x, sum_d, pos, ends, y, e, hist, b)
    pos[0] = ends[0, 0]
    pos[1] = ends[0, 1]
