"""Compiled inner loops (numba) of the adaptive filters and the Kalman filter.

Every kernel advances ``B`` independent channels over ``N`` samples in place (weights, covariances) and
writes outputs into arrays the caller allocated, so the Python side owns validation, shapes and dtypes.
Kernels are generic in the floating dtype: float32 arrays give a float32 recursion.

``fastmath`` is limited to reassociation and contraction (dot products vectorise; NaN/Inf semantics stay
IEEE). Covariance updates write the upper triangle and mirror it, so ``P`` is exactly symmetric by
construction whatever order the compiler chooses for the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_FAST = {"reassoc", "contract"}


@njit(cache=True, fastmath=_FAST)
def lms_signal(w, xp, d, mu, eps, normalized, y, e, hist):  # pragma: no cover - compiled
    """LMS / NLMS on a tapped delay line.

    ``w``: (B, L) weights, natural order (``w[0]`` multiplies the newest sample), updated in place.
    ``xp``: (B, L - 1 + N) the previous ``L - 1`` samples followed by the new ``N`` samples.
    ``d``, ``y``, ``e``: (B, N). ``hist``: (B, N, L) a-priori weights when ``hist.shape[1] == N``.
    Update ``w += mu e u`` (LMS) or ``w += mu e u / (eps + |u|^2)`` (NLMS), with ``e = d - w.u``.
    """
    n_ch, taps = w.shape
    n = d.shape[1]
    record = hist.shape[1] == n
    wr = np.empty(taps, dtype=w.dtype)
    for b in range(n_ch):
        for i in range(taps):  # reversed copy: the window xp[k : k + L] is oldest first
            wr[i] = w[b, taps - 1 - i]
        x = xp[b]
        for k in range(n):
            acc = wr[0] * 0
            energy = wr[0] * 0
            for i in range(taps):
                acc += wr[i] * x[k + i]
                energy += x[k + i] * x[k + i]
            if record:
                for i in range(taps):
                    hist[b, k, i] = wr[taps - 1 - i]
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            step = mu * err / (eps + energy) if normalized else mu * err
            for i in range(taps):
                wr[i] += step * x[k + i]
        for i in range(taps):
            w[b, taps - 1 - i] = wr[i]


@njit(cache=True, fastmath=_FAST)
def lms_regressors(w, u, d, mu, eps, normalized, y, e, hist):  # pragma: no cover - compiled
    """LMS / NLMS on explicit regressors ``u``: (B, N, L); otherwise as :func:`lms_signal`."""
    n_ch, taps = w.shape
    n = d.shape[1]
    record = hist.shape[1] == n
    for b in range(n_ch):
        wb = w[b]
        for k in range(n):
            uk = u[b, k]
            acc = wb[0] * 0
            energy = wb[0] * 0
            for i in range(taps):
                acc += wb[i] * uk[i]
                energy += uk[i] * uk[i]
            if record:
                hist[b, k, :] = wb
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            step = mu * err / (eps + energy) if normalized else mu * err
            for i in range(taps):
                wb[i] += step * uk[i]


@njit(cache=True, fastmath=_FAST)
def rls_regressors(w, p, u, d, lam, inv_lam, y, e, hist):  # pragma: no cover - compiled
    """Exponentially weighted RLS on regressors ``u``: (B, N, L) (a strided view for a delay line).

    ``pi = P u``, ``den = lam + u.pi``, ``e = d - w.u``, ``w += pi e / den``,
    ``P = (P - pi pi^T / den) / lam`` (upper triangle computed, then mirrored: P stays symmetric).
    """
    n_ch, taps = w.shape
    n = d.shape[1]
    record = hist.shape[1] == n
    pi = np.empty(taps, dtype=w.dtype)
    for b in range(n_ch):
        wb = w[b]
        pb = p[b]
        for k in range(n):
            uk = u[b, k]
            den = lam + wb[0] * 0
            acc = wb[0] * 0
            for i in range(taps):
                s = wb[0] * 0
                for j in range(taps):
                    s += pb[i, j] * uk[j]
                pi[i] = s
                den += uk[i] * s
                acc += wb[i] * uk[i]
            if record:
                hist[b, k, :] = wb
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            g = err / den
            for i in range(taps):
                wb[i] += pi[i] * g
            for i in range(taps):
                ci = pi[i] / den
                for j in range(i, taps):
                    v = (pb[i, j] - ci * pi[j]) * inv_lam
                    pb[i, j] = v
                    pb[j, i] = v


@njit(cache=True)
def kalman_predict(x, p, f, q, inflation, identity):  # pragma: no cover - compiled
    """``x <- F x``, ``P <- inflation F P F^T + Q`` (``identity``: F = I, skip the products)."""
    n = x.shape[0]
    if not identity:
        x[:] = f @ x
        p[:, :] = f @ p @ f.T
    for i in range(n):
        for j in range(i, n):
            v = inflation * 0.5 * (p[i, j] + p[j, i]) + 0.5 * (q[i, j] + q[j, i])
            p[i, j] = v
            p[j, i] = v


@njit(cache=True)
def kalman_update(x, p, z, h, r):  # pragma: no cover - compiled
    """Measurement update with ``z = H x + v``, ``v ~ N(0, R)``; returns log N(z; H x^-, S).

    ``S = H P H^T + R = L L^T`` (Cholesky), ``K = P H^T S^-1``, ``P <- P - G^T G`` with
    ``G = L^-1 H P`` (the upper triangle computed, then mirrored).
    """
    n = x.shape[0]
    m = z.shape[0]
    ph = p @ h.T  # (n, m)
    s = h @ ph + r
    for i in range(m):
        for j in range(i + 1, m):
            v = 0.5 * (s[i, j] + s[j, i])
            s[i, j] = v
            s[j, i] = v
    chol = np.linalg.cholesky(s)
    innov = z - h @ x
    # forward substitution: a = L^-1 innov, g = L^-1 ph^T
    a = np.empty(m, dtype=x.dtype)
    g = np.empty((m, n), dtype=x.dtype)
    for i in range(m):
        acc = innov[i]
        for k in range(i):
            acc -= chol[i, k] * a[k]
        a[i] = acc / chol[i, i]
        for c in range(n):
            v = ph[c, i]
            for k in range(i):
                v -= chol[i, k] * g[k, c]
            g[i, c] = v / chol[i, i]
    # K innov = ph S^-1 innov = g^T a
    for c in range(n):
        acc = 0.0
        for i in range(m):
            acc += g[i, c] * a[i]
        x[c] += acc
    for i in range(n):
        for j in range(i, n):
            acc = 0.0
            for k in range(m):
                acc += g[k, i] * g[k, j]
            v = p[i, j] - acc
            p[i, j] = v
            p[j, i] = v
    logdet = 0.0
    quad = 0.0
    for i in range(m):
        logdet += 2.0 * math.log(chol[i, i])
        quad += a[i] * a[i]
    return -0.5 * (m * math.log(2.0 * math.pi) + logdet + quad)


@njit(cache=True)
def kalman_run(x, p, f, q, inflation, identity, zs, hs, r, means, covs, lls):  # pragma: no cover - compiled
    """Predict then update for each of ``zs``: (N, m); ``hs``: (N or 1, m, n). Writes the filtered
    means (N, n), covariances (N, n, n) when ``covs.shape[0] == N``, and per-step log-likelihoods (N,)."""
    n_steps = zs.shape[0]
    varying = hs.shape[0] == n_steps and n_steps > 1
    keep = covs.shape[0] == n_steps
    for t in range(n_steps):
        kalman_predict(x, p, f, q, inflation, identity)
        lls[t] = kalman_update(x, p, zs[t], hs[t] if varying else hs[0], r)
        means[t] = x
        if keep:
            covs[t] = p
