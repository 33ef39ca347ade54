"""The RTS smoother: against filterpy's rts_smoother, and against the exact posterior of the joint Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from kalman_models import model

from noisygrad.dsp import Kalman
from noisygrad.dsp.kalman_smoother import rts_smoother

FORMS = ["joseph", "sqrt"]


@pytest.mark.parametrize("form", FORMS)
def test_rts_smoother_equals_filterpy(form):
    rng, F, H, Q, R, _, x0, P0 = model()
    n = 40
    zs = rng.standard_normal((n, 2))
    Fs = [F * (1 + 0.01 * k) for k in range(n)]
    Qs = [Q * (1 + 0.02 * k) for k in range(n)]
    ref = KalmanFilter(dim_x=3, dim_z=2)
    ref.F, ref.H, ref.Q, ref.R, ref.x, ref.P = F, H, Q, R, x0.copy(), P0.copy()
    for fs, qs in ((None, None), (Fs, Qs)):
        ref.x, ref.P = x0.copy(), P0.copy()
        m, c, _, _ = ref.batch_filter(zs, Fs=fs, Qs=qs)
        xs, ps, ks, pps = ref.rts_smoother(m, c, Fs=fs, Qs=qs)
        ours = Kalman(F, H, Q, R, x0, P0, form=form)
        res = ours.batch_filter(zs, Fs=fs, Qs=qs)
        got = ours.rts_smoother(res.means, res.covariances, Fs=fs, Qs=qs)
        for a, b in zip(got, (xs, ps, ks, pps), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
        x_s, p_s, _, _ = got  # unpacks like filterpy's (x, P, K, Pp)
        assert x_s.shape == (n, 3)
        assert p_s.shape == (n, 3, 3)


def _joint_posterior(F, H, Q, R, B, x0, P0, us, zs, observed):
    """E[x_1..x_N | observed z] and the marginal covariances, by conditioning the joint Gaussian directly."""
    n_steps, n = len(zs), F.shape[0]
    # x_t = F^t x0 + sum_{s<=t} F^(t-s) (B u_s + w_s): x = T e + c, e = (x0 - mean, w_1..w_N)
    T = np.zeros((n_steps * n, (n_steps + 1) * n))
    mean = np.zeros(n_steps * n)
    cov_e = np.zeros(((n_steps + 1) * n,) * 2)
    cov_e[:n, :n] = P0
    x_mean = x0.copy()
    for t in range(n_steps):
        x_mean = F @ x_mean + B @ us[t]
        mean[t * n : (t + 1) * n] = x_mean
        cov_e[(t + 1) * n : (t + 2) * n, (t + 1) * n : (t + 2) * n] = Q
        T[t * n : (t + 1) * n, :n] = np.linalg.matrix_power(F, t + 1)  # x_{t+1} = F^(t+1) x0 + ...
        for s in range(1, t + 2):  # ... + F^(t+1-s) w_s
            T[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(F, t + 1 - s)
    cov_x = T @ cov_e @ T.T
    rows = [t for t in range(n_steps) if observed[t]]
    Hb = np.zeros((len(rows) * H.shape[0], n_steps * n))
    for i, t in enumerate(rows):
        Hb[i * H.shape[0] : (i + 1) * H.shape[0], t * n : (t + 1) * n] = H
    z = np.concatenate([zs[t] for t in rows])
    s = Hb @ cov_x @ Hb.T + np.kron(np.eye(len(rows)), R)
    gain = cov_x @ Hb.T @ np.linalg.inv(s)
    post_mean = mean + gain @ (z - Hb @ mean)
    post_cov = cov_x - gain @ Hb @ cov_x
    return post_mean.reshape(n_steps, n), np.array([post_cov[t * n : (t + 1) * n, t * n : (t + 1) * n]
                                                    for t in range(n_steps)])  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
def test_smooth_equals_the_exact_posterior_with_control_and_missing_data(form):
    """``smooth`` uses the filter's own predictions, so control inputs and missing measurements are exact."""
    rng, F, H, Q, R, B, x0, P0 = model(1)
    n = 12
    zs, us = rng.standard_normal((n, 2)), rng.standard_normal((n, 1))
    observed = np.ones(n, bool)
    observed[[4, 5, 9]] = False
    z_in = zs.copy()
    z_in[~observed] = np.nan
    kf = Kalman(F, H, Q, R, x0, P0, B=B, form=form)
    res = kf.batch_filter(z_in, us=us)
    sm = kf.smooth(res)
    mean, cov = _joint_posterior(F, H, Q, R, B, x0, P0, us, zs, observed)
    np.testing.assert_allclose(sm.means, mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sm.covariances, cov, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.means[-1], mean[-1], rtol=0, atol=1e-9)  # the filter's last step is smoothed


def test_smoother_on_a_batch_equals_each_filter():
    rng, F, H, Q, R, _, x0, P0 = model(2)
    zs = rng.standard_normal((20, 3, 2))
    kf = Kalman(F, H, Q, R, np.tile(x0, (3, 1)), P0)
    sm = kf.smooth(kf.batch_filter(zs))
    assert sm.means.shape == (20, 3, 3)
    assert sm.covariances.shape == (20, 3, 3, 3)
    for b in range(3):
        one = Kalman(F, H, Q, R, x0, P0)
        single = one.smooth(one.batch_filter(zs[:, b]))
        np.testing.assert_allclose(sm.means[:, b], single.means, rtol=0, atol=1e-13)
        np.testing.assert_allclose(sm.covariances[:, b], single.covariances, rtol=0, atol=1e-13)


def test_smoother_arguments_are_checked():
    rng, F, H, Q, R, _, x0, P0 = model(3)
    kf = Kalman(F, H, Q, R, x0, P0)
    res = kf.batch_filter(rng.standard_normal((5, 2)), covariances=False)
    with pytest.raises(ValueError, match="covariances=True"):
        kf.smooth(res)
    means, covs = np.zeros((5, 3)), np.tile(np.eye(3), (5, 1, 1))
    with pytest.raises(ValueError, match="covariances must have shape"):
        rts_smoother(means, covs[:, :2], F, Q=Q)
    with pytest.raises(ValueError, match="Q is needed"):
        rts_smoother(means, covs, F)
    with pytest.raises(ValueError, match="give both prior_means and prior_covariances"):
        rts_smoother(means, covs, F, prior_means=means)
    with pytest.raises(ValueError, match="F must have shape"):
        rts_smoother(means, covs, np.eye(2), Q=Q)
    with pytest.raises(ValueError, match="predicted covariance of step 4 is singular"):
        rts_smoother(means, np.zeros((5, 3, 3)), F, Q=np.zeros((3, 3)))
    bad = means.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="means has 1 non-finite"):
        rts_smoother(bad, covs, F, Q=Q)
