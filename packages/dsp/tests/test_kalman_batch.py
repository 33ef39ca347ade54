"""Kalman's batch axis of independent filters, float32 on request, and state_dict round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisygrad.dsp import Kalman
from noisygrad.dsp._state import SCHEMA_KEYS
from noisygrad.loop_checkpoint import LegacyCheckpointWarning

FORMS = ["joseph", "sqrt"]


def _model(n: int = 5, m: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    F = np.eye(n) + 0.05 * rng.standard_normal((n, n))
    H = rng.standard_normal((m, n))
    A = rng.standard_normal((n, n))
    Q = 1e-2 * (A @ A.T / n + np.eye(n))
    R = 0.3 * np.eye(m) + 0.05
    B = rng.standard_normal((n, 1))
    return rng, F, H, Q, R, B


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("n", [3, 16])  # 16 states: the BLAS path of the kernels
def test_a_batch_equals_its_filters_run_one_by_one_bit_for_bit(form, n):
    rng, F, H, Q, R, B = _model(n)
    nb, steps = 4, 30
    x0 = rng.standard_normal((nb, n))
    P0 = np.stack([np.eye(n) * (1 + b) for b in range(nb)])
    zs = rng.standard_normal((steps, nb, 2))
    zs[3, 1] = np.nan  # one filter misses a measurement, another a component
    zs[4, 2, 0] = np.nan
    us = rng.standard_normal((steps, nb, 1))
    batch = Kalman(F, H, Q, R, x0, P0, B=B, form=form)
    res = batch.batch_filter(zs, us=us)
    assert res.means.shape == (steps, nb, n)
    assert res.covariances.shape == (steps, nb, n, n)
    assert res.log_likelihoods.shape == (steps, nb)
    assert batch.log_likelihood.shape == (nb,)
    for b in range(nb):
        one = Kalman(F, H, Q, R, x0[b], P0[b], B=B, form=form)
        single = one.batch_filter(zs[:, b], us=us[:, b])
        np.testing.assert_array_equal(res.means[:, b], single.means)
        np.testing.assert_array_equal(res.covariances[:, b], single.covariances)
        np.testing.assert_array_equal(res.log_likelihoods[:, b], single.log_likelihoods)
        np.testing.assert_array_equal(batch.x[b], one.x)
    # the step API on a batch: a shared control input (k,) or one per filter (B, k)
    a = Kalman(F, H, Q, R, x0, np.eye(n), B=B, form=form)
    a.predict([0.5])
    a.update(zs[0])
    for b in range(nb):
        one = Kalman(F, H, Q, R, x0[b], np.eye(n), B=B, form=form)
        one.predict([0.5])
        one.update(zs[0, b])
        np.testing.assert_array_equal(a.x[b], one.x)
        np.testing.assert_array_equal(a.K[b], one.K)


@pytest.mark.parametrize("form", FORMS)
def test_float32_on_request(form):
    """A float32 filter computes in float32 and stays within float32 rounding of the float64 one."""
    rng, F, H, Q, R, _ = _model()
    zs = rng.standard_normal((200, 2))
    x0 = np.zeros(5)
    f32 = Kalman(F, H, Q, R, x0, np.eye(5), dtype=np.float32, form=form)
    f64 = Kalman(F, H, Q, R, x0, np.eye(5), form=form)
    r32, r64 = f32.batch_filter(zs), f64.batch_filter(zs)
    assert r32.means.dtype == np.float32
    assert r32.covariances.dtype == np.float32
    assert f32.x.dtype == np.float32
    assert f32.P.dtype == np.float32
    assert f32.dtype is np.float32
    scale = np.abs(r64.means).max()
    # float32 rounding (6e-8) amplified by the filter's conditioning over 200 steps: well within 1e-4 relative
    np.testing.assert_allclose(r32.means, r64.means, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(r32.covariances, r64.covariances, rtol=0, atol=1e-4)
    assert np.array_equal(f32.P, f32.P.T)
    f32.predict()
    f64.predict()
    assert f32.update(zs[0]) == pytest.approx(f64.update(zs[0]), rel=1e-4)
    assert f32.K.dtype == np.float32
    assert f32.S.dtype == np.float32


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batched", [False, True])
def test_state_dict_round_trip_continues_bit_for_bit(form, dtype, batched):
    rng, F, H, Q, R, B = _model()
    x0 = rng.standard_normal((3, 5)) if batched else rng.standard_normal(5)
    kf = Kalman(F, H, Q, R, x0, np.eye(5), B=B, inflation=1.01, form=form, dtype=dtype)
    shape = (3, 2) if batched else (2,)
    kf.batch_filter(rng.standard_normal((20, *shape)))
    kf.predict(0.3)
    kf.update(rng.standard_normal(shape))
    state = kf.state_dict()
    twin = Kalman.from_state_dict(state)
    other = Kalman(F, H, Q, R, np.zeros_like(x0), np.eye(5), B=B, form=form, dtype=dtype)
    other.load_state_dict(state)
    state["x"][...] = 1e9  # the dict holds copies: changing it changes no filter
    for name in ("x", "P", "y", "S", "SI", "K", "x_prior", "P_prior", "x_post", "P_post"):
        np.testing.assert_array_equal(getattr(twin, name), getattr(kf, name))
    zs, us = rng.standard_normal((15, *shape)), rng.standard_normal((15, *(shape[:-1]), 1))
    outs = []
    for f in (kf, twin, other):
        res = f.batch_filter(zs, us=us)
        f.predict_steadystate()
        f.update_steadystate(zs[0])
        outs.append((res.means, res.covariances, res.log_likelihoods, f.x, f.log_likelihood))
    for out in outs[1:]:
        for a, b in zip(outs[0], out, strict=True):
            np.testing.assert_array_equal(a, b)


def test_load_state_dict_refuses_a_foreign_state():
    _, F, H, Q, R, _ = _model()
    kf = Kalman(F, H, Q, R, np.zeros(5), np.eye(5))
    with pytest.raises(ValueError, match=r"state must be a Kalman\.state_dict"):
        kf.load_state_dict({"x": np.zeros(5)})
    sqrt = Kalman(F, H, Q, R, np.zeros(5), np.eye(5), form="sqrt").state_dict()
    with pytest.raises(ValueError, match=r"state is for \(form, dtype, batch\) = \('sqrt'"):
        kf.load_state_dict(sqrt)
    state = kf.state_dict()
    state["p"] = np.full((1, 5, 5), np.nan)
    with pytest.raises(ValueError, match=r"state\['p'\] has 25 non-finite"):
        kf.load_state_dict(state)


def test_a_failing_filter_in_a_batch_is_named_and_left_as_predicted():
    """An innovation covariance that is not positive definite raises, naming the filter; the other filters of
    the batch are updated as usual (each filter is independent)."""
    rng, F, H, Q, R, _ = _model()
    kf = Kalman(F, H, Q, R, np.zeros((2, 5)), np.eye(5))
    state = {k: v for k, v in kf.state_dict().items() if k not in SCHEMA_KEYS}  # assembled by hand: no checksum
    state["p"][1] = torch.from_numpy(-10 * np.eye(5))  # a state no filter of ours reaches: S = H P H^T + R indefinite
    with pytest.warns(LegacyCheckpointWarning, match="no format, kind, settings or checksum"):
        kf.load_state_dict(state)
    z = rng.standard_normal((2, 2))
    with pytest.raises(FloatingPointError, match=r"not positive definite at filter 1 \(the filters where it failed"):
        kf.update(z)
    good = Kalman(F, H, Q, R, np.zeros(5), np.eye(5))
    ll = good.update(z[0])
    np.testing.assert_array_equal(kf.x[0], good.x)
    np.testing.assert_array_equal(kf.x[1], np.zeros(5))
    np.testing.assert_array_equal(kf.P[1], -10 * np.eye(5))
    assert kf.log_likelihood[0] == ll
    assert kf.log_likelihood[1] == 0
    assert list(kf.observed) == [2, 0]
