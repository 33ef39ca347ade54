"""Kalman on ill-conditioned models (filterpy's kinematic_kf), and its refusal of bad input.

Two kinds of hard model, both built on filterpy's order-5 kinematic transition in 7 dimensions (42 states):

* observable but ill-conditioned: every position measured to 1e-6, white noise on the fifth derivative only,
  dt = 1e-3; the steady-state covariance has condition number 1.5e16. The default Joseph form keeps ``P``
  exactly symmetric and positive definite for 1e5 steps and converges to the Riccati solution.
* filterpy's ``kinematic_kf(7, 5)`` itself: only the *sum* of the 7 positions is measured, so the covariance of
  the other 41 directions grows like t^11 without bound. No float64 covariance matrix stays positive definite
  from around step 90 (filterpy's S turns negative near 100, ours raises); the square-root form keeps
  ``P = L L^T`` by construction for 1e5 steps. The observable part (the summed chain, a 6-state filter with
  ``Q = 7 I``) gives the exact innovation variance to compare with.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from filterpy.common import kinematic_kf
from scipy.linalg import block_diag, solve_discrete_are

from noisygrad.dsp import Kalman


def _observable_kinematic(dt: float = 1e-3, r: float = 1e-12):
    F = kinematic_kf(dim=7, order=5, dt=dt).F
    g = np.array([dt**5 / 120, dt**4 / 24, dt**3 / 6, dt**2 / 2, dt, 1.0])  # white noise on the 5th derivative
    Q = block_diag(*[np.outer(g, g)] * 7)
    H = np.zeros((7, 42))
    H[np.arange(7), 6 * np.arange(7)] = 1.0
    return F, H, Q, r * np.eye(7)


def test_joseph_form_keeps_an_ill_conditioned_kinematic_model_positive_definite_for_1e5_steps():
    F, H, Q, R = _observable_kinematic()
    kf = Kalman(F, H, Q, R, np.zeros(42), np.eye(42))
    rng = np.random.default_rng(0)
    for _ in range(10):  # 1e5 steps, checked every 1e4 (the covariance recursion does not depend on the data)
        kf.batch_filter(1e-6 * rng.standard_normal((10_000, 7)), covariances=False)
        P = kf.P
        assert np.array_equal(P, P.T)
        np.linalg.cholesky(P)  # raises unless positive definite
    kf.predict()
    prior = kf.P_prior
    eig = np.linalg.eigvalsh(prior)
    assert eig.max() / eig.min() > 1e15  # the model is as ill-conditioned as announced
    # the fixed point of the Riccati recursion (scipy's DARE solver, itself accurate to ~1e-7 at this conditioning)
    dare = solve_discrete_are(F.T, H.T, Q, R)
    np.testing.assert_allclose(np.diag(prior), np.diag(dare), rtol=1e-6)
    scale = np.sqrt(np.outer(np.diag(dare), np.diag(dare)))
    assert np.max(np.abs(prior - dare) / scale) < 1e-5


def _filterpy_kinematic():
    cv = kinematic_kf(dim=7, order=5)  # F: order-5 blocks, H: the sum of the positions, Q = I, R = 1, P0 = I
    x0 = np.zeros(42)
    x0[1] = 1.0  # as filterpy's test_steadystate
    return cv.F, cv.H, cv.Q, cv.R, x0


def _summed_chain(F, n_steps):
    """The exact innovation variances: the measured sum of 7 independent chains is one chain with Q = 7 I."""
    agg = Kalman(F[:6, :6], np.eye(1, 6), 7 * np.eye(6), 1.0, np.eye(1, 6, 1)[0], 7 * np.eye(6))
    res = agg.batch_filter(np.arange(float(n_steps)), covariances=False)
    return res.innovation_covariances[:, 0, 0], res.innovations[:, 0]


def test_kinematic_kf_7_5_joseph_raises_where_P_turns_indefinite():
    F, H, Q, R, x0 = _filterpy_kinematic()
    kf = Kalman(F, H, Q, R, x0, np.eye(42))
    with pytest.raises(FloatingPointError, match=r"not positive definite at step \d+.*form='sqrt'") as info:
        kf.batch_filter(np.arange(200.0))
    step = int(re.search(r"step (\d+)", str(info.value)).group(1))
    assert 75 <= step <= 110  # where rounding decides; S is 10% off from step 75 on, in filterpy's Joseph form too
    np.testing.assert_array_equal(kf.x, x0)  # a call that raises leaves the filter as it was
    np.testing.assert_array_equal(kf.P, np.eye(42))
    s_exact, _ = _summed_chain(F, 24)
    s = kf.batch_filter(np.arange(24.0)).innovation_covariances[:, 0, 0]
    np.testing.assert_allclose(s, s_exact, rtol=1e-6)  # accurate while P ~ t^11 is below ~1e9


def _check_sqrt_run(n_steps: int, accurate_steps: int) -> None:
    F, H, Q, R, x0 = _filterpy_kinematic()
    kf = Kalman(F, H, Q, R, x0, np.eye(42), form="sqrt")
    res = kf.batch_filter(np.arange(float(n_steps)), covariances=False)
    s = res.innovation_covariances[:, 0, 0]
    assert np.isfinite(s).all()
    assert s.min() >= 1.0
    s_exact, y_exact = _summed_chain(F, n_steps)
    np.testing.assert_allclose(s[:accurate_steps], s_exact[:accurate_steps], rtol=1e-6)
    # the mean keeps its accuracy far longer than S does
    assert (
        np.max(
            np.abs(res.innovations[:accurate_steps, 0] - y_exact[:accurate_steps]) / np.sqrt(s_exact[:accurate_steps])
        )
        < 1e-6
    )
    kf.predict()  # the predicted factor: lower triangular with a positive diagonal, so P = L L^T is definite
    L = kf.factor
    assert np.isfinite(L).all()
    assert np.all(np.triu(L, 1) == 0)
    assert np.diag(L).min() > 0
    P = kf.P
    assert np.array_equal(P, P.T)


def test_kinematic_kf_7_5_square_root_form_stays_definite():
    """2000 steps (1e5 in the slow test): S agrees with the exact one to 1e-6 for 500 steps (the Joseph form: 24);
    past ~1000 steps P ~ t^11 exceeds 1e32 and S drifts (10% at step ~1700) while staying >= R."""
    _check_sqrt_run(2000, 500)


@pytest.mark.slow
def test_kinematic_kf_7_5_square_root_form_runs_1e5_steps():
    _check_sqrt_run(100_000, 500)


# ---------------------------------------------------------------------------------------------- bad input


def _args(**kwargs):
    args = {"F": np.eye(3), "H": np.ones((1, 3)), "Q": np.eye(3), "R": 1.0, "x0": np.zeros(3), "P0": np.eye(3)}
    args.update(kwargs)
    return [args.pop(k) for k in ("F", "H", "Q", "R", "x0", "P0")], args


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"F": [[1.0, np.inf, 0], [0, 1, 0], [0, 0, 1]]}, ValueError, "F has 1 non-finite"),
        ({"H": [[np.nan, 0, 0]]}, ValueError, "H has 1 non-finite"),
        ({"Q": np.full((3, 3), np.nan)}, ValueError, "Q has 9 non-finite"),
        ({"R": np.inf}, ValueError, "R has 1 non-finite"),
        ({"P0": np.diag([1.0, np.nan, 1.0])}, ValueError, "P0 has 1 non-finite"),
        ({"x0": [0.0, 0.0, np.inf]}, ValueError, "x0 has 1 non-finite"),
        ({"B": np.full((3, 1), np.nan)}, ValueError, "B has 3 non-finite"),
        (
            {"x0": np.zeros((2, 3)), "P0": np.stack([np.eye(3), -np.eye(3)])},
            ValueError,
            r"P0 must be positive semi-definite \(filter 1\)",
        ),
        ({"x0": np.zeros((2, 3)), "P0": np.eye(2)}, ValueError, r"P0 must have shape \(3, 3\) or \(2, 3, 3\)"),
        ({"B": np.ones((2, 1))}, ValueError, r"B must have shape \(3, k\)"),
        ({"form": "ud"}, ValueError, r"form must be one of \('joseph', 'sqrt'\)"),
        ({"dtype": np.float16}, ValueError, "dtype must be float64 or float32"),
        ({"inflation": 0.9}, ValueError, "inflation must lie in"),
        ({"x0": []}, ValueError, "x0 must hold at least one state"),
        ({"H": np.ones((0, 3))}, ValueError, r"H must have shape \(m, 3\)"),
    ],
)
def test_constructor_refuses_bad_and_non_finite_input_by_name(kwargs, error, match):
    pos, kw = _args(**kwargs)
    with pytest.raises(error, match=match):
        Kalman(*pos, **kw)


def test_steps_refuse_bad_and_non_finite_input_by_name():
    pos, _ = _args()
    kf = Kalman(*pos)
    with pytest.raises(ValueError, match="u needs a control matrix"):
        kf.predict([1.0])
    with pytest.raises(ValueError, match="u has 1 non-finite"):
        kf.predict([np.nan], B=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"u must have shape \(1,\) or a scalar to match B"):
        kf.predict([1.0, 2.0], B=np.ones((3, 1)))
    with pytest.raises(ValueError, match="Q must be positive semi-definite"):
        kf.predict(Q=-np.eye(3))
    with pytest.raises(ValueError, match="z has 1 infinite value"):
        kf.update(-np.inf)
    with pytest.raises(ValueError, match=r"z must have shape \(1,\) or \(\)"):
        kf.update([1.0, 2.0])
    with pytest.raises(ValueError, match=r"H has 2 rows but R is \(1, 1\)"):
        kf.update([1.0, 2.0], H=np.ones((2, 3)))
    with pytest.raises(ValueError, match="R must be positive definite"):
        kf.update(1.0, R=0.0)
    with pytest.raises(ValueError, match=r"H must have 1 rows to match R.*set_H_R"):
        kf.H = np.ones((2, 3))
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        kf.x = [0.0, np.nan, 0.0]
    with pytest.raises(ValueError, match=r"P must be symmetric"):
        kf.P = [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="zs has 1 infinite value"):
        kf.batch_filter([1.0, np.inf])
    with pytest.raises(ValueError, match="zs must hold at least one measurement"):
        kf.batch_filter(np.zeros(0))
    with pytest.raises(ValueError, match="Fs must be one matrix of shape"):
        kf.batch_filter(np.zeros(4), Fs=np.tile(np.eye(3), (3, 1, 1)))
    with pytest.raises(ValueError, match=r"Qs must be positive semi-definite \(step 1\)"):
        kf.batch_filter(np.zeros(2), Qs=[np.eye(3), -np.eye(3)])
    with pytest.raises(ValueError, match="us needs a control matrix"):
        kf.batch_filter(np.zeros(2), us=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"us must hold one control input per measurement \(2\)"):
        kf.batch_filter(np.zeros(2), us=np.zeros((3, 1)), Bs=np.ones((3, 1)))
    with pytest.raises(AttributeError, match="square-root form only"):
        _ = kf.factor
    kf.set_H_R(np.ones((2, 3)), np.eye(2))  # changing m takes both at once
    assert kf.dim_z == 2
