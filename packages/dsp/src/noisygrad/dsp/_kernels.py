"""Compiled inner loops (numba) of the LMS-family and RLS filters (the Kalman filter's are in ``_kalman_kernels``).

Every kernel advances ``B`` independent channels over ``N`` samples in place (weights, covariances) and
writes outputs into arrays the caller allocated, so the Python side owns validation, shapes and dtypes.
Kernels are generic in the floating dtype: float32 arrays give a float32 recursion.

``fastmath`` (reassociation and contraction only, so NaN/Inf semantics stay IEEE) is used by the LMS
kernels, whose dot products then vectorise. The RLS kernels do without it: their covariance
updates apply the same IEEE operations to elements (i, j) and (j, i), so a symmetric ``P`` stays exactly
symmetric, which is what keeps RLS stable at forgetting factors close to 1.

Each kernel has a ``*_parallel`` twin that runs the channels in parallel threads (numba ``prange``;
``numba.set_num_threads`` sets how many) through the same per-channel function; :func:`pick` chooses it for
work large enough to pay for starting the threads. Every channel runs the same instructions whatever the
batch, so a channel's results do not depend on the number of threads or on the other channels.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_FAST = {"reassoc", "contract"}
PARALLEL_WORK = 1 << 18  # multiply-adds (channels x samples x taps) from which threads pay for themselves


def pick(serial, parallel, channels: int, work: int):  # type: ignore[no-untyped-def]
    """The parallel twin of a kernel when there are several channels, enough work and more than one numba
    thread; the serial one otherwise (one filter, short blocks: no thread start-up or barrier to pay)."""
    if channels > 1 and work >= PARALLEL_WORK and numba.get_num_threads() > 1:
        return parallel
    return serial


# Error nonlinearities of the LMS family: the step is ``mu * phi(e)`` (divided by ``eps + |u|^2`` when normalised).
PHI_LINEAR, PHI_CUBE, PHI_SIGN, PHI_TANH, PHI_GMCC = 0, 1, 2, 3, 4


@njit(cache=True, fastmath=_FAST, inline="always")
def _phi(err, kind, p1, p2, one):  # pragma: no cover - compiled
    """``phi(e)``: ``e`` (LMS), ``e^3`` (LMF), ``sign(e)`` (sign error), ``tanh(p1 e)`` (Llncosh), or
    ``p1 p2 exp(-p1 |e|^p2) |e|^(p2 - 1) sign(e)`` (GMCC; 0 at ``e = 0``). ``one`` is 1 in the dtype of
    ``err``: every branch stays in that dtype (an integer literal would promote float32 to float64)."""
    zero = one - one
    if kind == PHI_LINEAR:
        return err
    if kind == PHI_CUBE:
        return err * err * err
    if kind == PHI_SIGN:
        return one if err > 0 else (-one if err < 0 else zero)
    if kind == PHI_TANH:
        return np.tanh(p1 * err)
    mag = abs(err)
    if mag == 0:
        return zero
    g = p1 * p2 * np.exp(-p1 * mag**p2) * mag ** (p2 - one)
    return g if err > 0 else -g


@njit(cache=True, fastmath=_FAST, inline="always")
def _sign(t, one, zero):  # pragma: no cover - compiled
    return one if t > 0 else (-one if t < 0 else zero)


@njit(cache=True, fastmath=_FAST)
def _lms_pair(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, c0):  # pragma: no cover
    """Channels ``c0`` and ``c0 + 1`` of :func:`lms_signal`, advanced in lock-step.

    Two independent recursions in one loop overlap the latency of each sample's dot product (the chain
    output -> error -> step -> update -> next output) with the other's arithmetic: 1.4-1.6x the rate of one
    channel at a time. A lone last channel runs beside a copy of itself whose results are dropped, so every
    channel runs the same instructions whatever its position: a channel's results are bit-identical in any
    batch.
    """
    n_ch, taps = w.shape
    n = d.shape[1]
    live1 = c0 + 1 < n_ch
    c1 = c0 + 1 if live1 else c0
    record = hist.shape[1] == n
    buf = np.empty((2, taps - 1 + n), dtype=w.dtype)  # per lane: the previous taps - 1 samples, then the new
    wr = np.empty((2, taps), dtype=w.dtype)  # reversed weights: the window buf[k : k + taps] is oldest first
    for lane in range(2):
        c = c0 if lane == 0 else c1
        for i in range(taps - 1):
            buf[lane, i] = tail[c, i]
        for i in range(n):
            buf[lane, taps - 1 + i] = x[c, i]
        for i in range(taps):
            wr[lane, i] = w[c, taps - 1 - i]
    xa, xb, wa, wb = buf[0], buf[1], wr[0], wr[1]
    one = mu / mu  # 1 and 0 in the dtype (mu > 0): literals would promote float32 arithmetic to float64
    zero = mu - mu
    a = zero
    b = zero
    for i in range(taps):
        a += wa[i] * xa[i]
        b += wb[i] * xb[i]
    for k in range(n):
        if record:
            for i in range(taps):
                hist[c0, k, i] = wa[taps - 1 - i]
            if live1:
                for i in range(taps):
                    hist[c1, k, i] = wb[taps - 1 - i]
        ra = d[c0, k] - a
        rb = d[c1, k] - b
        y[c0, k] = a
        e[c0, k] = ra
        if live1:
            y[c1, k] = b
            e[c1, k] = rb
        sa = mu * _phi(ra, kind, p1, p2, one)
        sb = mu * _phi(rb, kind, p1, p2, one)
        if normalized:
            na = eps
            nb = eps
            for i in range(taps):
                na += xa[k + i] * xa[k + i]
                nb += xb[k + i] * xb[k + i]
            sa = sa / na
            sb = sb / nb
        a = zero
        b = zero
        if k + 1 < n:  # the update of sample k fused with the output of sample k + 1: one pass over the taps
            if signreg:
                for i in range(taps):
                    va = wa[i] + sa * _sign(xa[k + i], one, zero)
                    wa[i] = va
                    a += va * xa[k + 1 + i]
                    vb = wb[i] + sb * _sign(xb[k + i], one, zero)
                    wb[i] = vb
                    b += vb * xb[k + 1 + i]
            else:
                for i in range(taps):
                    va = wa[i] + sa * xa[k + i]
                    wa[i] = va
                    a += va * xa[k + 1 + i]
                    vb = wb[i] + sb * xb[k + i]
                    wb[i] = vb
                    b += vb * xb[k + 1 + i]
        elif signreg:
            for i in range(taps):
                wa[i] += sa * _sign(xa[k + i], one, zero)
                wb[i] += sb * _sign(xb[k + i], one, zero)
        else:
            for i in range(taps):
                wa[i] += sa * xa[k + i]
                wb[i] += sb * xb[k + i]
    for lane in range(2 if live1 else 1):
        c = c0 if lane == 0 else c1
        for i in range(taps):
            w[c, taps - 1 - i] = wr[lane, i]
        for i in range(taps - 1):
            tail[c, i] = buf[lane, n + i]


@njit(cache=True, fastmath=_FAST)
def _lms_quad(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, c0):  # pragma: no cover
    """Channels ``c0`` to ``c0 + 3`` of :func:`lms_signal_quad`, advanced in lock-step: :func:`_lms_pair` widened.

    Four recursions hide more of each sample's latency chain than two; with float32's wider vectors this pays
    (1.01-1.12x the pair's rate on 1024 channels over 2 idle cores, ``benchmarks/dsp_filters.py --part batch``;
    1.03-1.32x per CPU second on one thread), with float64 it does not (and one float64 filter, padded to four,
    would run at half its rate), so float64 keeps pairs. Missing channels of the last group run as copies of the
    batch's last channel whose results are dropped: every channel runs the same instructions wherever it sits.
    """
    n_ch, taps = w.shape
    n = d.shape[1]
    record = hist.shape[1] == n
    live = min(4, n_ch - c0)
    c1, c2, c3 = min(c0 + 1, n_ch - 1), min(c0 + 2, n_ch - 1), min(c0 + 3, n_ch - 1)
    buf = np.empty((4, taps - 1 + n), dtype=w.dtype)  # per lane: the previous taps - 1 samples, then the new
    wr = np.empty((4, taps), dtype=w.dtype)  # reversed weights: the window buf[k : k + taps] is oldest first
    for lane in range(4):
        c = min(c0 + lane, n_ch - 1)
        for i in range(taps - 1):
            buf[lane, i] = tail[c, i]
        for i in range(n):
            buf[lane, taps - 1 + i] = x[c, i]
        for i in range(taps):
            wr[lane, i] = w[c, taps - 1 - i]
    x0, x1, x2, x3 = buf[0], buf[1], buf[2], buf[3]
    w0, w1, w2, w3 = wr[0], wr[1], wr[2], wr[3]
    one = mu / mu  # 1 and 0 in the dtype (mu > 0): literals would promote float32 arithmetic to float64
    zero = mu - mu
    a0 = a1 = a2 = a3 = zero
    for i in range(taps):
        a0 += w0[i] * x0[i]
        a1 += w1[i] * x1[i]
        a2 += w2[i] * x2[i]
        a3 += w3[i] * x3[i]
    for k in range(n):
        if record:
            for lane in range(live):
                for i in range(taps):
                    hist[c0 + lane, k, i] = wr[lane, taps - 1 - i]
        r0, r1, r2, r3 = d[c0, k] - a0, d[c1, k] - a1, d[c2, k] - a2, d[c3, k] - a3
        y[c0, k], e[c0, k] = a0, r0
        if live > 1:
            y[c1, k], e[c1, k] = a1, r1
        if live > 2:
            y[c2, k], e[c2, k] = a2, r2
        if live > 3:
            y[c3, k], e[c3, k] = a3, r3
        s0 = mu * _phi(r0, kind, p1, p2, one)
        s1 = mu * _phi(r1, kind, p1, p2, one)
        s2 = mu * _phi(r2, kind, p1, p2, one)
        s3 = mu * _phi(r3, kind, p1, p2, one)
        if normalized:
            n0 = n1 = n2 = n3 = eps
            for i in range(taps):
                n0 += x0[k + i] * x0[k + i]
                n1 += x1[k + i] * x1[k + i]
                n2 += x2[k + i] * x2[k + i]
                n3 += x3[k + i] * x3[k + i]
            s0, s1, s2, s3 = s0 / n0, s1 / n1, s2 / n2, s3 / n3
        a0 = a1 = a2 = a3 = zero
        if k + 1 < n:  # the update of sample k fused with the output of sample k + 1: one pass over the taps
            if signreg:
                for i in range(taps):
                    v0 = w0[i] + s0 * _sign(x0[k + i], one, zero)
                    v1 = w1[i] + s1 * _sign(x1[k + i], one, zero)
                    v2 = w2[i] + s2 * _sign(x2[k + i], one, zero)
                    v3 = w3[i] + s3 * _sign(x3[k + i], one, zero)
                    w0[i], w1[i], w2[i], w3[i] = v0, v1, v2, v3
                    a0 += v0 * x0[k + 1 + i]
                    a1 += v1 * x1[k + 1 + i]
                    a2 += v2 * x2[k + 1 + i]
                    a3 += v3 * x3[k + 1 + i]
            else:
                for i in range(taps):
                    v0 = w0[i] + s0 * x0[k + i]
                    v1 = w1[i] + s1 * x1[k + i]
                    v2 = w2[i] + s2 * x2[k + i]
                    v3 = w3[i] + s3 * x3[k + i]
                    w0[i], w1[i], w2[i], w3[i] = v0, v1, v2, v3
                    a0 += v0 * x0[k + 1 + i]
                    a1 += v1 * x1[k + 1 + i]
                    a2 += v2 * x2[k + 1 + i]
                    a3 += v3 * x3[k + 1 + i]
        elif signreg:
            for i in range(taps):
                w0[i] += s0 * _sign(x0[k + i], one, zero)
                w1[i] += s1 * _sign(x1[k + i], one, zero)
                w2[i] += s2 * _sign(x2[k + i], one, zero)
                w3[i] += s3 * _sign(x3[k + i], one, zero)
        else:
            for i in range(taps):
                w0[i] += s0 * x0[k + i]
                w1[i] += s1 * x1[k + i]
                w2[i] += s2 * x2[k + i]
                w3[i] += s3 * x3[k + i]
    for lane in range(live):
        for i in range(taps):
            w[c0 + lane, taps - 1 - i] = wr[lane, i]
        for i in range(taps - 1):
            tail[c0 + lane, i] = buf[lane, n + i]


@njit(cache=True, fastmath=_FAST)
def lms_signal(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """The LMS family on a tapped delay line, two channels at a time (:func:`_lms_pair`).

    ``w``: (B, L) weights, natural order (``w[0]`` multiplies the newest sample), updated in place.
    ``tail``: (B, L - 1) the previous ``L - 1`` samples, oldest first, replaced by the last ones of ``x``.
    ``x``, ``d``, ``y``, ``e``: (B, N). ``hist``: (B, N, L) a-priori weights when ``hist.shape[1] == N``.
    Update ``w += mu phi(e) s(u)``, divided by ``eps + |u|^2`` when ``normalized``, with ``e = d - w.u``,
    ``phi`` from :func:`_phi` and ``s(u) = sign(u)`` when ``signreg`` (else ``u``).
    """
    for g in range((w.shape[0] + 1) // 2):
        _lms_pair(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, 2 * g)


@njit(cache=True, fastmath=_FAST, parallel=True)
def lms_signal_parallel(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """:func:`lms_signal` with the pairs of channels in parallel threads (the same per-pair code)."""
    for g in prange((w.shape[0] + 1) // 2):
        _lms_pair(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, 2 * g)


@njit(cache=True, fastmath=_FAST)
def lms_signal_quad(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """:func:`lms_signal` four channels at a time (:func:`_lms_quad`): the float32 kernel."""
    for g in range((w.shape[0] + 3) // 4):
        _lms_quad(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, 4 * g)


@njit(cache=True, fastmath=_FAST, parallel=True)
def lms_signal_quad_parallel(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """:func:`lms_signal_quad` with the groups of four channels in parallel threads."""
    for g in prange((w.shape[0] + 3) // 4):
        _lms_quad(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, 4 * g)


def lms_signal_kernels(dtype):  # type: ignore[no-untyped-def]
    """The (serial, parallel) delay-line kernels for ``dtype``: four channels in lock-step for float32, two
    for float64 (see :func:`_lms_quad`). A dtype always gets the same kernels, so a channel's results do not
    depend on its batch."""
    if np.dtype(dtype) == np.float32:
        return lms_signal_quad, lms_signal_quad_parallel
    return lms_signal, lms_signal_parallel


@njit(cache=True, fastmath=_FAST)
def _lms_channel(w, u, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, b):  # pragma: no cover
    """Channel ``b`` of :func:`lms_regressors`."""
    taps = w.shape[1]
    n = d.shape[1]
    record = hist.shape[1] == n
    wb = w[b]
    one = mu / mu
    zero = mu - mu
    for k in range(n):
        uk = u[b, k]
        acc = zero
        for i in range(taps):
            acc += wb[i] * uk[i]
        if record:
            for i in range(taps):
                hist[b, k, i] = wb[i]
        err = d[b, k] - acc
        y[b, k] = acc
        e[b, k] = err
        step = mu * _phi(err, kind, p1, p2, one)
        if normalized:
            energy = eps
            for i in range(taps):
                energy += uk[i] * uk[i]
            step = step / energy
        if signreg:
            for i in range(taps):
                wb[i] += step * _sign(uk[i], one, zero)
        else:
            for i in range(taps):
                wb[i] += step * uk[i]


@njit(cache=True, fastmath=_FAST)
def lms_regressors(w, u, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """The LMS family on explicit regressors ``u``: (B, N, L); otherwise as :func:`lms_signal`."""
    for b in range(w.shape[0]):
        _lms_channel(w, u, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, b)


@njit(cache=True, fastmath=_FAST, parallel=True)
def lms_regressors_parallel(w, u, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist):  # pragma: no cover
    """:func:`lms_regressors` with channels in parallel threads."""
    for b in prange(w.shape[0]):
        _lms_channel(w, u, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist, b)


@njit(cache=True, fastmath=_FAST)
def row_power(x):  # pragma: no cover - compiled
    """``(max over rows of sum x^2, all finite)`` for ``x``: (B, N), summed in float64. A NaN or Inf anywhere
    in a row makes its sum non-finite, so the caller refuses non-finite data with this one (vectorised) pass."""
    largest = 0.0
    finite = True
    for b in range(x.shape[0]):
        acc = 0.0
        for k in range(x.shape[1]):
            acc += x[b, k] * x[b, k]
        if not np.isfinite(acc):
            finite = False
        elif acc > largest:
            largest = acc
    return largest, finite


@njit(cache=True)
def _rls_channel(w, p, u, d, lam, inv_lam, y, e, hist, b):  # pragma: no cover - compiled
    """Channel ``b`` of :func:`rls_regressors`."""
    taps = w.shape[1]
    n = d.shape[1]
    record = hist.shape[1] == n
    pi = np.empty(taps, dtype=w.dtype)
    wb = w[b]
    pb = p[b]
    for k in range(n):
        uk = u[b, k]
        for i in range(taps):
            pi[i] = 0
        for j in range(taps):  # pi = P u = sum_j P[j, :] u_j (P symmetric): row-wise, vectorisable
            uj = uk[j]
            for i in range(taps):
                pi[i] += pb[j, i] * uj
        den = lam
        acc = lam - lam  # 0 in the dtype: a literal would promote float32 to float64
        for i in range(taps):
            den += uk[i] * pi[i]
            acc += wb[i] * uk[i]
        if record:
            for i in range(taps):
                hist[b, k, i] = wb[i]
        err = d[b, k] - acc
        y[b, k] = acc
        e[b, k] = err
        inv_den = (lam / lam) / den  # 1 / den in the dtype: a literal 1 would promote float32 to float64
        g = err * inv_den
        for i in range(taps):
            wb[i] += pi[i] * g
        for i in range(taps):
            pii = pi[i]
            for j in range(taps):
                pb[i, j] = (pb[i, j] - (pii * pi[j]) * inv_den) * inv_lam


@njit(cache=True)
def rls_regressors(w, p, u, d, lam, inv_lam, y, e, hist):  # pragma: no cover - compiled
    """Exponentially weighted RLS on regressors ``u``: (B, N, L).

    ``pi = P u``, ``den = lam + u.pi``, ``e = d - w.u``, ``w += pi e / den``,
    ``P = (P - pi pi^T / den) / lam``. Element (i, j) and (j, i) of the update run the same IEEE operations
    on the same operands (no fastmath here, so no contraction or reassociation), so P stays exactly symmetric.
    """
    for b in range(w.shape[0]):
        _rls_channel(w, p, u, d, lam, inv_lam, y, e, hist, b)


@njit(cache=True, parallel=True)
def rls_regressors_parallel(w, p, u, d, lam, inv_lam, y, e, hist):  # pragma: no cover - compiled
    """:func:`rls_regressors` with channels in parallel threads."""
    for b in prange(w.shape[0]):
        _rls_channel(w, p, u, d, lam, inv_lam, y, e, hist, b)
