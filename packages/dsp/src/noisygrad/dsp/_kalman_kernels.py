"""Compiled steps (numba) of :class:`noisygrad.dsp.Kalman`: predict, the two measurement updates, whole sequences.

Layout: ``B`` independent filters share one model. ``x``: (B, n) means; ``p``: (B, n, n) covariances (Joseph
form) or square-root factors ``L`` with ``P = L L^T`` (square-root form). Model matrices come as stacks whose
leading axis is 1 (the same every step) or N (one per step); the Python side validates every shape, dtype and
value, so the kernels only compute. Kernels are generic in the floating dtype (float32 arrays give a float32
filter).

Symmetry: every covariance the kernels write is symmetric bit for bit (the two halves are averaged or mirrored),
so rounding never accumulates an antisymmetric part. The matrix products (``F P F^T`` and, when every
component of a measurement is observed, the update's O(n^2 m) ones) call BLAS through ``np.dot`` from
``BLAS_MIN`` states up, where it beats compiled loops; below, loops avoid the call overhead. The square-root
form's Householder triangularisation and Potter updates are compiled loops at every size.

A failed step (an innovation covariance that is not positive definite) is reported by returning its index, so
Python raises with a message that names it; ``OK`` (-1) means every step succeeded.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

BLAS_MIN = 12
HALF_MIN = 48  # from here F P F^T computes 3/4 of the second product (the blocks on and above the diagonal)
OK = -1


@njit(cache=True)
def _matmul(a, b, out, blas):  # pragma: no cover - compiled
    """``out = a @ b`` (all C-contiguous)."""
    if blas:
        np.dot(a, b, out)
        return
    rows, inner = a.shape
    cols = b.shape[1]
    for i in range(rows):
        for j in range(cols):
            out[i, j] = 0
        for k in range(inner):
            aik = a[i, k]
            for j in range(cols):
                out[i, j] += aik * b[k, j]


@njit(cache=True)
def _symmetrize(src, out, scale, add, with_add):  # pragma: no cover - compiled
    """``out = scale (src + src^T) / 2 (+ add)``, exactly symmetric; in 32 x 32 tiles, so that reading the
    transpose stays in cache for large matrices."""
    n = src.shape[0]
    tile = 32
    for i0 in range(0, n, tile):
        i1 = min(i0 + tile, n)
        for j0 in range(i0, n, tile):
            j1 = min(j0 + tile, n)
            for i in range(i0, i1):
                for j in range(max(i, j0), j1):
                    v = scale * (0.5 * (src[i, j] + src[j, i]))
                    if with_add:
                        v += add[i, j]
                    out[i, j] = v
                    out[j, i] = v


@njit(cache=True)
def _control(xb, bmat, ub):  # pragma: no cover - compiled
    """``x += B u`` (``B``: (n, k); nothing when k = 0)."""
    n, k = bmat.shape
    for i in range(n):
        acc = xb[0] * 0
        for c in range(k):
            acc += bmat[i, c] * ub[c]
        xb[i] += acc


@njit(cache=True)
def _transition_mean(xb, f, wx):  # pragma: no cover - compiled
    n = xb.shape[0]
    for i in range(n):
        acc = xb[0] * 0
        for j in range(n):
            acc += f[i, j] * xb[j]
        wx[i] = acc
    for i in range(n):
        xb[i] = wx[i]


@njit(cache=True)
def _half_product(f, ft, w, w2, pb, a2, q):  # pragma: no cover - compiled
    """``P = a2 W F^T + Q`` with ``W = F P`` given, symmetric by construction, computing only the blocks on and
    above the diagonal of a 2 x 2 split (3/4 of the product): the top rows ``W_T F^T`` into the top rows of
    ``w2``, the bottom-right block ``W_B F_B^T`` into the storage of its bottom rows; the bottom-left block is
    the top-right one transposed."""
    n = pb.shape[0]
    h = n // 2
    np.dot(w[:h], ft, w2[:h])
    blk = w2[h:].ravel()[: (n - h) * (n - h)].reshape(n - h, n - h)
    np.dot(w[h:], f[h:].T, blk)
    for i in range(h):
        for j in range(i, h):
            v = a2 * (0.5 * (w2[i, j] + w2[j, i])) + q[i, j]
            pb[i, j] = v
            pb[j, i] = v
        for j in range(h, n):
            v = a2 * w2[i, j] + q[i, j]
            pb[i, j] = v
            pb[j, i] = v
    for i in range(h, n):
        for j in range(i, n):
            v = a2 * (0.5 * (blk[i - h, j - h] + blk[j - h, i - h])) + q[i, j]
            pb[i, j] = v
            pb[j, i] = v


@njit(cache=True)
def predict_one(xb, pb, f, ft, q, bmat, ub, a2, identity, blas, wx, w1, w2):  # pragma: no cover - compiled
    """Joseph form: ``x <- F x + B u``, ``P <- a2 F P F^T + Q`` (``identity``: F = I, no products)."""
    n = xb.shape[0]
    if identity:
        for i in range(n):
            for j in range(n):
                pb[i, j] = a2 * pb[i, j] + q[i, j]
    else:
        _transition_mean(xb, f, wx)
        _matmul(f, pb, w1, blas)
        if blas and n >= HALF_MIN:
            _half_product(f, ft, w1, w2, pb, a2, q)
        else:
            _matmul(w1, ft, w2, blas)
            _symmetrize(w2, pb, a2, q, True)
    _control(xb, bmat, ub)


@njit(cache=True)
def predict_sqrt_one(xb, lb, f, ft, lq, bmat, ub, sa, identity, noiseless, blas, wx, w1, pre):  # pragma: no cover
    """Square-root form: ``L <- lower-triangular factor of [sa F L, L_Q]`` (an LQ decomposition by Householder
    reflections on rows), so ``L L^T = a2 F P F^T + Q`` with ``L`` lower triangular, non-negative diagonal.

    ``lq``: any factor with ``L_Q L_Q^T = Q``; ``sa``: the square root of the inflation; ``noiseless``: Q = 0, so
    the factor is just ``sa F L`` (no triangularisation).
    """
    n = xb.shape[0]
    if not identity:
        _transition_mean(xb, f, wx)
        _matmul(f, lb, w1, blas)
    else:
        for i in range(n):
            for j in range(n):
                w1[i, j] = lb[i, j]
    if noiseless:
        for i in range(n):
            for j in range(n):
                lb[i, j] = sa * w1[i, j]
        _control(xb, bmat, ub)
        return
    for i in range(n):
        for j in range(n):
            pre[i, j] = sa * w1[i, j]
            pre[i, n + j] = lq[i, j]
    width = 2 * n
    for i in range(n):  # zero pre[i, i+1:] with a reflection acting on columns i..2n-1 of rows i..n-1
        norm2 = pre[0, 0] * 0
        for c in range(i, width):
            norm2 += pre[i, c] * pre[i, c]
        if norm2 == 0:
            continue
        norm = math.sqrt(norm2)
        head = pre[i, i]
        alpha = -norm if head >= 0 else norm
        v0 = head - alpha
        vnorm2 = norm2 - head * head + v0 * v0
        pre[i, i] = v0  # the reflector v is row i from column i on, with v0 in front
        scale = 2 / vnorm2
        for r in range(i + 1, n):
            dot = pre[0, 0] * 0
            for c in range(i, width):
                dot += pre[r, c] * pre[i, c]
            g = scale * dot
            for c in range(i, width):
                pre[r, c] -= g * pre[i, c]
        pre[i, i] = alpha
        for c in range(i + 1, width):
            pre[i, c] = 0
    for i in range(n):
        for j in range(n):
            lb[i, j] = pre[i, j] if j <= i else pre[0, 0] * 0
    for j in range(n):  # a non-negative diagonal: flip the sign of a column (L L^T is unchanged)
        if lb[j, j] < 0:
            for i in range(j, n):
                lb[i, j] = -lb[i, j]
    _control(xb, bmat, ub)


@njit(cache=True)
def _observed(zb, obs):  # pragma: no cover - compiled
    """Indices of the non-NaN entries of ``zb`` into ``obs``; returns their count."""
    mo = 0
    for a in range(zb.shape[0]):
        if not math.isnan(zb[a]):
            obs[mo] = a
            mo += 1
    return mo


@njit(cache=True)
def _innovation(xb, zb, h, r, hp, yb, sb, blas):  # pragma: no cover - compiled
    """``y = z - H x`` (0 where z is missing) and ``S = hp H^T + R`` with ``hp = H P`` given (upper half,
    mirrored)."""
    n = xb.shape[0]
    m = h.shape[0]
    for a in range(m):
        acc = xb[0] * 0
        for k in range(n):
            acc += h[a, k] * xb[k]
        yb[a] = 0 if math.isnan(zb[a]) else zb[a] - acc
    if blas:
        np.dot(hp, h.T, sb)
        for a in range(m):
            for c in range(a, m):
                v = sb[a, c] + r[a, c]
                sb[a, c] = v
                sb[c, a] = v
        return
    for a in range(m):
        for c in range(a, m):
            acc = r[a, c]
            for k in range(n):
                acc += hp[a, k] * h[c, k]
            sb[a, c] = acc
            sb[c, a] = acc


@njit(cache=True)
def _gain(sb, yb, obs, mo, hp, sib, kb, chol, blas):  # pragma: no cover - compiled
    """From ``S`` restricted to the observed components: ``S^-1`` (into ``sib``, zero elsewhere), the gain
    ``K = (H P)^T S^-1`` (into ``kb`` (n, m), zero columns where missing), and ``(log det S, y^T S^-1 y)``.

    Returns ``quad < 0`` when ``S`` is not positive definite. A single component takes ``S^-1 = 1 / S`` (the
    form filterpy uses); more take ``S^-1`` from the Cholesky factor.
    """
    m = sb.shape[0]
    n = hp.shape[1]
    zero = sb[0, 0] * 0
    for a in range(m):
        for c in range(m):
            sib[a, c] = zero
        for i in range(n):
            kb[i, a] = zero
    logdet = 0.0
    if mo == 1:
        s = sb[obs[0], obs[0]]
        if not s > 0:
            return 0.0, -1.0
        sib[obs[0], obs[0]] = 1 / s
        logdet = math.log(s)
    else:
        for a in range(mo):  # Cholesky S_oo = L L^T into chol
            for c in range(a + 1):
                acc = sb[obs[a], obs[c]]
                for k in range(c):
                    acc -= chol[a, k] * chol[c, k]
                if a == c:
                    if not acc > 0:
                        return 0.0, -1.0
                    chol[a, a] = math.sqrt(acc)
                    logdet += 2.0 * math.log(chol[a, a])
                else:
                    chol[a, c] = acc / chol[c, c]
        for c in range(mo):  # L^-1 (lower) into rows mo..2mo-1 of chol, column by column
            for a in range(mo):
                if a < c:
                    chol[mo + a, c] = zero
                    continue
                acc = (1 if a == c else 0) + zero
                for k in range(c, a):
                    acc -= chol[a, k] * chol[mo + k, c]
                chol[mo + a, c] = acc / chol[a, a]
        for a in range(mo):  # S^-1 = L^-T L^-1
            for c in range(a, mo):
                acc = zero
                for k in range(c, mo):
                    acc += chol[mo + k, a] * chol[mo + k, c]
                sib[obs[a], obs[c]] = acc
                sib[obs[c], obs[a]] = acc
    if blas and mo == m:
        np.dot(hp.T, sib, kb)  # K = (H P)^T S^-1
    else:
        for i in range(n):  # K_o = (H_o P)^T S_oo^-1
            for a in range(mo):
                acc = zero
                for c in range(mo):
                    acc += hp[obs[c], i] * sib[obs[c], obs[a]]
                kb[i, obs[a]] = acc
    quad = 0.0
    for a in range(mo):
        for c in range(mo):
            quad += yb[obs[a]] * sib[obs[a], obs[c]] * yb[obs[c]]
    return logdet, max(quad, 0.0)


@njit(cache=True)
def _mean_update(xb, kb, yb):  # pragma: no cover - compiled
    n, m = kb.shape
    for i in range(n):
        acc = xb[0] * 0
        for a in range(m):
            acc += kb[i, a] * yb[a]
        xb[i] += acc


@njit(cache=True)
def update_one(xb, pb, zb, h, r, yb, sb, sib, kb, obs, hp, w1, kd, hk, d, chol, blas):  # pragma: no cover
    """Joseph-form update on the non-NaN entries of ``zb``; returns ``(log-likelihood, Mahalanobis, observed)``,
    with ``observed = -1`` when ``S`` is not positive definite.

    ``P <- (I - K H) P (I - K H)^T + K R K^T``. For any gain ``K`` this equals ``P - K (H P) + d K^T`` with
    ``d = K S - P H^T`` (the gain's departure from optimality, zero in exact arithmetic), which costs
    O(n^2 m) instead of O(n^3); ``H``, ``R``, ``S`` and ``K`` restricted to the observed components, the two
    halves of the result averaged. ``blas``: with every component observed, ``P - [K, -d] [H P; K^T]`` is one
    BLAS product.
    """
    n = xb.shape[0]
    m = h.shape[0]
    if blas:
        np.dot(h, pb, hp)
    else:
        for a in range(m):  # hp = H P (P symmetric: rows of P combined, contiguous)
            for k in range(n):
                hp[a, k] = 0
            for j in range(n):
                haj = h[a, j]
                if haj != 0:
                    for k in range(n):
                        hp[a, k] += haj * pb[j, k]
    _innovation(xb, zb, h, r, hp, yb, sb, blas)
    mo = _observed(zb, obs)
    if mo == 0:
        for a in range(m):
            for c in range(m):
                sib[a, c] = 0
            for i in range(n):
                kb[i, a] = 0
        return 0.0, 0.0, 0
    logdet, quad = _gain(sb, yb, obs, mo, hp, sib, kb, chol, blas)
    if quad < 0:
        return 0.0, 0.0, -1
    _mean_update(xb, kb, yb)
    if blas and mo == m:  # d = K_o S_oo - (H_o P)^T
        np.dot(kb, sb, d)
        for i in range(n):
            for a in range(m):
                d[i, a] -= hp[a, i]
    else:
        for i in range(n):
            for a in range(mo):
                acc = -hp[obs[a], i]
                for c in range(mo):
                    acc += kb[i, obs[c]] * sb[obs[c], obs[a]]
                d[i, a] = acc
    if blas and mo == m:
        for i in range(n):  # [K, -d] (n, 2m) and [H P; K^T] (2m, n)
            for a in range(m):
                kd[i, a] = kb[i, a]
                kd[i, m + a] = -d[i, a]
                hk[m + a, i] = kb[i, a]
        for a in range(m):
            for k in range(n):
                hk[a, k] = hp[a, k]
        np.dot(kd, hk, w1)
        tile = 32  # P <- P - w1, the halves averaged, in tiles (the transpose stays in cache)
        for i0 in range(0, n, tile):
            for j0 in range(i0, n, tile):
                for i in range(i0, min(i0 + tile, n)):
                    for j in range(max(i, j0), min(j0 + tile, n)):
                        v = 0.5 * ((pb[i, j] - w1[i, j]) + (pb[j, i] - w1[j, i]))
                        pb[i, j] = v
                        pb[j, i] = v
    else:
        for i in range(n):  # P - K_o (H_o P) + d K_o^T, both halves, averaged
            for j in range(i, n):
                acc_ij = pb[i, j]
                acc_ji = pb[j, i]
                for a in range(mo):
                    oa = obs[a]
                    acc_ij += d[i, a] * kb[j, oa] - kb[i, oa] * hp[oa, j]
                    acc_ji += d[j, a] * kb[i, oa] - kb[j, oa] * hp[oa, i]
                v = 0.5 * (acc_ij + acc_ji)
                pb[i, j] = v
                pb[j, i] = v
    ll = -0.5 * (mo * math.log(2.0 * math.pi) + logdet + quad)
    return ll, math.sqrt(quad), mo


@njit(cache=True)
def update_sqrt_one(xb, lb, zb, h, r, yb, sb, sib, kb, obs, hp, hl, ht, chol, blas):  # pragma: no cover - compiled
    """Square-root update: the mean as in the Joseph form (``S = (H L)(H L)^T + R``, positive definite by
    construction), the factor by Potter's rank-one updates on the whitened observed components
    (``h~ = L_R^-1 H_o``, ``phi = L^T h~``, ``L <- L - a g (L phi) phi^T`` with ``a = 1 / (1 + |phi|^2)``,
    ``g = 1 / (1 + sqrt(a))``), so ``P = L L^T`` stays positive semi-definite whatever the rounding.
    """
    n = xb.shape[0]
    m = h.shape[0]
    zero = xb[0] * 0
    if blas:
        np.dot(h, lb, hl)  # H L
        np.dot(hl, lb.T, hp)  # H P = (H L) L^T
    else:
        for a in range(m):  # hl = H L (m, n)
            for k in range(n):
                hl[a, k] = 0
            for j in range(n):
                haj = h[a, j]
                if haj != 0:
                    for k in range(n):
                        hl[a, k] += haj * lb[j, k]
        for a in range(m):  # hp = H P = (H L) L^T
            for i in range(n):
                acc = zero
                for k in range(n):
                    acc += hl[a, k] * lb[i, k]
                hp[a, i] = acc
    for a in range(m):  # S = (H L)(H L)^T + R, symmetric by construction
        for c in range(a, m):
            acc = r[a, c]
            for k in range(n):
                acc += hl[a, k] * hl[c, k]
            sb[a, c] = acc
            sb[c, a] = acc
    for a in range(m):
        acc = zero
        for k in range(n):
            acc += h[a, k] * xb[k]
        yb[a] = 0 if math.isnan(zb[a]) else zb[a] - acc
    mo = _observed(zb, obs)
    if mo == 0:
        for a in range(m):
            for c in range(m):
                sib[a, c] = 0
            for i in range(n):
                kb[i, a] = 0
        return 0.0, 0.0, 0
    logdet, quad = _gain(sb, yb, obs, mo, hp, sib, kb, chol, blas)
    if quad < 0:
        return 0.0, 0.0, -1
    _mean_update(xb, kb, yb)
    # whiten: R_oo = L_R L_R^T (Cholesky into the top of chol), ht = L_R^-1 H_o
    for a in range(mo):
        for c in range(a + 1):
            acc = r[obs[a], obs[c]]
            for k in range(c):
                acc -= chol[a, k] * chol[c, k]
            if a == c:
                if not acc > 0:
                    return 0.0, 0.0, -1
                chol[a, a] = math.sqrt(acc)
            else:
                chol[a, c] = acc / chol[c, c]
    for a in range(mo):
        for k in range(n):
            acc = h[obs[a], k]
            for c in range(a):
                acc -= chol[a, c] * ht[c, k]
            ht[a, k] = acc / chol[a, a]
    phi = hl[0]  # phi and L phi reuse a row of hl and of hp, both done with by now
    lphi = hp[0]
    for a in range(mo):
        for k in range(n):
            phi[k] = 0
        for i in range(n):  # phi = L^T h~
            hi = ht[a, i]
            if hi != 0:
                for k in range(n):
                    phi[k] += hi * lb[i, k]
        s = 1 + zero
        for k in range(n):
            s += phi[k] * phi[k]
        alpha = 1 / s
        coef = alpha / (1 + math.sqrt(alpha))
        for i in range(n):
            acc = zero
            for k in range(n):
                acc += lb[i, k] * phi[k]
            lphi[i] = acc
        for i in range(n):
            g = coef * lphi[i]
            for k in range(n):
                lb[i, k] -= g * phi[k]
    ll = -0.5 * (mo * math.log(2.0 * math.pi) + logdet + quad)
    return ll, math.sqrt(quad), mo


@njit(cache=True)
def gram(lb, out):  # pragma: no cover - compiled
    """``out = L L^T`` (symmetric: the upper half computed, mirrored)."""
    n = lb.shape[0]
    for i in range(n):
        for j in range(i, n):
            acc = lb[0, 0] * 0
            for k in range(n):
                acc += lb[i, k] * lb[j, k]
            out[i, j] = acc
            out[j, i] = acc


@njit(cache=True)
def predict_batch(x, p, f, ft, q, bmat, u, a2, identity, noiseless, sqrt_form, blas):  # pragma: no cover
    """One predict of every filter; ``u``: (1 or B, k)."""
    nb, n = x.shape
    wx = np.empty(n, x.dtype)
    w1 = np.empty((n, n), x.dtype)
    w2 = np.empty((n, n), x.dtype)
    pre = np.empty((n, 2 * n), x.dtype) if sqrt_form else np.empty((1, 1), x.dtype)
    sa = math.sqrt(a2)
    for b in range(nb):
        ub = u[b] if u.shape[0] == nb else u[0]
        if sqrt_form:
            predict_sqrt_one(x[b], p[b], f, ft, q, bmat, ub, sa, identity, noiseless, blas, wx, w1, pre)
        else:
            predict_one(x[b], p[b], f, ft, q, bmat, ub, a2, identity, blas, wx, w1, w2)


@njit(cache=True)
def update_batch(x, p, z, h, r, y, s, si, k, ll, maha, nobs, sqrt_form):  # pragma: no cover - compiled
    """One update of every filter on ``z``: (B, m), NaN = missing. Returns OK or the index of the first filter
    whose innovation covariance is not positive definite; such filters are left as predicted, the others updated."""
    nb, n = x.shape
    m = h.shape[0]
    obs = np.empty(m, np.int64)
    hp = np.empty((m, n), x.dtype)
    hl = np.empty((m, n), x.dtype)
    ht = np.empty((m, n), x.dtype)
    w1 = np.empty((n, n), x.dtype)
    kd = np.empty((n, 2 * m), x.dtype)
    hk = np.empty((2 * m, n), x.dtype)
    d = np.empty((n, m), x.dtype)
    chol = np.empty((2 * m, m), x.dtype)
    blas = n >= BLAS_MIN
    failed = OK
    for b in range(nb):
        if sqrt_form:
            lb_, mb_, ob_ = update_sqrt_one(
                x[b], p[b], z[b], h, r, y[b], s[b], si[b], k[b], obs, hp, hl, ht, chol, blas
            )
        else:
            lb_, mb_, ob_ = update_one(
                x[b], p[b], z[b], h, r, y[b], s[b], si[b], k[b], obs, hp, w1, kd, hk, d, chol, blas
            )
        if ob_ < 0:
            if failed == OK:
                failed = b
            ob_ = 0
            lb_ = 0.0
            mb_ = 0.0
        ll[b] = lb_
        maha[b] = mb_
        nobs[b] = ob_
    return failed


@njit(cache=True)
def filter_sequence(
    x,
    p,
    zs,
    fs,
    fts,
    qs,
    hs,
    rs,
    bs,
    us,
    a2,
    identity,
    noiseless,
    sqrt_form,
    blas,
    update_first,
    means,
    covs,
    pmeans,
    pcovs,
    lls,
    mahas,
    ys,
    ss,
    nobs,
    sis,
    ks,
    last,
):  # pragma: no cover - compiled
    """Predict and update (or update then predict) for each of ``zs``: (N, B, m).

    Model stacks ``fs``/``fts``/``qs`` (1 or N, n, n), ``hs`` (1 or N, m, n), ``rs`` (1 or N, m, m), ``bs``
    (1 or N, n, k), ``us`` (1 or N, 1 or B, k). Writes per step and filter: filtered means ``means`` (N, B, n),
    predicted means ``pmeans``, the covariances ``covs``/``pcovs`` (N, B, n, n) when their first axis is N (as
    ``P``: the factor's ``L L^T`` in square-root form), log-likelihoods, Mahalanobis distances, innovations ``ys``
    (N, B, m), innovation covariances ``ss`` (N, B, m, m), observed counts; ``sis`` (B, m, m) and ``ks`` (B, n, m)
    end with each filter's last ``S^-1`` and gain; ``last`` (4, B, n, n) with its last prior and posterior state:
    ``last[0, b, 0]`` the prior mean, ``last[1, b]`` the prior ``p``, ``last[2, b, 0]`` and ``last[3, b]`` the
    posterior ones (``p`` as the kernel carries it: the factor in square-root form). Returns OK or the failed step.
    """
    n_steps, nb, m = zs.shape
    n = x.shape[1]
    keep = covs.shape[0] == n_steps
    wx = np.empty(n, x.dtype)
    w1 = np.empty((n, n), x.dtype)
    w2 = np.empty((n, n), x.dtype)
    pre = np.empty((n, 2 * n), x.dtype) if sqrt_form else np.empty((1, 1), x.dtype)
    obs = np.empty(m, np.int64)
    hp = np.empty((m, n), x.dtype)
    hl = np.empty((m, n), x.dtype)
    ht = np.empty((m, n), x.dtype)
    d = np.empty((n, m), x.dtype)
    kd = np.empty((n, 2 * m), x.dtype)
    hk = np.empty((2 * m, n), x.dtype)
    chol = np.empty((2 * m, m), x.dtype)
    sa = math.sqrt(a2)
    final = n_steps - 1
    for t in range(n_steps):
        f = fs[t if fs.shape[0] > 1 else 0]
        ft = fts[t if fts.shape[0] > 1 else 0]
        q = qs[t if qs.shape[0] > 1 else 0]
        h = hs[t if hs.shape[0] > 1 else 0]
        r = rs[t if rs.shape[0] > 1 else 0]
        bmat = bs[t if bs.shape[0] > 1 else 0]
        ut = us[t if us.shape[0] > 1 else 0]
        for b in range(nb):
            xb = x[b]
            pb = p[b]
            ub = ut[b] if ut.shape[0] == nb else ut[0]
            si = sis[b]
            kb = ks[b]
            for phase in range(2):
                if (phase == 0) != update_first:  # predict
                    if sqrt_form:
                        predict_sqrt_one(xb, pb, f, ft, q, bmat, ub, sa, identity, noiseless, blas, wx, w1, pre)
                    else:
                        predict_one(xb, pb, f, ft, q, bmat, ub, a2, identity, blas, wx, w1, w2)
                    for i in range(n):
                        pmeans[t, b, i] = xb[i]
                    if t == final:
                        for i in range(n):
                            last[0, b, 0, i] = xb[i]
                            for j in range(n):
                                last[1, b, i, j] = pb[i, j]
                    if keep:
                        if sqrt_form:
                            gram(pb, pcovs[t, b])
                        else:
                            for i in range(n):
                                for j in range(n):
                                    pcovs[t, b, i, j] = pb[i, j]
                else:  # update
                    if sqrt_form:
                        ll, mh, mo = update_sqrt_one(xb, pb, zs[t, b], h, r, ys[t, b], ss[t, b], si, kb, obs, hp,
                                                     hl, ht, chol, blas)  # fmt: skip
                    else:
                        ll, mh, mo = update_one(xb, pb, zs[t, b], h, r, ys[t, b], ss[t, b], si, kb, obs, hp, w1,
                                                kd, hk, d, chol, blas)  # fmt: skip
                    if mo < 0:
                        return t
                    lls[t, b] = ll
                    mahas[t, b] = mh
                    nobs[t, b] = mo
                    for i in range(n):
                        means[t, b, i] = xb[i]
                    if t == final:
                        for i in range(n):
                            last[2, b, 0, i] = xb[i]
                            for j in range(n):
                                last[3, b, i, j] = pb[i, j]
                    if keep:
                        if sqrt_form:
                            gram(pb, covs[t, b])
                        else:
                            for i in range(n):
                                for j in range(n):
                                    covs[t, b, i, j] = pb[i, j]
    return OK
