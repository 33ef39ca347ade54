"""Compiled inner loops (numba) of the adaptive filters and the Kalman filter.

Every kernel advances ``B`` independent channels over ``N`` samples in place (weights, covariances) and
writes outputs into arrays the caller allocated, so the Python side owns validation, shapes and dtypes.
Kernels are generic in the floating dtype: float32 arrays give a float32 recursion.

``fastmath`` (reassociation and contraction only, so NaN/Inf semantics stay IEEE) is used by the LMS
kernels, whose dot products then vectorise. The RLS and Kalman kernels do without it: their covariance
updates apply the same IEEE operations to elements (i, j) and (j, i), so a symmetric ``P`` stays exactly
symmetric, which is what keeps RLS stable at forgetting factors close to 1.
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
    One pass over the taps per sample: the update of sample k is fused with the output of sample k + 1.
    """
    n_ch, taps = w.shape
    n = d.shape[1]
    record = hist.shape[1] == n
    wr = np.empty(taps, dtype=w.dtype)
    for b in range(n_ch):
        for i in range(taps):  # reversed copy: the window xp[k : k + L] is oldest first
            wr[i] = w[b, taps - 1 - i]
        x = xp[b]
        acc = wr[0] * 0
        for i in range(taps):
            acc += wr[i] * x[i]
        for k in range(n):
            if record:
                for i in range(taps):
                    hist[b, k, i] = wr[taps - 1 - i]
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            step = mu * err
            if normalized:
                energy = eps
                for i in range(taps):
                    energy += x[k + i] * x[k + i]
                step = step / energy
            nxt = wr[0] * 0
            if k + 1 < n:
                for i in range(taps):
                    wi = wr[i] + step * x[k + i]
                    wr[i] = wi
                    nxt += wi * x[k + 1 + i]
            else:
                for i in range(taps):
                    wr[i] += step * x[k + i]
            acc = nxt
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
            for i in range(taps):
                acc += wb[i] * uk[i]
            energy = wb[0] * 0
            if normalized:
                for i in range(taps):
                    energy += uk[i] * uk[i]
            if record:
                for i in range(taps):
                    hist[b, k, i] = wb[i]
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            step = mu * err / (eps + energy) if normalized else mu * err
            for i in range(taps):
                wb[i] += step * uk[i]


@njit(cache=True)
def rls_regressors(w, p, u, d, lam, inv_lam, y, e, hist):  # pragma: no cover - compiled
    """Exponentially weighted RLS on regressors ``u``: (B, N, L) (a strided view for a delay line).

    ``pi = P u``, ``den = lam + u.pi``, ``e = d - w.u``, ``w += pi e / den``,
    ``P = (P - pi pi^T / den) / lam``. Element (i, j) and (j, i) of the update run the same IEEE operations
    on the same operands (no fastmath here, so no contraction or reassociation), so P stays exactly symmetric.
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
            for i in range(taps):
                pi[i] = 0
            for j in range(taps):  # pi = P u = sum_j P[j, :] u_j (P symmetric): row-wise, vectorisable
                uj = uk[j]
                for i in range(taps):
                    pi[i] += pb[j, i] * uj
            den = lam + wb[0] * 0
            acc = wb[0] * 0
            for i in range(taps):
                den += uk[i] * pi[i]
                acc += wb[i] * uk[i]
            if record:
                for i in range(taps):
                    hist[b, k, i] = wb[i]
            err = d[b, k] - acc
            y[b, k] = acc
            e[b, k] = err
            inv_den = 1 / den
            g = err * inv_den
            for i in range(taps):
                wb[i] += pi[i] * g
            for i in range(taps):
                pii = pi[i]
                for j in range(taps):
                    pb[i, j] = (pb[i, j] - (pii * pi[j]) * inv_den) * inv_lam


@njit(cache=True)
def kalman_predict(x, p, f, ft, q, inflation, identity):  # pragma: no cover - compiled
    """``x <- F x``, ``P <- inflation F P F^T + Q`` (``identity``: F = I, skip the products).

    ``ft`` is ``F^T`` (C-contiguous), so both products run as row updates. Dense ``F`` costs O(n^3) per step.
    """
    n = x.shape[0]
    if not identity:
        fx = np.zeros(n)
        fp = np.zeros((n, n))
        for i in range(n):
            for k in range(n):
                fik = f[i, k]
                fx[i] += fik * x[k]
                for j in range(n):
                    fp[i, j] += fik * p[k, j]
        for i in range(n):
            x[i] = fx[i]
            for j in range(n):
                p[i, j] = 0.0
            for k in range(n):
                c = fp[i, k]
                for j in range(n):
                    p[i, j] += c * ft[k, j]
        for i in range(n):  # F P F^T is symmetric only up to rounding: symmetrise it
            for j in range(i + 1, n):
                v = 0.5 * (p[i, j] + p[j, i])
                p[i, j] = v
                p[j, i] = v
    for i in range(n):  # same operations on (i, j) and (j, i): a symmetric P and Q give a symmetric result
        for j in range(n):
            p[i, j] = inflation * p[i, j] + q[i, j]


@njit(cache=True)
def kalman_update(x, p, z, h, r):  # pragma: no cover - compiled
    """Measurement update with ``z = H x + v``, ``v ~ N(0, R)``; returns log N(z; H x^-, S).

    ``S = H P H^T + R = L L^T`` (Cholesky), ``K = P H^T S^-1``, ``P <- P - G^T G`` with
    ``G = L^-1 H P``. Explicit loops: ``m`` is small, and
    numba compiles them far faster than its LAPACK bindings.
    """
    n = x.shape[0]
    m = z.shape[0]
    ph = np.empty((n, m))  # P H^T
    for i in range(n):
        for c in range(m):
            acc = 0.0
            for k in range(n):
                acc += p[i, k] * h[c, k]
            ph[i, c] = acc
    chol = np.zeros((m, m))  # S = H P H^T + R, then its Cholesky factor in place
    for a in range(m):
        for c in range(a + 1):
            acc = 0.5 * (r[a, c] + r[c, a])
            for k in range(n):
                acc += 0.5 * (h[a, k] * ph[k, c] + h[c, k] * ph[k, a])
            chol[a, c] = acc
    for a in range(m):
        for c in range(a + 1):
            acc = chol[a, c]
            for k in range(c):
                acc -= chol[a, k] * chol[c, k]
            if a == c:
                if acc <= 0.0:
                    raise FloatingPointError("the innovation covariance S is not positive definite")
                chol[a, a] = math.sqrt(acc)
            else:
                chol[a, c] = acc / chol[c, c]
    # forward substitution: a_vec = L^-1 (z - H x), g = L^-1 (P H^T)^T
    avec = np.empty(m)
    g = np.empty((m, n))
    for a in range(m):
        acc = z[a]
        for k in range(n):
            acc -= h[a, k] * x[k]
        for k in range(a):
            acc -= chol[a, k] * avec[k]
        avec[a] = acc / chol[a, a]
        for c in range(n):
            v = ph[c, a]
            for k in range(a):
                v -= chol[a, k] * g[k, c]
            g[a, c] = v / chol[a, a]
    for c in range(n):  # x += K (z - H x) = g^T a_vec
        acc = 0.0
        for a in range(m):
            acc += g[a, c] * avec[a]
        x[c] += acc
    for i in range(n):  # P -= G^T G, row by row; (i, j) and (j, i) see the same products in the same order
        for k in range(m):
            gki = g[k, i]
            for j in range(n):
                p[i, j] -= gki * g[k, j]
    logdet = 0.0
    quad = 0.0
    for a in range(m):
        logdet += 2.0 * math.log(chol[a, a])
        quad += avec[a] * avec[a]
    return -0.5 * (m * math.log(2.0 * math.pi) + logdet + quad)


@njit(cache=True)
def kalman_run(x, p, f, ft, q, inflation, identity, zs, hs, r, means, covs, lls):  # pragma: no cover - compiled
    """Predict then update for each of ``zs``: (N, m); ``hs``: (N or 1, m, n). Writes the filtered
    means (N, n), covariances (N, n, n) when ``covs.shape[0] == N``, and per-step log-likelihoods (N,)."""
    n_steps = zs.shape[0]
    n = x.shape[0]
    varying = hs.shape[0] == n_steps and n_steps > 1
    keep = covs.shape[0] == n_steps
    for t in range(n_steps):
        kalman_predict(x, p, f, ft, q, inflation, identity)
        lls[t] = kalman_update(x, p, zs[t], hs[t] if varying else hs[0], r)
        for i in range(n):
            means[t, i] = x[i]
            if keep:
                for j in range(n):
                    covs[t, i, j] = p[i, j]
