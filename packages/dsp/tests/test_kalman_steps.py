"""Kalman's steps for a user's own loop, against filterpy 2.0.0 step by step (the same Joseph-form arithmetic up
to rounding order, hence 1e-10): per-step quantities, control input, missing measurements, per-call H and R,
update-then-predict sequences and the fixed-gain (steady-state) steps."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter

from noisygrad.dsp import Kalman

FORMS = ["joseph", "sqrt"]
TOL = 1e-10


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    F = np.array([[1.0, 0.1, 0.005], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]])
    H = rng.standard_normal((2, 3))
    Q = 1e-3 * np.eye(3) + 1e-4
    R = np.array([[0.5, 0.1], [0.1, 0.3]])
    B = rng.standard_normal((3, 2))
    return rng, F, H, Q, R, B, np.array([0.1, -0.2, 0.3]), np.diag([1.0, 2.0, 0.5])


def _filterpy(F, H, Q, R, x0, P0, B=None) -> KalmanFilter:
    ref = KalmanFilter(dim_x=3, dim_z=H.shape[0], dim_u=0 if B is None else B.shape[1])
    ref.F, ref.H, ref.Q, ref.R, ref.x, ref.P, ref.B = F, H, Q, R, x0.copy(), P0.copy(), B
    return ref


def _close(a, b, tol=TOL):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=0, atol=tol)


@pytest.mark.parametrize("form", FORMS)
def test_per_step_quantities_equal_filterpy(form):
    """y, S, S^-1, K, log-likelihood, Mahalanobis distance, prior and posterior state after every step."""
    rng, F, H, Q, R, B, x0, P0 = _model()
    ours, ref = Kalman(F, H, Q, R, x0, P0, B=B, form=form), _filterpy(F, H, Q, R, x0, P0, B)
    for _ in range(40):
        u, z = rng.standard_normal(2), rng.standard_normal(2)
        ours.predict(u)
        ref.predict(u=u)
        _close(ours.x_prior, ref.x_prior)
        _close(ours.P_prior, ref.P_prior)
        ll = ours.update(z)
        ref.update(z)
        for name in ("y", "S", "SI", "K", "x_post", "P_post", "x", "P"):
            _close(getattr(ours, name), getattr(ref, name))
        assert ll == pytest.approx(ref.log_likelihood, rel=TOL, abs=TOL)
        assert ours.step_log_likelihood == ll
        assert ours.mahalanobis == pytest.approx(ref.mahalanobis, rel=TOL)
        assert ours.observed == 2


@pytest.mark.parametrize("form", FORMS)
def test_control_input_per_call_and_per_step(form):
    """``x = F x + B u``: B given to the constructor, set later, or passed per call; us in batch_filter."""
    rng, F, H, Q, R, B, x0, P0 = _model(1)
    us, zs = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    ref = _filterpy(F, H, Q, R, x0, P0, B)
    means = []
    for u, z in zip(us, zs, strict=True):
        ref.predict(u=u)
        ref.update(z)
        means.append(ref.x.copy())
    res = Kalman(F, H, Q, R, x0, P0, B=B, form=form).batch_filter(zs, us=us)
    _close(res.means, np.array(means))
    per_call = Kalman(F, H, Q, R, x0, P0, form=form)  # no B of its own: B per call, and per step via Bs
    for u, z in zip(us, zs, strict=True):
        per_call.predict(u, B=B)
        per_call.update(z)
    _close(per_call.x, ref.x)
    res_bs = Kalman(F, H, Q, R, x0, P0, form=form).batch_filter(zs, us=us, Bs=[B] * 30)
    _close(res_bs.means, np.array(means))
    scalar = Kalman(F, H, Q, R, x0, P0, B=B[:, :1], form=form)  # k = 1: u may be a scalar
    scalar.predict(2.0)
    _close(scalar.x, F @ x0 + 2.0 * B[:, 0])


@pytest.mark.parametrize("form", FORMS)
def test_missing_measurements_predict_only_and_partial(form):
    """None or all-NaN: no update (filterpy's update(None)); a NaN entry: the update on the other components,
    which equals an update with those rows of H and that block of R."""
    rng, F, H, Q, R, _, x0, P0 = _model(2)
    zs = [rng.standard_normal(2) for _ in range(12)]
    zs[3] = None
    zs[7] = np.array([np.nan, np.nan])
    ref = _filterpy(F, H, Q, R, x0, P0)
    means = []
    for z in zs:
        ref.predict()
        ref.update(None if z is None or np.isnan(z).all() else z)
        means.append(ref.x.copy())
    res = Kalman(F, H, Q, R, x0, P0, form=form).batch_filter(zs)
    _close(res.means, np.array(means))
    np.testing.assert_array_equal(res.observed, [2, 2, 2, 0, 2, 2, 2, 0, 2, 2, 2, 2])
    assert res.log_likelihoods[3] == 0
    assert res.log_likelihoods[7] == 0
    _close(res.means[3], res.prior_means[3], 0)  # predict only
    # a partial measurement: component 1 missing
    a, b = Kalman(F, H, Q, R, x0, P0, form=form), Kalman(F, H, Q, R, x0, P0, form=form)
    a.predict()
    b.predict()
    ll_a = a.update([0.7, np.nan])
    ll_b = b.update([0.7], H=H[:1], R=R[:1, :1])
    _close(a.x, b.x)
    _close(a.P, b.P)
    assert ll_a == pytest.approx(ll_b, rel=TOL)
    assert a.observed == 1
    assert a.y[1] == 0
    assert np.all(a.K[:, 1] == 0)
    a.update(None)
    assert a.observed == 0
    assert a.step_log_likelihood == 0


@pytest.mark.parametrize("form", FORMS)
def test_per_call_H_and_R(form):
    """Components processed one group at a time (filterpy's update_sequential) equal one joint update when R is
    block diagonal; a per-call H/R equals filterpy's update(z, R=, H=)."""
    rng, F, H, Q, _, _, x0, P0 = _model(3)
    H3 = rng.standard_normal((3, 3))
    R3 = np.diag([0.5, 0.2, 0.9])
    joint, seq = Kalman(F, H3, Q, R3, x0, P0, form=form), Kalman(F, H3, Q, R3, x0, P0, form=form)
    for _ in range(20):
        z = rng.standard_normal(3)
        joint.predict()
        seq.predict()
        joint.update(z)
        seq.update(z[:1], H=H3[:1], R=R3[:1, :1])
        seq.update(z[1:], H=H3[1:], R=R3[1:, 1:])
    _close(seq.x, joint.x, 1e-12)
    _close(seq.P, joint.P, 1e-12)
    ref = _filterpy(F, H, Q, np.eye(2), x0, P0)
    ours = Kalman(F, H, Q, np.eye(2), x0, P0, form=form)
    for _ in range(10):
        z, h, r = rng.standard_normal(1), rng.standard_normal((1, 3)), np.array([[0.3]])
        ref.predict()
        ours.predict()
        ref.update(z, R=r, H=h)
        ours.update(z, H=h, R=r)
        _close(ours.x, ref.x)
        _close(ours.P, ref.P)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("update_first", [False, True])
def test_batch_filter_equals_filterpy_batch_filter(form, update_first):
    """Same outputs as filterpy's batch_filter, None entries and time-varying F, Q, H, R included."""
    rng, F, H, Q, R, _, x0, P0 = _model(4)
    n = 25
    zs = [rng.standard_normal(2) for _ in range(n)]
    zs[5] = None
    Fs = [F + 0.01 * rng.standard_normal((3, 3)) for _ in range(n)]
    Qs = [Q * (1 + k / n) for k in range(n)]
    Hs = [H + 0.1 * rng.standard_normal((2, 3)) for _ in range(n)]
    Rs = [R * (1 + 0.5 * k / n) for k in range(n)]
    ref = _filterpy(F, H, Q, R, x0, P0)
    m_ref, c_ref, mp_ref, cp_ref = ref.batch_filter(zs, Fs=Fs, Qs=Qs, Hs=Hs, Rs=Rs, update_first=update_first)
    ours = Kalman(F, H, Q, R, x0, P0, form=form)
    res = ours.batch_filter(zs, Fs=Fs, Qs=Qs, Hs=Hs, Rs=Rs, update_first=update_first)
    _close(res.means, m_ref)
    _close(res.covariances, c_ref)
    _close(res.prior_means, mp_ref)
    _close(res.prior_covariances, cp_ref)
    _close(ours.x, ref.x)
    _close(ours.P, ref.P)


@pytest.mark.parametrize("form", FORMS)
def test_steady_state_steps_equal_filterpy(form):
    rng, F, H, Q, R, _, x0, P0 = _model(5)
    ours, ref = Kalman(F, H, Q, R, x0, P0, form=form), _filterpy(F, H, Q, R, x0, P0)
    for _ in range(30):
        z = rng.standard_normal(2)
        ours.predict()
        ours.update(z)
        ref.predict()
        ref.update(z)
    p_before = ours.P
    for _ in range(20):
        z = rng.standard_normal(2)
        ours.predict_steadystate()
        ours.update_steadystate(z)
        ref.predict_steadystate()
        ref.update_steadystate(z)
        _close(ours.x, ref.x)
        _close(ours.y, ref.y)
        assert ours.mahalanobis == pytest.approx(float(np.sqrt(ref.y @ ref.SI @ ref.y)), rel=TOL)
    np.testing.assert_array_equal(ours.P, p_before)  # the fixed-gain steps leave P alone


def test_attributes_are_read_only_copies_and_assignments_are_checked():
    """Getters hand out read-only copies (a write into one raises instead of silently changing nothing, and a
    held value does not move with the filter); assigning an attribute validates it and changes the filter."""
    _, F, H, Q, R, B, x0, P0 = _model(6)
    kf = Kalman(F, H, Q, R, x0, P0, B=B)
    held_x, held_p = kf.x, kf.P
    for value in (held_p, kf.F, kf.H, kf.Q, kf.R, kf.B, kf.K, kf.S, kf.y):
        with pytest.raises(ValueError, match="read-only"):
            value[0] = 1.0
    kf.predict([1.0, 0.0])
    np.testing.assert_array_equal(held_x, x0)
    np.testing.assert_array_equal(held_p, P0)
    kf.P = 2 * kf.P
    kf.Q = 3 * kf.Q
    np.testing.assert_array_equal(kf.Q, 3 * Q)
    kf.x = [1.0, 2.0, 3.0]
    kf.predict()
    np.testing.assert_allclose(kf.x, F @ [1.0, 2.0, 3.0], rtol=0, atol=1e-15)
