"""Exact tests that close the mutation-testing gaps of the dsp numba kernels (issue 18).

``_kernels`` (LMS family on a delay line and on regressors, RLS, ``row_power``, ``pick``), ``_family_kernels``
(adapted-step, affine-projection and online-centred filters) and ``_kalman_kernels`` (predict, update, whole
sequences, Joseph and square-root forms) are called directly on short inputs (2 to 5 channels, 2 to 4 taps or
states, tens of samples, so that they run fast uncompiled too) and compared with independent numpy
re-implementations of the textbook recursions written here (padasip's ``FilterOCNLMS`` for the online-centred
filter). Every comparison is exact or to rounding: 1e-12 relative in float64 (different summation orders),
1e-5 in float32; no statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import padasip as pa
import pytest

from noisygrad.dsp import _family_kernels as fk
from noisygrad.dsp import _kalman_kernels as kk
from noisygrad.dsp import _kernels as k

RTOL = 1e-12
ATOL = 1e-13


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------------- _kernels


def test_fastmath_flags_keep_ieee_nan_and_inf() -> None:
    """The documented fastmath flags: reassociation and contraction only (no nnan/ninf), in both kernel modules."""
    assert {"reassoc", "contract"} == k._FAST
    assert {"reassoc", "contract"} == fk._FAST


def test_pick_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    assert k.PARALLEL_WORK == 2**18
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    assert k.pick("s", "p", 2, k.PARALLEL_WORK) == "p"
    assert k.pick("s", "p", 2, k.PARALLEL_WORK - 1) == "s"
    assert k.pick("s", "p", 1, 10 * k.PARALLEL_WORK) == "s"
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert k.pick("s", "p", 2, k.PARALLEL_WORK) == "s"


def _phi_ref(err: float, kind: int, p1: float, p2: float) -> float:
    if kind == 0:
        return err
    if kind == 1:
        return err**3
    if kind == 2:
        return float(np.sign(err))
    if kind == 3:
        return math.tanh(p1 * err)
    mag = abs(err)
    if mag == 0:
        return 0.0
    return p1 * p2 * math.exp(-p1 * mag**p2) * mag ** (p2 - 1) * math.copysign(1.0, err)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_phi_each_kind(kind: int) -> None:
    assert (k.PHI_LINEAR, k.PHI_CUBE, k.PHI_SIGN, k.PHI_TANH, k.PHI_GMCC) == (0, 1, 2, 3, 4)
    for err in (-1.7, -0.3, 0.0, 0.4, 2.5):
        got = k._phi(np.float64(err), kind, np.float64(0.7), np.float64(1.6), np.float64(1.0))
        assert got == pytest.approx(_phi_ref(err, kind, 0.7, 1.6), rel=1e-14, abs=0.0)
    assert k._sign(np.float64(-2.0), 1.0, 0.0) == -1.0
    assert k._sign(np.float64(0.0), 1.0, 0.0) == 0.0
    assert k._sign(np.float64(3.0), 1.0, 0.0) == 1.0


def _lms_ref(w, u, d, mu, eps, normalized, kind, p1, p2, signreg):  # type: ignore[no-untyped-def]
    """One channel of the LMS family on regressors ``u`` (N, L): returns (w, y, e, hist)."""
    w = np.array(w, dtype=np.float64)
    ys, es, hs = [], [], []
    for uk, dk in zip(u, d, strict=True):
        hs.append(w.copy())
        y = float(w @ uk)
        e = dk - y
        step = mu * _phi_ref(e, kind, p1, p2)
        if normalized:
            step /= eps + float(uk @ uk)
        w = w + step * (np.sign(uk) if signreg else uk)
        ys.append(y)
        es.append(e)
    return w, np.array(ys), np.array(es), np.array(hs)


def _delay_regressors(tail: np.ndarray, x: np.ndarray, taps: int) -> np.ndarray:
    """Regressors ``u_k = [x_k, x_{k-1}, ..., x_{k-L+1}]`` with ``tail`` (oldest first) before ``x``."""
    full = np.concatenate([tail, x])
    return np.array([full[k : k + taps][::-1] for k in range(len(x))])


CASES = [  # (normalized, kind, signreg)
    (False, k.PHI_LINEAR, False),
    (True, k.PHI_LINEAR, False),
    (False, k.PHI_CUBE, False),
    (False, k.PHI_SIGN, True),
    (True, k.PHI_TANH, False),
    (False, k.PHI_GMCC, True),
]


def _signal_data(channels: int, n: int, taps: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(channels, taps)) * 0.3
    tail = rng.normal(size=(channels, taps - 1))
    x = rng.normal(size=(channels, n))
    x[:, n - 2] = 0.0  # a zero input in every channel's last two windows: sign(0) = 0 in the sign-regressor update
    d = rng.normal(size=(channels, n))
    return w, tail, x, d


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kernel", ["lms_signal", "lms_signal_parallel"])
def test_lms_signal_matches_reference(case, kernel: str) -> None:  # type: ignore[no-untyped-def]
    normalized, kind, signreg = case
    channels, n, taps = 3, 7, 3
    w, tail, x, d = _signal_data(channels, n, taps, 5)
    mu, eps, p1, p2 = 0.05, 0.3, 0.8, 1.5
    w0, tail0 = w.copy(), tail.copy()
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    getattr(k, kernel)(w, tail, x, d, mu, eps, normalized, kind, p1, p2, signreg, y, e, hist)
    for c in range(channels):
        u = _delay_regressors(tail0[c], x[c], taps)
        rw, ry, re, rh = _lms_ref(w0[c], u, d[c], mu, eps, normalized, kind, p1, p2, signreg)
        _close(w[c], rw)
        _close(y[c], ry)
        _close(e[c], re)
        _close(hist[c], rh)
        _close(tail[c], np.concatenate([tail0[c], x[c]])[-(taps - 1) :])


def test_lms_signal_without_history_and_short_blocks() -> None:
    """``hist`` of length 0 records nothing; a block shorter than the tail keeps the older tail samples."""
    channels, taps = 2, 4
    w, tail, x, d = _signal_data(channels, 2, taps, 7)
    w0, tail0 = w.copy(), tail.copy()
    y, e = np.zeros((channels, 2)), np.zeros((channels, 2))
    k.lms_signal(w, tail, x, d, 0.1, 0.0, False, k.PHI_LINEAR, 0.0, 0.0, False, y, e, np.zeros((channels, 0, taps)))
    for c in range(channels):
        rw, ry, re, _ = _lms_ref(w0[c], _delay_regressors(tail0[c], x[c], taps), d[c], 0.1, 0, False, 0, 0, 0, False)
        _close(w[c], rw)
        _close(y[c], ry)
        _close(e[c], re)
        _close(tail[c], np.concatenate([tail0[c], x[c]])[-(taps - 1) :])


def test_lms_signal_one_channel_one_sample() -> None:
    w, tail = np.array([[0.5, -0.25]]), np.array([[2.0]])
    x, d = np.array([[1.0]]), np.array([[3.0]])
    y, e, hist = np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1, 2))
    k.lms_signal(w, tail, x, d, 0.1, 0.0, False, 0, 0.0, 0.0, False, y, e, hist)
    # y = 0.5 * 1 - 0.25 * 2 = 0, e = 3, w += 0.3 * [1, 2]
    assert y[0, 0] == 0.0
    assert e[0, 0] == 3.0
    _close(w, np.array([[0.8, 0.35]]))
    _close(hist, np.array([[[0.5, -0.25]]]))
    assert tail[0, 0] == 1.0


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kernel", ["lms_signal_quad", "lms_signal_quad_parallel"])
@pytest.mark.parametrize("channels", [4, 5, 6, 7])  # the last group of four holds 4, 1, 2 and 3 channels
def test_lms_signal_quad_float32(case, kernel: str, channels: int) -> None:  # type: ignore[no-untyped-def]
    normalized, kind, signreg = case
    n, taps = 6, 3
    w, tail, x, d = _signal_data(channels, n, taps, 11)
    w, tail, x, d = (a.astype(np.float32) for a in (w, tail, x, d))
    w0, tail0 = w.astype(np.float64), tail.astype(np.float64)
    f32 = np.float32
    y, e = np.zeros((channels, n), f32), np.zeros((channels, n), f32)
    hist = np.zeros((channels, n, taps), f32)
    getattr(k, kernel)(w, tail, x, d, f32(0.05), f32(0.3), normalized, kind, f32(0.8), f32(1.5), signreg, y, e, hist)
    for c in range(channels):
        u = _delay_regressors(tail0[c], x[c].astype(np.float64), taps)
        rw, ry, re, rh = _lms_ref(w0[c], u, d[c].astype(np.float64), 0.05, 0.3, normalized, kind, 0.8, 1.5, signreg)
        _close(w[c], rw, 1e-5, 1e-5)
        _close(y[c], ry, 1e-5, 1e-5)
        _close(e[c], re, 1e-5, 1e-5)
        _close(hist[c], rh, 1e-5, 1e-5)
        assert np.array_equal(tail[c], np.concatenate([tail0[c], x[c]])[-(taps - 1) :].astype(f32))
    assert w.dtype == y.dtype == e.dtype == np.float32


def test_lms_signal_kernels_by_dtype() -> None:
    assert k.lms_signal_kernels(np.float32) == (k.lms_signal_quad, k.lms_signal_quad_parallel)
    assert k.lms_signal_kernels(np.float64) == (k.lms_signal, k.lms_signal_parallel)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kernel", ["lms_regressors", "lms_regressors_parallel"])
def test_lms_regressors_matches_reference(case, kernel: str) -> None:  # type: ignore[no-untyped-def]
    normalized, kind, signreg = case
    channels, n, taps = 2, 6, 3
    rng = np.random.default_rng(3)
    w = rng.normal(size=(channels, taps)) * 0.3
    u = rng.normal(size=(channels, n, taps))
    u[:, 1, 0] = 0.0  # sign(0) = 0 in the sign-regressor update
    d = rng.normal(size=(channels, n))
    w0 = w.copy()
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    getattr(k, kernel)(w, u, d, 0.05, 0.3, normalized, kind, 0.8, 1.5, signreg, y, e, hist)
    for c in range(channels):
        rw, ry, re, rh = _lms_ref(w0[c], u[c], d[c], 0.05, 0.3, normalized, kind, 0.8, 1.5, signreg)
        _close(w[c], rw)
        _close(y[c], ry)
        _close(e[c], re)
        _close(hist[c], rh)
    # no history: nothing recorded, same weights
    w2 = w0.copy()
    getattr(k, kernel)(w2, u, d, 0.05, 0.3, normalized, kind, 0.8, 1.5, signreg, y, e, np.zeros((channels, 0, taps)))
    _close(w2, w)


def test_row_power() -> None:
    x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    assert k.row_power(x) == (10.0, True)
    assert k.row_power(np.zeros((2, 3))) == (0.0, True)
    bad = x.copy()
    bad[1, 0] = np.nan
    assert k.row_power(bad) == (5.0, False)
    bad[0, 1] = np.inf
    assert k.row_power(bad) == (0.5, False)


def _rls_ref(w, p, u, d, lam):  # type: ignore[no-untyped-def]
    w, p = w.copy(), p.copy()
    ys, es, hs = [], [], []
    for uk, dk in zip(u, d, strict=True):
        hs.append(w.copy())
        pi = p @ uk
        den = lam + uk @ pi
        y = w @ uk
        e = dk - y
        w = w + pi * e / den
        p = (p - np.outer(pi, pi) / den) / lam
        ys.append(y)
        es.append(e)
    return w, p, np.array(ys), np.array(es), np.array(hs)


def _rls_float32_by_hand(w, p, u, d, lam):  # type: ignore[no-untyped-def]
    """The kernel's recursion in its own order of operations, each one rounded to float32 (numpy float32 scalars)."""
    f32 = np.float32
    w, p = w.copy(), p.copy()
    lam, inv_lam, taps = f32(lam), f32(1) / f32(lam), len(w)
    for uk, dk in zip(u, d, strict=True):
        pi = np.zeros(taps, f32)
        for j in range(taps):
            for i in range(taps):
                pi[i] = pi[i] + p[j, i] * uk[j]
        den, acc = lam, f32(0)
        for i in range(taps):
            den = den + uk[i] * pi[i]
            acc = acc + w[i] * uk[i]
        g = (dk - acc) * (f32(1) / den)
        w = w + pi * g
        p = (p - np.outer(pi, pi) * (f32(1) / den)) * inv_lam
    return w, p


@pytest.mark.parametrize("kernel", ["rls_regressors", "rls_regressors_parallel"])
def test_rls_in_float32_is_a_float32_recursion(kernel: str) -> None:
    # every intermediate in float32, as the arrays are: bit for bit the by-hand float32 recursion (a float64
    # intermediate, such as pi = P u, would round differently in the last bits within a few steps)
    rng = np.random.default_rng(9)
    f32, taps, n, lam = np.float32, 4, 40, 0.99
    w = rng.normal(size=(1, taps)).astype(f32)
    a = rng.normal(size=(taps, taps))
    p = (a @ a.T + np.eye(taps)).astype(f32)[None]
    u = rng.normal(size=(1, n, taps)).astype(f32)
    d = rng.normal(size=(1, n)).astype(f32)
    expected_w, expected_p = _rls_float32_by_hand(w[0], p[0], u[0], d[0], lam)
    y, e, hist = np.zeros((1, n), f32), np.zeros((1, n), f32), np.zeros((1, 0, taps), f32)
    getattr(k, kernel)(w, p, u, d, f32(lam), f32(1) / f32(lam), y, e, hist)
    assert w.dtype == p.dtype == np.float32
    np.testing.assert_array_equal(w[0], expected_w)
    np.testing.assert_array_equal(p[0], expected_p)


@pytest.mark.parametrize("kernel", ["rls_regressors", "rls_regressors_parallel"])
def test_rls_matches_reference(kernel: str) -> None:
    channels, n, taps, lam = 2, 7, 3, 0.97
    rng = np.random.default_rng(8)
    w = rng.normal(size=(channels, taps))
    a = rng.normal(size=(channels, taps, taps))
    p = np.einsum("bij,bkj->bik", a, a) + np.eye(taps)
    u = rng.normal(size=(channels, n, taps))
    d = rng.normal(size=(channels, n))
    w0, p0 = w.copy(), p.copy()
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    getattr(k, kernel)(w, p, u, d, lam, 1 / lam, y, e, hist)
    for c in range(channels):
        rw, rp, ry, re, rh = _rls_ref(w0[c], p0[c], u[c], d[c], lam)
        _close(w[c], rw, 1e-11)
        _close(p[c], rp, 1e-11)
        _close(y[c], ry, 1e-11)
        _close(e[c], re, 1e-11)
        _close(hist[c], rh)
        assert np.array_equal(p[c], p[c].T)
    w2, p2 = w0.copy(), p0.copy()
    getattr(k, kernel)(w2, p2, u, d, lam, 1 / lam, y, e, np.zeros((channels, 0, taps)))
    assert np.array_equal(w2, w)
    assert np.array_equal(p2, p)


# -------------------------------------------------------------------------------------------- _family_kernels


def _adapted_ref(rule, w, u, d, mu, rho, a, le, st, lu, fi):  # type: ignore[no-untyped-def]
    """The docstring's four rules, one channel; returns (w, y, e, hist, last_e, step, last_u, fi)."""
    w, lu, fi = w.copy(), lu.copy(), fi.copy()
    ys, es, hs = [], [], []
    for uk, dk in zip(u, d, strict=True):
        hs.append(w.copy())
        y = w @ uk
        err = dk - y
        if rule == 3:  # GNGD
            st = st - rho * mu * err * le * (uk @ lu) / (lu @ lu + st) ** 2
            g = mu * err / (st + uk @ uk)
        elif rule == 0:  # Mathews
            st = st + rho * err * le * (lu @ uk)
            g = st * err
        else:
            # Benveniste (fi uses the previous step), or Ang
            fi = fi - lu * (st * (lu @ fi)) + le * lu if rule == 1 else a * fi + le * lu
            st = st + rho * err * (lu @ fi)
            g = st * err
        w = w + g * uk
        lu = uk.copy()
        le = err
        ys.append(y)
        es.append(err)
    return w, np.array(ys), np.array(es), np.array(hs), le, st, lu, fi


@pytest.mark.parametrize("rule", [fk.MATHEWS, fk.BENVENISTE, fk.ANG, fk.GNGD])
@pytest.mark.parametrize("kernel", ["adapted_step_regressors", "adapted_step_regressors_parallel"])
def test_adapted_step_matches_reference(rule: int, kernel: str) -> None:
    assert (fk.MATHEWS, fk.BENVENISTE, fk.ANG, fk.GNGD) == (0, 1, 2, 3)
    channels, n, taps = 2, 7, 3
    rng = np.random.default_rng(21 + rule)
    w = rng.normal(size=(channels, taps)) * 0.2
    u = rng.normal(size=(channels, n, taps))
    d = rng.normal(size=(channels, n))
    last_e = rng.normal(size=channels)
    step = np.array([0.05, 0.08]) if rule != fk.GNGD else np.array([1.2, 0.7])
    last_u = rng.normal(size=(channels, taps))
    fi = rng.normal(size=(channels, taps)) * 0.1
    mu, rho, a = 0.07, 0.02, 0.9
    start = [arr.copy() for arr in (w, last_e, step, last_u, fi)]
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    getattr(fk, kernel)(rule, w, u, d, mu, rho, a, last_e, step, last_u, fi, y, e, hist)
    w0, le0, st0, lu0, fi0 = start
    for c in range(channels):
        rw, ry, re, rh, rle, rst, rlu, rfi = _adapted_ref(
            rule, w0[c], u[c], d[c], mu, rho, a, le0[c], st0[c], lu0[c], fi0[c]
        )
        _close(w[c], rw)
        _close(y[c], ry)
        _close(e[c], re)
        _close(hist[c], rh)
        _close(last_e[c], rle)
        _close(step[c], rst)
        _close(last_u[c], rlu)
        if rule in (fk.BENVENISTE, fk.ANG):
            _close(fi[c], rfi)
        else:
            _close(fi[c], fi0[c])
    w2 = start[0].copy()
    le, st, lu, f2 = (arr.copy() for arr in start[1:])
    getattr(fk, kernel)(rule, w2, u, d, mu, rho, a, le, st, lu, f2, y, e, np.zeros((channels, 0, taps)))
    _close(w2, w)


def test_dot_and_cholesky_solve() -> None:
    assert fk._dot(np.array([1.0, 2.0, 3.0]), np.array([4.0, -1.0, 0.5])) == 3.5
    a = np.array([[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]])
    rhs = np.array([1.0, -2.0, 0.5])
    out = np.zeros(3)
    fact = a.copy()
    fk._cholesky_solve(fact, rhs, out)
    _close(out, np.linalg.solve(a, rhs))
    _close(np.tril(fact), np.linalg.cholesky(a))
    # a negative pivot, a zero second pivot, a zero first pivot: NaN throughout
    for bad in ([[1.0, 2.0], [2.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]):
        bad = np.array(bad)
        out = np.zeros(2)
        with np.errstate(all="ignore"):
            fk._cholesky_solve(bad.copy(), np.array([1.0, 2.0]), out)
        assert np.isnan(out).all(), (bad, out)


def _apa_ref(w, u, d, mu, eps, umem, dmem):  # type: ignore[no-untyped-def]
    w, um, dm = w.copy(), umem.copy(), dmem.copy()
    ys, es, hs = [], [], []
    for uk, dk in zip(u, d, strict=True):
        hs.append(w.copy())
        um = np.vstack([uk[None], um[:-1]])
        dm = np.concatenate([[dk], dm[:-1]])
        err = dm - um @ w
        ys.append(um[0] @ w)
        es.append(err[0])
        w = w + mu * um.T @ np.linalg.solve(um @ um.T + eps * np.eye(len(dm)), err)
    return w, np.array(ys), np.array(es), np.array(hs), um, dm


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("kernel", ["affine_projection_regressors", "affine_projection_regressors_parallel"])
def test_affine_projection_matches_reference(order: int, kernel: str) -> None:
    channels, n, taps = 2, 6, 4
    rng = np.random.default_rng(30 + order)
    w = rng.normal(size=(channels, taps)) * 0.2
    u = rng.normal(size=(channels, n, taps))
    d = rng.normal(size=(channels, n))
    umem = rng.normal(size=(channels, order, taps))
    dmem = rng.normal(size=(channels, order))
    mu, eps = 0.6, 0.05
    w0, um0, dm0 = w.copy(), umem.copy(), dmem.copy()
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    getattr(fk, kernel)(w, u, d, mu, eps, umem, dmem, y, e, hist)
    for c in range(channels):
        rw, ry, re, rh, rum, rdm = _apa_ref(w0[c], u[c], d[c], mu, eps, um0[c], dm0[c])
        _close(w[c], rw, 1e-10, 1e-12)
        _close(y[c], ry, 1e-10, 1e-12)
        _close(e[c], re, 1e-10, 1e-12)
        _close(hist[c], rh, 1e-10, 1e-12)
        assert np.array_equal(umem[c], rum)
        assert np.array_equal(dmem[c], rdm)
    w2, um2, dm2 = w0.copy(), um0.copy(), dm0.copy()
    getattr(fk, kernel)(w2, u, d, mu, eps, um2, dm2, y, e, np.zeros((channels, 0, taps)))
    _close(w2, w)


@pytest.mark.parametrize("kernel", ["online_centred_regressors", "online_centred_regressors_parallel"])
@pytest.mark.parametrize(("mem", "channels"), [(2, 3), (3, 3), (4, 3), (3, 1)])
def test_online_centred_matches_padasip(kernel: str, mem: int, channels: int) -> None:
    """Against padasip's FilterOCNLMS (predict, then learning_rule) over several wraps of the memory, run in two
    blocks so that the carried state (memory, sums, position) is exercised too; one channel, or more than taps."""
    n, taps, mu, eps = 13, 2, 0.4, 0.2
    rng = np.random.default_rng(40 + mem)
    u = rng.normal(size=(channels, n, taps)) + 0.5
    d = rng.normal(size=(channels, n)) + 1.0
    w = np.zeros((channels, taps))
    mem_x, mem_d = np.zeros((channels, mem, taps)), np.zeros((channels, mem))
    sum_x, sum_d, pos = np.zeros((channels, taps)), np.zeros(channels), np.zeros(2, np.int64)
    y, e, hist = np.zeros((channels, n)), np.zeros((channels, n)), np.zeros((channels, n, taps))
    kern = getattr(fk, kernel)
    cut = 5
    parts = []
    for a, b in ((0, cut), (cut, n)):
        ya, ea, ha = np.zeros((channels, b - a)), np.zeros((channels, b - a)), np.zeros((channels, b - a, taps))
        kern(w, u[:, a:b].copy(), d[:, a:b].copy(), mu, eps, mem_x, mem_d, sum_x, sum_d, pos, ya, ea, ha)
        parts.append((ya, ea, ha))
    y = np.concatenate([p[0] for p in parts], axis=1)
    e = np.concatenate([p[1] for p in parts], axis=1)
    hist = np.concatenate([p[2] for p in parts], axis=1)
    for c in range(channels):
        f = pa.filters.FilterOCNLMS(taps, mu=mu, eps=eps, mem=mem, w="zeros")
        for j in range(n):
            _close(hist[c, j], f.w)
            yj = f.predict(u[c, j])
            ej = d[c, j] - yj
            f.w = f.w + f.learning_rule(ej, u[c, j])
            _close(y[c, j], yj)
            _close(e[c, j], ej)
        _close(w[c], f.w)
        _close(mem_x[c], f.mem_x)
        _close(mem_d[c], f.mem_d)
        assert list(pos) == [f.mem_idx, 0 if f.mem_empty else 1]
    # the running sums are the memory's column sums
    _close(sum_x, mem_x.sum(axis=1))
    _close(sum_d, mem_d.sum(axis=1))


def test_online_centred_sums_are_exact_after_each_wrap() -> None:
    """With ``mem = 2`` every sample wraps the position, so the sums are recomputed from the memory after each one:
    bit-equal to a plain sum of its rows even after a sample 1e8 times larger has passed through (a running sum
    alone would keep its rounding)."""
    taps, mem, n = 2, 2, 6
    rng = np.random.default_rng(4)
    u = rng.normal(size=(1, n, taps))
    u[0, 0] *= 1e8
    d = rng.normal(size=(1, n))
    w = np.zeros((1, taps))
    mem_x, mem_d = np.zeros((1, mem, taps)), np.zeros((1, mem))
    sum_x, sum_d, pos = np.zeros((1, taps)), np.zeros(1), np.zeros(2, np.int64)
    for j in range(n):
        y, e, hist = np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 0, taps))
        fk.online_centred_regressors(w, u[:, j : j + 1].copy(), d[:, j : j + 1].copy(), 0.5, 0.1, mem_x, mem_d,
                                     sum_x, sum_d, pos, y, e, hist)  # fmt: skip
        assert sum_x[0].tolist() == [mem_x[0, 0, i] + mem_x[0, 1, i] for i in range(taps)]
        assert sum_d[0] == mem_d[0, 0] + mem_d[0, 1]


def test_means_before_the_memory_fills() -> None:
    mx = np.full(2, 9.0)
    sum_x, mem_d = np.array([3.0, 6.0]), np.array([1.0, 2.0, 4.0])
    assert fk._means(0, False, 3, sum_x, 7.0, mem_d, mx) == 0.0
    assert list(mx) == [0.0, 0.0]
    assert fk._means(2, False, 3, sum_x, 7.0, mem_d, mx) == 3.5
    assert list(mx) == [1.0, 2.0]
    assert fk._means(1, True, 3, sum_x, 7.0, mem_d, mx) == 2.5
    assert list(mx) == [1.0, 2.0]


# -------------------------------------------------------------------------------------------- _kalman_kernels


def _spd(rng: np.random.Generator, n: int, shift: float = 0.5) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return a @ a.T / n + shift * np.eye(n)


def _kalman_ref(x, p, zs, fs, qs, hs, rs, bs, us, a2, update_first):  # type: ignore[no-untyped-def]
    """Textbook Kalman filter (one filter; NaN entries of z missing): per step the predicted and filtered means and
    covariances, log-likelihood, Mahalanobis distance, innovation (0 where missing), S (all components), the
    observed count, S^-1 and gain (zero where missing)."""
    out = []
    x, p = x.copy(), p.copy()
    for t, z in enumerate(zs):
        f, q, h, r, bm, u = (s[t if len(s) > 1 else 0] for s in (fs, qs, hs, rs, bs, us))
        rec = {}
        for phase in ("update", "predict") if update_first else ("predict", "update"):
            if phase == "predict":
                x = f @ x + bm @ u
                p = a2 * f @ p @ f.T + q
                rec["pm"], rec["pc"] = x.copy(), p.copy()
            else:
                m = h.shape[0]
                o = np.flatnonzero(~np.isnan(z))
                s_full = h @ p @ h.T + r
                innov = np.where(np.isnan(z), 0.0, z - h @ x)
                si, kg = np.zeros((m, m)), np.zeros((p.shape[0], m))
                ll = maha = 0.0
                if len(o):
                    ho, so = h[o], s_full[np.ix_(o, o)]
                    soi = np.linalg.inv(so)
                    ko = p @ ho.T @ soi
                    x = x + ko @ innov[o]
                    ikh = np.eye(len(x)) - ko @ ho
                    p = ikh @ p @ ikh.T + ko @ r[np.ix_(o, o)] @ ko.T
                    quad = innov[o] @ soi @ innov[o]
                    ll = -0.5 * (len(o) * math.log(2 * math.pi) + np.linalg.slogdet(so)[1] + quad)
                    maha = math.sqrt(quad)
                    si[np.ix_(o, o)] = soi
                    kg[:, o] = ko
                rec.update(m=x.copy(), c=p.copy(), ll=ll, maha=maha, y=innov, s=s_full, n=len(o), si=si, k=kg)
        out.append(rec)
    return out


def _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, a2, *, sqrt_form, blas, update_first, keep=True):  # type: ignore[no-untyped-def]
    n_steps, nb, m = zs.shape
    n = x.shape[1]
    identity = all(np.array_equal(f, np.eye(n)) for f in fs)
    noiseless = not np.any(qs)
    fts = np.ascontiguousarray(np.swapaxes(fs, 1, 2))
    kc = n_steps if keep else 0
    res = {
        "means": np.zeros((n_steps, nb, n)),
        "covs": np.zeros((kc, nb, n, n)),
        "pmeans": np.zeros((n_steps, nb, n)),
        "pcovs": np.zeros((kc, nb, n, n)),
        "lls": np.zeros((n_steps, nb)),
        "mahas": np.zeros((n_steps, nb)),
        "ys": np.zeros((n_steps, nb, m)),
        "ss": np.zeros((n_steps, nb, m, m)),
        "nobs": np.zeros((n_steps, nb), np.int64),
        "sis": np.zeros((nb, m, m)),
        "ks": np.zeros((nb, n, m)),
        "last": np.zeros((4, nb, n, n)),
    }
    lq = np.stack([np.linalg.cholesky(q) if np.any(q) else q for q in qs]) if sqrt_form else qs
    pp = np.stack([np.linalg.cholesky(pb) for pb in p]) if sqrt_form else p.copy()
    xx = x.copy()
    failed = kk.filter_sequence(
        xx, pp, zs, fs, fts, lq, hs, rs, bs, us, a2, identity, noiseless, sqrt_form, blas, update_first,
        res["means"], res["covs"], res["pmeans"], res["pcovs"], res["lls"], res["mahas"], res["ys"], res["ss"],
        res["nobs"], res["sis"], res["ks"], res["last"],
    )  # fmt: skip
    res.update(x=xx, p=pp, failed=failed)
    return res


def _check_sequence(res, x, p, zs, fs, qs, hs, rs, bs, us, a2, update_first, sqrt_form, rtol=1e-10):  # type: ignore[no-untyped-def]
    assert res["failed"] == kk.OK
    _n_steps, nb, _ = zs.shape
    tol = {"rtol": rtol, "atol": 1e-12}
    for b in range(nb):
        ub = us[:, b if us.shape[1] == nb else 0]
        ref = _kalman_ref(x[b], p[b], zs[:, b], fs, qs, hs, rs, bs, ub, a2, update_first)
        for t, rec in enumerate(ref):
            _close(res["means"][t, b], rec["m"], **tol)
            _close(res["pmeans"][t, b], rec["pm"], **tol)
            if res["covs"].shape[0]:
                _close(res["covs"][t, b], rec["c"], **tol)
                _close(res["pcovs"][t, b], rec["pc"], **tol)
                assert np.array_equal(res["covs"][t, b], res["covs"][t, b].T)
                assert np.array_equal(res["pcovs"][t, b], res["pcovs"][t, b].T)
            assert res["lls"][t, b] == pytest.approx(rec["ll"], rel=1e-10, abs=1e-12)
            assert res["mahas"][t, b] == pytest.approx(rec["maha"], rel=1e-10, abs=1e-12)
            assert res["nobs"][t, b] == rec["n"]
            _close(res["ys"][t, b], rec["y"], **tol)
            _close(res["ss"][t, b], rec["s"], **tol)
        _close(res["sis"][b], ref[-1]["si"], **tol)
        _close(res["ks"][b], ref[-1]["k"], **tol)
        last = ref[-1]
        _close(res["last"][0, b, 0], last["pm"], **tol)
        _close(res["last"][2, b, 0], last["m"], **tol)
        _close(res["x"][b], last["pm"] if update_first else last["m"], **tol)
        carried = res["p"][b] @ res["p"][b].T if sqrt_form else res["p"][b]
        _close(carried, last["pc"] if update_first else last["c"], **tol)
        if sqrt_form:
            if np.any(qs):  # the predict's triangularisation: lower triangular, non-negative diagonal
                fac = res["last"][1, b]
                assert np.array_equal(fac, np.tril(fac))
                assert (np.diag(fac) >= 0).all()
            _close(res["last"][1, b] @ res["last"][1, b].T, last["pc"], **tol)
            _close(res["last"][3, b] @ res["last"][3, b].T, last["c"], **tol)
        else:
            _close(res["last"][1, b], last["pc"], **tol)
            _close(res["last"][3, b], last["c"], **tol)


def _model(
    n: int,
    m: int,
    n_steps: int,
    nb: int,
    seed: int,
    *,
    per_step: bool = False,
    missing: bool = True,
    scale: float = 1.0,
    shared_u: bool = False,
):  # type: ignore[no-untyped-def]
    """A random model; ``scale`` multiplies every covariance (and the measurements by its square root);
    ``shared_u``: one control for all filters."""
    rng = np.random.default_rng(seed)
    steps = n_steps if per_step else 1
    fs = np.stack([np.eye(n) + 0.3 * rng.normal(size=(n, n)) / n for _ in range(steps)])
    qs = np.stack([_spd(rng, n, 0.2) * 0.1 for _ in range(steps)])
    hs = np.stack([rng.normal(size=(m, n)) for _ in range(steps)])
    rs = np.stack([_spd(rng, m, 0.4) for _ in range(steps)])
    bs = rng.normal(size=(steps, n, 2))
    us = rng.normal(size=(steps, 1 if shared_u else nb, 2))
    x = rng.normal(size=(nb, n))
    p = np.stack([_spd(rng, n, 1.0) for _ in range(nb)])
    zs = rng.normal(size=(n_steps, nb, m)) * 2
    qs, rs, p = qs * scale, rs * scale, p * scale
    bs, x, zs = bs * math.sqrt(scale), x * math.sqrt(scale), zs * math.sqrt(scale)
    if missing and n_steps > 3:
        zs[1, 0, 0] = np.nan  # one component missing
        zs[2, -1, :] = np.nan  # all missing: no update
        if m > 2:
            zs[3, 0, 1:] = np.nan  # a single component observed
    return x, p, zs, fs, qs, hs, rs, bs, us


@pytest.mark.parametrize("sqrt_form", [False, True])
@pytest.mark.parametrize("blas", [False, True])
@pytest.mark.parametrize("update_first", [False, True])
def test_filter_sequence_matches_textbook(sqrt_form: bool, blas: bool, update_first: bool) -> None:
    args = _model(3, 3, 5, 2, 50 + 2 * sqrt_form + blas)
    res = _run_sequence(*args, 1.1, sqrt_form=sqrt_form, blas=blas, update_first=update_first)
    _check_sequence(res, *args, 1.1, update_first, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_filter_sequence_per_step_models_one_component(sqrt_form: bool) -> None:
    """Per-step model stacks, a per-filter control, a scalar measurement, no covariances kept."""
    x, p, zs, fs, qs, hs, rs, bs, us = _model(2, 1, 4, 3, 60, per_step=True)
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.0, sqrt_form=sqrt_form, blas=False, update_first=False,
                        keep=False)  # fmt: skip
    _check_sequence(res, x, p, zs, fs, qs, hs, rs, bs, us, 1.0, False, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
@pytest.mark.parametrize("blas", [False, True])
def test_filter_sequence_small_covariances(sqrt_form: bool, blas: bool) -> None:
    """Covariances of order 1e-3: every Cholesky pivot is below 1 (a pivot test against 1 would fail them)."""
    args = _model(3, 3, 5, 2, 55, scale=1e-3)
    res = _run_sequence(*args, 1.0, sqrt_form=sqrt_form, blas=blas, update_first=False)
    _check_sequence(res, *args, 1.0, False, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_filter_sequence_scalar_two_steps_shared_control(sqrt_form: bool) -> None:
    """One state, one measurement, per-step models over exactly two steps, one control shared by two filters."""
    for scale in (1.0, 1e-3):
        args = _model(1, 1, 2, 2, 65, per_step=True, scale=scale, shared_u=True)
        res = _run_sequence(*args, 1.1, sqrt_form=sqrt_form, blas=False, update_first=False)
        _check_sequence(res, *args, 1.1, False, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_zero_innovation_is_not_a_failure(sqrt_form: bool) -> None:
    """x = 0 and z = 0: the innovation and its quadratic form are exactly 0, and the update succeeds."""
    n, m = 2, 2
    rng = np.random.default_rng(6)
    p = _spd(rng, n, 1.0)
    h, r = rng.normal(size=(m, n)), _spd(rng, m, 0.5)
    x = np.zeros((1, n))
    pp = np.linalg.cholesky(p)[None].copy() if sqrt_form else p[None].copy()
    y, s, si = np.full((1, m), 7.0), np.full((1, m, m), 7.0), np.full((1, m, m), 7.0)
    kg, ll, maha, nobs = np.full((1, n, m), 7.0), np.full(1, 7.0), np.full(1, 7.0), np.full(1, 7, np.int64)
    assert kk.update_batch(x, pp, np.zeros((1, m)), h, r, y, s, si, kg, ll, maha, nobs, sqrt_form) == kk.OK
    s_ref = h @ p @ h.T + r
    assert ll[0] == pytest.approx(-0.5 * (m * math.log(2 * math.pi) + np.linalg.slogdet(s_ref)[1]), rel=1e-12)
    assert maha[0] == 0.0
    assert nobs[0] == m
    assert list(x[0]) == [0.0, 0.0]
    assert list(y[0]) == [0.0, 0.0]


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_predict_batch_shared_control(sqrt_form: bool) -> None:
    x, p, _, fs, qs, _, _, bs, us = _model(2, 1, 1, 3, 95, shared_u=True)
    xx = x.copy()
    pp = np.stack([np.linalg.cholesky(pb) for pb in p]) if sqrt_form else p.copy()
    q = np.linalg.cholesky(qs[0]) if sqrt_form else qs[0]
    kk.predict_batch(xx, pp, fs[0], fs[0].T.copy(), q, bs[0], us[0], 1.0, False, False, sqrt_form, False)
    for b in range(3):
        _close(xx[b], fs[0] @ x[b] + bs[0] @ us[0, 0])
        _close(pp[b] @ pp[b].T if sqrt_form else pp[b], fs[0] @ p[b] @ fs[0].T + qs[0])


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_filter_sequence_identity_noiseless(sqrt_form: bool) -> None:
    x, p, zs, _, _, hs, rs, bs, us = _model(3, 2, 4, 2, 70)
    fs, qs = np.eye(3)[None], np.zeros((1, 3, 3))
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.3, sqrt_form=sqrt_form, blas=False, update_first=False)
    _check_sequence(res, x, p, zs, fs, qs, hs, rs, bs, us, 1.3, False, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_filter_sequence_identity_with_noise(sqrt_form: bool) -> None:
    x, p, zs, _, qs, hs, rs, bs, us = _model(2, 2, 3, 1, 75)
    fs = np.eye(2)[None]
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.2, sqrt_form=sqrt_form, blas=True, update_first=False)
    _check_sequence(res, x, p, zs, fs, qs, hs, rs, bs, us, 1.2, False, sqrt_form)


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_filter_sequence_reports_an_indefinite_step(sqrt_form: bool) -> None:
    x, p, zs, fs, qs, hs, rs, bs, us = _model(2, 2, 4, 1, 80, missing=False)
    rs = np.stack([-np.eye(2) * 50.0] * 4)  # S = H P H^T + R negative definite from step 2 on
    rs[0] = np.eye(2)
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.0, sqrt_form=sqrt_form, blas=False, update_first=False)
    assert res["failed"] == 1


@pytest.mark.parametrize("r_diagonal", [0.0, -0.01])
def test_sqrt_update_refuses_a_measurement_noise_that_is_not_positive_definite(r_diagonal: float) -> None:
    # S = H P H^T + R stays positive definite, but Potter's whitening needs R_oo = L_R L_R^T: R = 0 or a negative
    # diagonal fails the step (a negative status), where the covariance form would go on
    x, p, zs, fs, qs, hs, rs, bs, us = _model(2, 2, 3, 1, 81, missing=False)
    p = p * 100.0
    rs = np.stack([np.eye(2) * r_diagonal] * 3)
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.0, sqrt_form=True, blas=False, update_first=True)
    assert res["failed"] == 0


def test_sqrt_update_with_a_selection_matrix_matches_textbook() -> None:
    # H picks components (entries exactly 0 and 1, as position-only measurements do): the same update as a dense H
    x, p, zs, fs, qs, hs, rs, bs, us = _model(3, 2, 5, 2, 82)
    hs = np.stack([np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])])
    res = _run_sequence(x, p, zs, fs, qs, hs, rs, bs, us, 1.0, sqrt_form=True, blas=False, update_first=False)
    _check_sequence(res, x, p, zs, fs, qs, hs, rs, bs, us, 1.0, False, True)


def test_batch_predict_and_update_match_textbook() -> None:
    n, m, nb = 3, 3, 3
    x, p, zs, fs, qs, hs, rs, bs, us = _model(n, m, 1, nb, 90)
    zs[0, 1, 1] = np.nan
    zs[0, 2, :] = np.nan
    for sqrt_form in (False, True):
        xx = x.copy()
        pp = np.stack([np.linalg.cholesky(pb) for pb in p]) if sqrt_form else p.copy()
        q = np.linalg.cholesky(qs[0]) if sqrt_form else qs[0]
        kk.predict_batch(xx, pp, fs[0], fs[0].T.copy(), q, bs[0], us[0], 1.2, False, False, sqrt_form, False)
        y, s, si = np.full((nb, m), 7.0), np.full((nb, m, m), 7.0), np.full((nb, m, m), 7.0)
        kg, ll, maha, nobs = np.full((nb, n, m), 7.0), np.full(nb, 7.0), np.full(nb, 7.0), np.full(nb, 7, np.int64)
        assert kk.update_batch(xx, pp, zs[0], hs[0], rs[0], y, s, si, kg, ll, maha, nobs, sqrt_form) == kk.OK
        for b in range(nb):
            rec = _kalman_ref(x[b], p[b], zs[:, b], fs, qs, hs, rs, bs, us[:, b], 1.2, False)[0]
            _close(xx[b], rec["m"], 1e-10)
            _close(pp[b] @ pp[b].T if sqrt_form else pp[b], rec["c"], 1e-10)
            assert ll[b] == pytest.approx(rec["ll"], rel=1e-10, abs=1e-12)
            assert maha[b] == pytest.approx(rec["maha"], rel=1e-10, abs=1e-12)
            assert nobs[b] == rec["n"]
            _close(y[b], rec["y"], 1e-10)
            _close(s[b], rec["s"], 1e-10)
            _close(si[b], rec["si"], 1e-10)
            _close(kg[b], rec["k"], 1e-10)
    # a failed filter is left as predicted, reported by index, the others updated
    xx, pp = x.copy(), p.copy()
    r_bad = -100.0 * np.eye(m)
    y, s, si = np.zeros((nb, m)), np.zeros((nb, m, m)), np.zeros((nb, m, m))
    kg, ll, maha, nobs = np.zeros((nb, n, m)), np.ones(nb), np.ones(nb), np.ones(nb, np.int64)
    z = zs[0].copy()
    z[2] = 1.0
    assert kk.update_batch(xx, pp, z, hs[0], r_bad, y, s, si, kg, ll, maha, nobs, False) == 0
    assert np.array_equal(xx, x)
    assert np.array_equal(pp, p)
    assert list(ll) == [0.0] * nb
    assert list(maha) == [0.0] * nb
    assert list(nobs) == [0] * nb
    # one observed component (the 1 / S form): a negative S fails filter 1 only
    for sqrt_form in (False, True):
        xx = x.copy()
        pp = np.stack([np.linalg.cholesky(pb) for pb in p]) if sqrt_form else p.copy()
        z = np.full((nb, m), np.nan)
        z[:, 0] = 0.5
        r_mixed = np.diag([1.0, 1.0, 1.0])
        r_mixed[0, 0] = -1e3 if not sqrt_form else 1.0
        ll, maha, nobs = np.ones(nb), np.ones(nb), np.ones(nb, np.int64)
        failed = kk.update_batch(xx, pp, z, hs[0], r_mixed, y, s, si, kg, ll, maha, nobs, sqrt_form)
        if sqrt_form:  # S = (H L)(H L)^T + R > 0 here: all three updated
            assert failed == kk.OK
            assert list(nobs) == [1, 1, 1]
        else:
            assert failed == 0
            assert np.array_equal(xx, x)
            assert list(nobs) == [0] * nb


@pytest.mark.parametrize("sqrt_form", [False, True])
def test_large_state_blas_paths(sqrt_form: bool) -> None:
    """n = 48 (>= HALF_MIN) and n = 12 (= BLAS_MIN): the BLAS products and the half product."""
    assert (kk.BLAS_MIN, kk.HALF_MIN, kk.OK) == (12, 48, -1)
    for n in (kk.BLAS_MIN, kk.HALF_MIN):
        rng = np.random.default_rng(n)
        m = 2
        f = np.eye(n) + 0.2 * rng.normal(size=(n, n)) / math.sqrt(n)
        q = _spd(rng, n, 0.3) * 0.1
        p = _spd(rng, n, 1.0)
        h = rng.normal(size=(m, n))
        r = _spd(rng, m, 0.5)
        x = rng.normal(size=(1, n))
        z = rng.normal(size=(1, m))
        xx = x.copy()
        pp = np.linalg.cholesky(p)[None].copy() if sqrt_form else p[None].copy()
        qq = np.linalg.cholesky(q) if sqrt_form else q
        kk.predict_batch(xx, pp, f, f.T.copy(), qq, np.zeros((n, 0)), np.zeros((1, 0)), 1.1, False, False, sqrt_form,
                         True)  # fmt: skip
        y, s, si = np.zeros((1, m)), np.zeros((1, m, m)), np.zeros((1, m, m))
        kg, ll, maha, nobs = np.zeros((1, n, m)), np.zeros(1), np.zeros(1), np.zeros(1, np.int64)
        assert kk.update_batch(xx, pp, z, h, r, y, s, si, kg, ll, maha, nobs, sqrt_form) == kk.OK
        rec = _kalman_ref(x[0], p, z, f[None], q[None], h[None], r[None], np.zeros((1, n, 0)), np.zeros((1, 0)), 1.1,
                          False)[0]  # fmt: skip
        cov = pp[0] @ pp[0].T if sqrt_form else pp[0]
        _close(xx[0], rec["m"], 1e-9, 1e-11)
        _close(cov, rec["c"], 1e-9, 1e-11)
        assert np.array_equal(cov, cov.T) or sqrt_form
        assert ll[0] == pytest.approx(rec["ll"], rel=1e-10)
        _close(kg[0], rec["k"], 1e-9, 1e-11)
        _close(si[0], rec["si"], 1e-9, 1e-11)


def test_symmetrize_and_matmul_tiles() -> None:
    """``_symmetrize`` over more than one 32 x 32 tile, with and without the added matrix; ``_matmul`` loops."""
    rng = np.random.default_rng(3)
    src, add = rng.normal(size=(35, 35)), rng.normal(size=(35, 35))
    out = np.zeros((35, 35))
    kk._symmetrize(src, out, 1.5, add, True)
    _close(out, 1.5 * (src + src.T) / 2 + np.triu(add) + np.triu(add, 1).T)
    kk._symmetrize(src, out, 2.0, add, False)
    _close(out, src + src.T)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    out = np.full((3, 2), 7.0)
    kk._matmul(a, b, out, False)
    _close(out, a @ b)
    out = np.full((3, 2), 7.0)
    kk._matmul(a, b, out, True)
    _close(out, a @ b)


def test_gram() -> None:
    lb = np.array([[2.0, 0.0], [1.0, 3.0]])
    out = np.zeros((2, 2))
    kk.gram(lb, out)
    assert np.array_equal(out, np.array([[4.0, 2.0], [2.0, 10.0]]))


def test_sqrt_predict_skips_a_zero_row() -> None:
    """A state with no uncertainty and no noise: its row of ``[sa F L, L_Q]`` is zero, so no reflection is applied
    to it and its row of the factor stays 0; the other is ``sqrt(4 + 1)``."""
    x = np.zeros((1, 2))
    lb = np.array([[[2.0, 0.0], [0.0, 0.0]]])
    lq = np.array([[1.0, 0.0], [0.0, 0.0]])
    eye = np.eye(2)
    kk.predict_batch(x, lb, eye, eye, lq, np.zeros((2, 0)), np.zeros((1, 0)), 1.0, True, False, True, False)
    _close(lb[0], np.array([[math.sqrt(5.0), 0.0], [0.0, 0.0]]), 1e-15, 0.0)


@pytest.mark.parametrize("kernel", ["lms_signal", "lms_signal_quad"])
def test_float32_recursion_stays_float32(kernel: str) -> None:
    """float32 arrays give a float32 recursion: a step of 2^-30 per sample (below half an ulp of 1 in float32) leaves
    a weight of 1 exactly 1, the output exactly 1 and the error exactly 2^-20, over 256 samples (in float64 the
    weight would reach 1 + 2^-22, a float32 number)."""
    f32 = np.float32
    channels, n = 2, 256
    w = np.ones((channels, 1), f32)
    tail = np.zeros((channels, 0), f32)
    x = np.ones((channels, n), f32)
    d = np.full((channels, n), 1 + 2.0**-20, f32)
    y, e, hist = np.zeros((channels, n), f32), np.zeros((channels, n), f32), np.zeros((channels, 0, 1), f32)
    getattr(k, kernel)(w, tail, x, d, f32(2.0**-10), f32(0.0), False, k.PHI_LINEAR, f32(0), f32(0), False, y, e, hist)
    assert (w == 1).all()
    assert (y == 1).all()
    assert (e == f32(2.0**-20)).all()


def test_joseph_update_with_a_zero_row_of_the_gain() -> None:
    """``H`` measures state 0 of a diagonal ``P``: the gain's second row is exactly 0 and state 1 keeps its mean and
    variance; state 0 takes the scalar update (K = 2/3, P = 2/3), in the loop form and the BLAS form."""
    for blas in (False, True):
        x, p = np.array([[1.0, 5.0]]), np.array([[[2.0, 0.0], [0.0, 3.0]]])
        res = _run_sequence(
            x,
            p,
            np.array([[[4.0]]]),
            np.eye(2)[None],
            np.zeros((1, 2, 2)),
            np.array([[[1.0, 0.0]]]),
            np.array([[[1.0]]]),
            np.zeros((1, 2, 0)),
            np.zeros((1, 1, 0)),
            1.0,
            sqrt_form=False,
            blas=blas,
            update_first=False,
        )
        assert res["failed"] == kk.OK
        _close(res["ks"][0], np.array([[2.0 / 3.0], [0.0]]), 1e-15, 0.0)
        _close(res["x"][0], np.array([1.0 + 2.0, 5.0]), 1e-15, 0.0)
        _close(res["p"][0], np.array([[2.0 / 3.0, 0.0], [0.0, 3.0]]), 1e-15, 0.0)


def _exact_joseph_update(p: np.ndarray, h: np.ndarray, r: np.ndarray, obs: list[int]) -> np.ndarray:
    """``P - (H_o P)^T S_oo^-1 H_o P`` in exact rational arithmetic (sympy; the inputs are exact floats)."""
    import sympy

    def exact(a: np.ndarray) -> sympy.Matrix:
        return sympy.Matrix(a.tolist()).applyfunc(sympy.Rational)  # a float's exact binary value

    pm, ho, roo = exact(p), exact(h[obs]), exact(r[np.ix_(obs, obs)])
    hp = ho * pm
    return np.array((pm - hp.T * (hp * ho.T + roo).inv() * hp).tolist(), dtype=np.float64)


@pytest.mark.parametrize("blas", [False, True])
def test_joseph_correction_cancels_the_gains_rounding(blas: bool) -> None:
    """The covariance update ``P - K (H P) + d K^T`` with ``d = K S - (H P)^T`` is the Joseph form: it is first-order
    insensitive to the error of the computed gain. Here ``H`` has two nearly dependent integer rows (``S`` has a
    condition number of about 1e5) while ``P``, ``H`` and ``R`` are small dyadic numbers, so ``H P`` and ``S`` are
    formed exactly and only ``K = (H P)^T S^-1`` is rounded (relative error about 1e-11). The Joseph result then
    matches the exact rational update to a few ulps (measured: at most 6.4e-16 against ``|P| = 4``), where dropping
    or misplacing ``d`` (its sign, or its columns after a step with a missing component) leaves the gain's error in
    ``P``: 2e-14 to 2e-13, 30 to 300 times the tolerance. Two steps: all components observed, then the first one
    missing (the BLAS form must then fall back to the loop over the observed components)."""
    h = np.array([[10.0, 9.0, 1.0], [9.0, 8.0, 1.0], [1.0, 2.0, 3.0]])
    p, r = np.diag([1.0, 2.0, 4.0]), 0.5 * np.eye(3)
    for zs in ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0], [np.nan, 2.0, 3.0]]):
        z = np.array(zs)
        res = _run_sequence(np.zeros((1, 3)), p[None], z[:, None], np.eye(3)[None], np.zeros((1, 3, 3)), h[None],
                            r[None], np.zeros((1, 3, 0)), np.zeros((1, 1, 0)), 1.0, sqrt_form=False, blas=blas,
                            update_first=True)  # fmt: skip
        exact = p
        for row in z:
            exact = _exact_joseph_update(exact, h, r, [i for i in range(3) if not np.isnan(row[i])])
        assert res["failed"] == kk.OK
        assert np.abs(res["p"][0] - exact).max() <= 4e-15


def test_online_centred_sums_are_exact_after_a_wrap_at_either_read() -> None:
    """With ``mem = 3`` each sample reads the memory twice (position + 2), so a wrap falls on the first read (the
    sample ends at position 1) or on the second (it ends at 0): after either, the sums are recomputed from the
    memory, bit-equal to a plain sum of its rows in order even after a sample 1e8 times larger passed through."""
    taps, mem, n = 2, 3, 12
    rng = np.random.default_rng(5)
    u = rng.normal(size=(1, n, taps))
    u[0, 1] *= 1e8
    d = rng.normal(size=(1, n))
    d[0, 1] *= 1e8
    w = np.zeros((1, taps))
    mem_x, mem_d = np.zeros((1, mem, taps)), np.zeros((1, mem))
    sum_x, sum_d, pos = np.zeros((1, taps)), np.zeros(1), np.zeros(2, np.int64)
    ends = []
    for j in range(n):
        y, e, hist = np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 0, taps))
        fk.online_centred_regressors(w, u[:, j : j + 1].copy(), d[:, j : j + 1].copy(), 0.5, 0.1, mem_x, mem_d,
                                     sum_x, sum_d, pos, y, e, hist)  # fmt: skip
        ends.append(int(pos[0]))
        if pos[0] in (0, 1) and j > 0:  # a wrap in this sample
            plain_x = [mem_x[0, 0, i] + mem_x[0, 1, i] + mem_x[0, 2, i] for i in range(taps)]
            assert sum_x[0].tolist() == plain_x
            assert sum_d[0] == mem_d[0, 0] + mem_d[0, 1] + mem_d[0, 2]
    assert ends[:6] == [2, 1, 0, 2, 1, 0]


def test_online_centred_float32_normaliser_overflow_leaves_the_weights():
    """A float32 filter accumulates its normaliser ``|u - mean|^2`` in float32: centred inputs of 1e20 overflow it
    to Inf, so the step ``mu / (eps + Inf) e`` is 0 and the weights stay exactly 0 (a float64 work array would
    give 2e40 and move them by about 1e-21)."""
    f32 = np.float32
    taps, mem = 2, 2
    u = np.array([[[1e20, -1e20], [-1e20, 1e20], [1e20, 1e20]]], dtype=f32)
    d = np.ones((1, 3), dtype=f32)
    w = np.zeros((1, taps), dtype=f32)
    mem_x, mem_d = np.zeros((1, mem, taps), dtype=f32), np.zeros((1, mem), dtype=f32)
    sum_x, sum_d, pos = np.zeros((1, taps), dtype=f32), np.zeros(1, dtype=f32), np.zeros(2, np.int64)
    y, e, hist = np.zeros((1, 3), dtype=f32), np.zeros((1, 3), dtype=f32), np.zeros((1, 0, taps), dtype=f32)
    with np.errstate(over="ignore", invalid="ignore"):  # uncompiled numpy scalars warn on the overflow
        fk.online_centred_regressors(w, u, d, f32(0.5), f32(0.1), mem_x, mem_d, sum_x, sum_d, pos, y, e, hist)
    assert not w.any()
